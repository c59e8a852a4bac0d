"""The keep-or-stop decision for a live deployment, as one pure function.

Nothing here reads the clock or the database: the caller passes ``now`` and
the deployment's timestamps, which is what makes the policy easy to test with a
table of cases and to replay in a simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True)
class IdleLimits:
    load_timeout: float  # seconds since the latest full page load
    ping_timeout: float  # seconds since the latest focused-page ping
    start_timeout: float  # seconds a deployment may take to become ready
    # How far the stored ping may lag the true last one (ACTIVITY_RESOLUTION:
    # a ping is written only when the stored one is older than this), added
    # to the ping's keep so that coalescing never stops anybody early.
    activity_resolution: float = 0.0
    # Seconds a running deployment is kept after its last open page said
    # goodbye (GOODBYE_GRACE); None: goodbyes are not read.
    goodbye_grace: float | None = None


class Activity(Protocol):
    """What the decision reads of a deployment (a ``Deployment`` row has it)."""

    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def ready_at(self) -> datetime | None: ...
    @property
    def latest_load_at(self) -> datetime | None: ...
    @property
    def latest_ping_at(self) -> datetime | None: ...
    @property
    def keep_awake_until(self) -> datetime | None: ...
    @property
    def page_loads(self) -> int: ...
    @property
    def goodbyes(self) -> int: ...
    @property
    def latest_goodbye_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Verdict:
    stop: bool
    kind: str  # "" when kept; "idle" or "start-timeout" when stopped
    detail: str  # a sentence for logs, the CLI and the admin view
    # When kept: the moment after which this same decision stops it, if no
    # load, ping or keep-awake arrives meanwhile (the admin view's "time
    # left" is ``until - now``). None when stopped.
    until: datetime | None = None


def _after(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


def all_pages_closed(d: Activity) -> bool:
    """Whether every page that loaded ``d`` has said goodbye (page loads minus
    goodbyes is at most 0) and nothing loaded or pinged it since the latest
    goodbye. A lost beacon leaves the count above 0: the timeouts decide."""
    bye = d.latest_goodbye_at
    if bye is None or (d.page_loads or 0) - (d.goodbyes or 0) > 0:
        return False
    return all(t is None or t <= bye for t in (d.latest_load_at, d.latest_ping_at))


def decide(*, now: datetime, deployment: Activity, limits: IdleLimits) -> Verdict:
    """Keep or stop one live deployment.

    A **starting** deployment is never idle: its viewer is waiting for it. It
    is stopped only when it has been starting for longer than
    ``start_timeout`` (kind ``start-timeout``: it failed to start); keeping it
    awake does not change that.

    A **running** deployment is stopped as idle only when its latest load is
    older than ``load_timeout`` **and** its latest ping is older than
    ``ping_timeout`` plus ``activity_resolution`` (the stored ping may lag
    the true last one by that much) **and** no admin keeps it awake
    (``keep_awake_until`` in the future): one of them keeps it, so a visitor
    who is watching is never cut off. The load clock starts no earlier than
    the moment the app became ready (a viewer who waited through a slow start
    has not had the chance to ping yet); a deployment never pinged has no
    ping to keep it.

    **Goodbyes** (with ``goodbye_grace`` set): once every page that loaded it
    has closed and nothing loaded or pinged it since the latest goodbye
    (:func:`all_pages_closed`), the load and the ping keep it no longer than
    ``goodbye_grace`` after that goodbye; keep-awake still keeps it.

    Each rule is a moment until which it keeps the deployment; it is stopped
    once ``now`` is past all of them, and when kept the verdict says until
    when (``until``), which is what the admin view shows.
    """
    d = deployment
    if d.status == "starting":
        started_for = (now - d.created_at).total_seconds()
        deadline = _after(d.created_at, limits.start_timeout)
        if now > deadline:
            return Verdict(
                True, "start-timeout", f"did not become ready within {limits.start_timeout:.0f} seconds"
            )
        return Verdict(False, "", f"starting for {started_for:.0f}s", deadline)
    load_at = max(t for t in (d.latest_load_at, d.ready_at, d.created_at) if t is not None)
    load_age = (now - load_at).total_seconds()
    ping_age = None if d.latest_ping_at is None else (now - d.latest_ping_at).total_seconds()
    awake = d.keep_awake_until
    # (until when, why), in the order a kept verdict explains itself
    keepers = [(_after(load_at, limits.load_timeout), f"loaded {load_age:.0f}s ago")]
    if d.latest_ping_at is not None:
        ping_keep = limits.ping_timeout + limits.activity_resolution
        keepers.append((_after(d.latest_ping_at, ping_keep), f"pinged {ping_age:.0f}s ago"))
    closed = None  # the goodbye's keep, when it cuts the load's and the ping's short
    if limits.goodbye_grace is not None and d.latest_goodbye_at is not None and all_pages_closed(d):
        bye_until = _after(d.latest_goodbye_at, limits.goodbye_grace)
        if bye_until < max(moment for moment, _ in keepers):
            bye_age = (now - d.latest_goodbye_at).total_seconds()
            closed = f"its last page closed {bye_age:.0f}s ago"
            keepers = [(bye_until, closed)]
    if awake is not None:
        keepers.append((awake, f"kept awake until {awake:%Y-%m-%d %H:%M:%S} UTC"))
    until = max(moment for moment, _ in keepers)
    if now <= until:
        why = next(reason for moment, reason in keepers if now <= moment)
        return Verdict(False, "", why, until)
    if closed is not None:
        return Verdict(True, "idle", f"{closed}, nothing since")
    pinged = "never pinged" if ping_age is None else f"last ping {ping_age:.0f}s ago"
    return Verdict(True, "idle", f"no page load for {load_age:.0f}s, {pinged}")
