"""What the admin dashboard shows, read from the database with ``now`` passed
in (as :mod:`app.idle` and :mod:`app.usage` take it): the live deployments
with the time left before the sweep would stop each (the verdict of
:func:`app.idle.decide` itself, not a copy of its rule), the totals at the top,
the failed deployments, the history with its filters and the audit log.

The actions an admin takes are in :mod:`app.admin`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import joinedload

from . import costs, idle, usage
from .extensions import db
from .models import LIVE_STATUSES, AdminAction, Deployment, User, VizApp
from .prices import Prices

STOP_REASONS = ("idle", "admin", "gone", "failed")
# The history's time windows: the form's value -> its length (None: all of it).
WINDOWS: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_WINDOW = "7d"
HISTORY_PAGE = 50
FAILED_SHOWN = 20
ACTIONS_SHOWN = 20


def seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else max(0.0, (now - moment).total_seconds())


# --- the live table ----------------------------------------------------------------


@dataclass(frozen=True)
class LiveRow:
    deployment: Deployment
    now: datetime
    age: float  # seconds since it was requested
    load_age: float | None
    ping_age: float | None
    verdict: idle.Verdict  # what the sweep would decide now
    backend: str  # the backend's object names, or its process

    @property
    def time_left(self) -> float | None:
        """Seconds before the sweep would stop it, if nothing happens
        meanwhile (None: the next sweep stops it); for a starting one, before
        it is failed for not starting."""
        until = self.verdict.until
        return None if until is None else max(0.0, (until - self.now).total_seconds())


def live_rows(now: datetime, limits: idle.IdleLimits) -> list[LiveRow]:
    """Every live deployment, oldest first, as the live table shows it."""
    deps = db.session.scalars(
        select(Deployment)
        .where(Deployment.status.in_(LIVE_STATUSES))
        .options(joinedload(Deployment.app).joinedload(VizApp.owner), joinedload(Deployment.kept_awake_by))
        .order_by(Deployment.created_at, Deployment.id)
    ).all()
    return [
        LiveRow(
            deployment=dep,
            now=now,
            age=seconds_since(dep.created_at, now) or 0.0,
            load_age=seconds_since(dep.latest_load_at, now),
            ping_age=seconds_since(dep.latest_ping_at, now),
            verdict=idle.decide(now=now, deployment=dep, limits=limits),
            backend=backend_label(dep),
        )
        for dep in deps
    ]


def backend_label(dep: Deployment) -> str:
    """Where it runs, for an admin: the local backend's process (its ref is a
    JSON object with the pid and port), or the cluster's object name."""
    ref = dep.backend_ref or ""
    try:
        parsed = json.loads(ref) if ref.startswith("{") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "pid" in parsed:
        return f"pid {parsed.get('pid')}, port {parsed.get('port')}"
    if not ref:
        return "(not created yet)" if dep.status == "starting" else ""
    return ref if ref == dep.deployment_name else f"{dep.deployment_name} ({ref})"


# --- the totals ------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    live: int
    started_today: int  # deployments requested since midnight UTC
    running_hours_today: float  # app-hours since midnight UTC (app.usage's running time)
    cost_this_month: float  # dollars, this calendar month (UTC) so far (app.costs)


def today_start(now: datetime) -> datetime:
    day = now.astimezone(UTC)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def totals(now: datetime, prices: Prices) -> Totals:
    start = today_start(now)
    end = max(now, start + timedelta(microseconds=1))  # a window, even at midnight
    today = usage.site_stats(start, end)
    month = costs.monthly_costs(now.year, now.month, prices, now)
    live = db.session.scalar(
        select(func.count()).select_from(Deployment).where(Deployment.status.in_(LIVE_STATUSES))
    )
    return Totals(
        live=live or 0,
        started_today=today.deployments,
        running_hours_today=today.running_seconds / 3600.0,
        cost_this_month=month.total.dollars,
    )


# --- failed, history, the audit log ---------------------------------------------------


def failed(limit: int = FAILED_SHOWN) -> list[Deployment]:
    """The latest failed deployments, newest first, with their reasons."""
    return list(
        db.session.scalars(
            select(Deployment)
            .where(Deployment.status == "failed")
            .options(joinedload(Deployment.app).joinedload(VizApp.owner))
            .order_by(Deployment.stopped_at.desc(), Deployment.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class HistoryFilter:
    app: str = ""  # an app's title
    owner: str = ""  # a username
    reason: str = ""  # one of STOP_REASONS, or "" for any
    window: str = DEFAULT_WINDOW  # one of WINDOWS

    @classmethod
    def from_args(cls, args: dict[str, str]) -> HistoryFilter:
        """The form's values; anything unknown is ignored (not an error: it is a filter)."""
        reason = args.get("reason", "")
        window = args.get("window", DEFAULT_WINDOW)
        return cls(
            app=args.get("app", "").strip()[:40],
            owner=args.get("owner", "").strip()[:40],
            reason=reason if reason in STOP_REASONS else "",
            window=window if window in WINDOWS else DEFAULT_WINDOW,
        )


def history_query(f: HistoryFilter, now: datetime) -> Select[tuple[Deployment]]:
    """Ended deployments matching the filters, latest stop first."""
    query = (
        select(Deployment)
        .join(Deployment.app)
        .join(VizApp.owner)
        .where(Deployment.status.not_in(LIVE_STATUSES))
        .options(joinedload(Deployment.app).joinedload(VizApp.owner))
        .order_by(Deployment.stopped_at.desc(), Deployment.id.desc())
    )
    if f.app:
        query = query.where(VizApp.title == f.app)
    if f.owner:
        query = query.where(User.username == f.owner)
    if f.reason:
        query = query.where(Deployment.stop_reason == f.reason)
    length = WINDOWS[f.window]
    if length is not None:
        query = query.where(Deployment.stopped_at >= now - length)
    return query


def recent_actions(limit: int = ACTIONS_SHOWN) -> list[AdminAction]:
    return list(
        db.session.scalars(
            select(AdminAction).order_by(AdminAction.at.desc(), AdminAction.id.desc()).limit(limit)
        )
    )


# --- users -------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRow:
    user: User
    apps: int
    live: int


def user_rows() -> list[UserRow]:
    apps = dict(db.session.execute(select(VizApp.owner_id, func.count()).group_by(VizApp.owner_id)).all())
    live = dict(
        db.session.execute(
            select(Deployment.owner_id, func.count())
            .where(Deployment.status.in_(LIVE_STATUSES))
            .group_by(Deployment.owner_id)
        ).all()
    )
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return [UserRow(u, apps.get(u.id, 0), live.get(u.id, 0)) for u in users]


def duration(seconds: float | None) -> str:
    """A short human duration: ``45s``, ``12m 05s``, ``3h 20m``, ``2d 4h``; ``—`` for none."""
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
