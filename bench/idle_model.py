"""The idle-policy simulator's model (bench/idle_sim.py): the policies, the
simulated deployment (what ``app.idle.decide`` reads) and page, and the figures
a run adds up. See bench/idle_sim.py for what they mean."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from app.idle import IdleLimits
from bench.idle_traces import Session

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
BRIEF_BLUR = 300.0  # seconds: a return after at most this is a "brief" one


def at(t: float) -> datetime:
    return EPOCH + timedelta(seconds=t)


@dataclass(frozen=True)
class Policy:
    name: str
    limits: IdleLimits  # its goodbye_grace: the goodbye rule (None: no goodbye)
    sweep_interval: float
    ping_interval: float
    activity_resolution: float
    ping_when_blurred: bool = False  # a heartbeat from every open page (ShinyProxy-like)
    ping_on_focus: bool = False  # point 6: the page pings the moment it regains focus

    @property
    def goodbye(self) -> float | None:
        return self.limits.goodbye_grace

    def label(self) -> str:
        signals = [
            s
            for s, on in (
                ("focus-ping", self.ping_on_focus),
                (f"goodbye{self.goodbye or 0:.0f}", self.goodbye is not None),
            )
            if on
        ]
        return f"{self.name} +{'+'.join(signals)}" if signals else self.name

    def without_signals(self) -> Policy:
        return replace(self, ping_on_focus=False, limits=replace(self.limits, goodbye_grace=None))

    def with_signals(self, *, focus: bool, goodbye: float | None) -> Policy:
        return replace(self, ping_on_focus=focus, limits=replace(self.limits, goodbye_grace=goodbye))


def policies_from_settings(settings) -> dict[str, Policy]:
    """Compute Studio's, a ShinyProxy-like 60 s heartbeat, and ours (``settings``:
    app.config.Settings, the defaults unless the environment says otherwise;
    ours with the signals of static/js/viz.js: the focus ping and the goodbye)."""
    ours = Policy(
        "ours",
        IdleLimits(
            settings.idle_load_timeout, settings.idle_ping_timeout, settings.start_timeout,
            activity_resolution=settings.activity_resolution, goodbye_grace=settings.goodbye_grace,
        ),
        settings.sweep_interval, settings.ping_interval, settings.activity_resolution, ping_on_focus=True,
    )  # fmt: skip
    plain = ours.without_signals()
    return {
        "compute-studio": replace(
            plain,
            name="compute-studio",
            limits=replace(plain.limits, load_timeout=1800, ping_timeout=1800),
            sweep_interval=900,
        ),  # fmt: skip
        "heartbeat-60s": replace(
            plain,
            name="heartbeat-60s",
            limits=replace(plain.limits, load_timeout=60, ping_timeout=60),
            sweep_interval=10,
            ping_when_blurred=True,
        ),  # fmt: skip
        "ours": ours,
    }


@dataclass
class Deployment:
    """What decide reads (app.idle.Activity), moved as app/lifecycle.py moves it."""

    status: str
    created_at: datetime
    ready_at: datetime | None = None
    latest_load_at: datetime | None = None
    latest_ping_at: datetime | None = None
    keep_awake_until: datetime | None = None
    page_loads: int = 0
    goodbyes: int = 0
    latest_goodbye_at: datetime | None = None


@dataclass
class Page:
    session: Session
    focused: bool = False
    open: bool = False
    dep: Deployment | None = None  # the deployment it shows
    stale: bool = False  # its deployment stopped while it was blurred
    blurred_at: float = 0.0
    timer: int = 0  # the page's ping timer: a ping event of an older one is dropped
    pinged_at: float = float("-inf")  # when it last sent a ping


@dataclass
class Result:
    running: float = 0.0
    viewing: float = 0.0
    cold_starts: int = 0
    interruptions: int = 0
    returns: int = 0
    brief_returns: int = 0
    stopped_returns: int = 0
    stopped_brief_returns: int = 0
    deployments: list[float] = field(default_factory=list)  # lifetimes, seconds

    def add(self, other: Result) -> Result:
        for name in ("running", "viewing", "cold_starts", "interruptions", "returns", "brief_returns",
                     "stopped_returns", "stopped_brief_returns"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.deployments += other.deployments
        return self

    @property
    def ratio(self) -> float:
        return self.running / self.viewing if self.viewing else float("inf")

    @property
    def cold_per_hour(self) -> float:
        return self.cold_starts / (self.viewing / 3600) if self.viewing else float("inf")


def viewer_seconds(sessions: list[Session]) -> float:
    """The union of the focused periods of all these pages (of one app)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(p for s in sessions for p in s.focused):
        if b > end:
            total += b - max(a, end)
            end = b
    return total
