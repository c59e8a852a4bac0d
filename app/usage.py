"""Usage statistics of one app, or of all, over a window of time, from the
deployments table.

Nothing here reads the clock: callers pass the window (``start``, ``end``;
``end`` is normally now), as :mod:`app.idle` takes ``now``. Aggregates over
many rows (counts, sums, the union of running intervals) run in the
database; what needs every value (medians, percentiles, the timeline) fetches
only the rows of the window, so its cost grows with the window, not with the
table.

What the numbers mean (the same on every page, the API and the CLI):

- a deployment **runs** from ``created_at`` (it holds its CPU and memory from
  the moment it is requested, start-up included) to ``stopped_at``, or to the
  window's end while live; a start that failed ran until it was failed;
- **running seconds** of an app are the union of its deployments' running
  intervals clipped to the window (deployments of different names may
  overlap; time is counted once); of the site, the sum of its apps';
- **% of the time running**: running seconds / the window's length (site: /
  the window's length × the apps published by its end);
- **deployments**, **page loads**, **viewer-minutes** and **cold starts** are
  those of deployments *created* in the window (a deployment's counters count
  in the window it started in); **lifetimes** and **stops by reason** those of
  deployments *stopped* in the window; windows are half-open, [start, end);
- **cold start**: ``ready_at - created_at`` of deployments that became ready;
- **viewer-minutes**: minutes during which at least one focused page pinged
  the deployment, as the written pings tell it (see :func:`ping_credit`),
  not the sum over viewers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Float, case, func, literal, or_, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from .extensions import db
from .models import Deployment, UTCDateTime, VizApp

DEFAULT_WINDOW = timedelta(days=10)


def default_window(now: datetime, length: timedelta = DEFAULT_WINDOW) -> tuple[datetime, datetime]:
    """The window ending now: the last ten days unless told otherwise."""
    return now - length, now


# --- SQL pieces ------------------------------------------------------------------


class seconds_between(FunctionElement[float]):
    """``seconds_between(a, b)``: seconds from ``a`` to ``b``, as a float, on
    SQLite and PostgreSQL (which spell date arithmetic differently)."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(seconds_between)
def _seconds_between_postgresql(element: seconds_between, compiler: Any, **kw: Any) -> str:
    a, b = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({b}) - ({a})) AS DOUBLE PRECISION)"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    a, b = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"((julianday({b}) - julianday({a})) * 86400.0)"


def _at(moment: datetime) -> ColumnElement[datetime]:
    return literal(moment, UTCDateTime())


def overlapping_rows(start: datetime, end: datetime, app_id: int | None, *columns: Any) -> CompoundSelect:
    """``columns`` of the deployments that ran in [start, end) (of one app, or
    of all): created before ``end`` and stopped after ``start`` or not yet.
    Written as the union of those stopped after ``start`` and those still
    live, so each half uses an index (stopped_at; for one app, (app_id,
    created_at)): with ``stopped_at IS NULL OR stopped_at > start`` in one
    WHERE, SQLite scans the created_at index instead, nearly the whole table
    when the window ends now."""
    ended = select(*columns).where(
        Deployment.stopped_at > _at(start), Deployment.created_at < _at(end), *_for_app(app_id)
    )
    live = select(*columns).where(
        Deployment.stopped_at.is_(None), Deployment.created_at < _at(end), *_for_app(app_id)
    )
    return union_all(ended, live)


def clipped_start(start: datetime) -> ColumnElement[datetime]:
    return case((Deployment.created_at < _at(start), _at(start)), else_=Deployment.created_at)


def clipped_end(end: datetime) -> ColumnElement[datetime]:
    return case(
        (or_(Deployment.stopped_at.is_(None), Deployment.stopped_at > _at(end)), _at(end)),
        else_=Deployment.stopped_at,
    )


def clipped_seconds(start: datetime, end: datetime) -> ColumnElement[float]:
    """A deployment's running seconds inside [start, end) (for rows that
    overlap it, see :func:`overlapping_rows`)."""
    return seconds_between(clipped_start(start), clipped_end(end))


def _for_app(app_id: int | None) -> list[ColumnElement[bool]]:
    return [] if app_id is None else [Deployment.app_id == app_id]


def _created_in(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [Deployment.created_at >= _at(start), Deployment.created_at < _at(end)]


def _stopped_in(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [Deployment.stopped_at >= _at(start), Deployment.stopped_at < _at(end)]


def union_running_seconds(start: datetime, end: datetime, app_id: int | None = None) -> float:
    """The union of each app's running intervals inside [start, end), summed
    over apps, in one query: ordered by start, each interval adds the part of
    it past the latest end of those before it (a window function)."""
    clipped = overlapping_rows(
        start,
        end,
        app_id,
        Deployment.app_id.label("app_id"),
        Deployment.id.label("id"),
        clipped_start(start).label("s"),
        clipped_end(end).label("e"),
    ).cte("clipped")
    # materialized: else SQLite, to spare the window function its sort, reads
    # the whole (app_id, created_at) index instead of the window's rows
    clipped = clipped.prefix_with("MATERIALIZED")
    before = func.max(clipped.c.e).over(
        partition_by=clipped.c.app_id, order_by=(clipped.c.s, clipped.c.id), rows=(None, -1)
    )
    ordered = select(clipped.c.s, clipped.c.e, before.label("m")).subquery()
    s, e, m = ordered.c.s, ordered.c.e, ordered.c.m
    new_from = case((or_(m.is_(None), m < s), s), else_=m)
    added = case((or_(m.is_(None), m < e), seconds_between(new_from, e)), else_=0.0)
    total = db.session.scalar(select(func.coalesce(func.sum(added), 0.0)))
    return max(0.0, float(total or 0.0))


# --- results ---------------------------------------------------------------------


@dataclass(frozen=True)
class UsageStats:
    start: datetime
    end: datetime
    apps: int  # 1 for one app; for the site, the apps published by ``end``
    deployments: int
    running_seconds: float
    percent_running: float
    mean_lifetime: float | None  # seconds
    median_lifetime: float | None
    cold_starts: int
    cold_start_p50: float | None  # seconds
    cold_start_p95: float | None
    page_loads: int
    viewer_minutes: float
    stops_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Interval:
    """One deployment's running time, clipped to the window (a timeline bar)."""

    deployment_id: int
    app_id: int
    name: str
    start: datetime
    end: datetime
    status: str
    stop_reason: str | None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class DayHours:
    day: date  # a UTC day
    hours: float


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted ``values``, by linear interpolation
    between the closest ranks (PostgreSQL's ``percentile_cont``)."""
    if not values:
        return None
    pos = (len(values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


# --- queries ---------------------------------------------------------------------


def cold_starts(app_id: int | None, start: datetime, end: datetime) -> list[float]:
    """Seconds from request to ready of the deployments created in the window
    that became ready, shortest first (the distribution's plot)."""
    rows = db.session.scalars(
        select(seconds_between(Deployment.created_at, Deployment.ready_at)).where(
            *_for_app(app_id), *_created_in(start, end), Deployment.ready_at.is_not(None)
        )
    )
    return sorted(max(0.0, float(v)) for v in rows)


def _stats(app_id: int | None, start: datetime, end: datetime) -> UsageStats:
    if end <= start:
        raise ValueError("the window ends before it starts")
    created = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Deployment.page_loads), 0),
            func.coalesce(func.sum(Deployment.viewer_seconds), 0.0),
        ).where(*_for_app(app_id), *_created_in(start, end))
    ).one()
    stopped = db.session.execute(
        select(Deployment.stop_reason, seconds_between(Deployment.created_at, Deployment.stopped_at)).where(
            *_for_app(app_id), *_stopped_in(start, end)
        )
    ).all()
    lifetimes = sorted(max(0.0, float(seconds)) for _, seconds in stopped)
    reasons: dict[str, int] = defaultdict(int)
    for reason, _ in stopped:
        reasons[reason or "unknown"] += 1
    if app_id is None:
        apps = db.session.scalar(select(func.count()).select_from(VizApp).where(VizApp.created_at < _at(end)))
    else:
        apps = 1
    running = union_running_seconds(start, end, app_id)
    window = (end - start).total_seconds()
    starts = cold_starts(app_id, start, end)
    return UsageStats(
        start=start,
        end=end,
        apps=apps or 0,
        deployments=created[0],
        running_seconds=running,
        percent_running=100.0 * running / (window * apps) if apps else 0.0,
        mean_lifetime=sum(lifetimes) / len(lifetimes) if lifetimes else None,
        median_lifetime=percentile(lifetimes, 0.5),
        cold_starts=len(starts),
        cold_start_p50=percentile(starts, 0.5),
        cold_start_p95=percentile(starts, 0.95),
        page_loads=int(created[1]),
        viewer_minutes=float(created[2]) / 60.0,
        stops_by_reason=dict(sorted(reasons.items())),
    )


def app_stats(app_id: int, start: datetime, end: datetime) -> UsageStats:
    """One app's usage over [start, end) (see the module's definitions)."""
    return _stats(app_id, start, end)


def site_stats(start: datetime, end: datetime) -> UsageStats:
    """Every app's usage over [start, end), summed (the dashboard)."""
    return _stats(None, start, end)


def running_intervals(app_id: int | None, start: datetime, end: datetime) -> list[Interval]:
    """The deployments that ran in [start, end), clipped to it, by start (the
    timeline); ``app_id`` None: every app's."""
    found = overlapping_rows(
        start,
        end,
        app_id,
        Deployment.id,
        Deployment.app_id,
        Deployment.name,
        Deployment.created_at,
        Deployment.stopped_at,
        Deployment.status,
        Deployment.stop_reason,
    ).subquery()
    rows = db.session.execute(select(found).order_by(found.c.created_at, found.c.id)).all()
    return [
        Interval(
            deployment_id=row.id,
            app_id=row.app_id,
            name=row.name,
            start=max(row.created_at, start),
            end=end if row.stopped_at is None else min(row.stopped_at, end),
            status=row.status,
            stop_reason=row.stop_reason,
        )
        for row in rows
    ]


def merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The union of intervals, as disjoint intervals by start."""
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(intervals):
        if hi <= lo:
            continue
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def hours_per_day(app_id: int | None, start: datetime, end: datetime) -> list[DayHours]:
    """Running hours in each UTC day the window touches (the bar chart), each
    day clipped to the window; ``app_id`` None: app-hours of every app."""
    return daily_hours(running_intervals(app_id, start, end), start, end)


def daily_hours(intervals: list[Interval], start: datetime, end: datetime) -> list[DayHours]:
    """:func:`hours_per_day` of intervals already fetched with
    :func:`running_intervals` for the same window (a page that draws the
    timeline too reads them once): each app's intervals merged, split by UTC day."""
    by_app: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for iv in intervals:
        by_app[iv.app_id].append((iv.start, iv.end))
    first = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    hours = dict.fromkeys(days, 0.0)
    for intervals in by_app.values():
        for lo, hi in merge(intervals):
            day = lo.astimezone(UTC).date()
            while True:
                day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                day_end = day_start + timedelta(days=1)
                overlap = (min(hi, day_end) - max(lo, day_start)).total_seconds()
                if overlap > 0:
                    hours[day] += overlap / 3600.0
                if hi <= day_end:
                    break
                day += timedelta(days=1)
    return [DayHours(day, hours[day]) for day in days]


# --- the counters (written by app/lifecycle.py) ----------------------------------


def ping_credit(
    seen: datetime | None, now: datetime, *, ping_interval: float, activity_resolution: float
) -> ColumnElement[float]:
    """``viewer_seconds``' new value for record_ping's UPDATE (which writes
    only when the stored ping is older than ACTIVITY_RESOLUTION), so no
    write is added to the hot path.

    A focused page pings every PING_INTERVAL, each ping standing for the
    interval before it. A written ping adds the gap since the previous stored
    one when that is at most 2 × PING_INTERVAL (someone has been watching all
    along; one late or lost ping is tolerated), else (the first ping, or the
    first after a break) one PING_INTERVAL. Pings that are not written (other
    tabs within ACTIVITY_RESOLUTION) add nothing: the result is time watched
    by at least one viewer, not the sum over viewers.

    ``seen`` is the stored ping as this request read it; if another worker
    has written one since (the row no longer holds ``seen``), the gap is
    unknown but at least ACTIVITY_RESOLUTION, which is added instead: one
    UPDATE, exact when not racing, a lower bound when racing.
    """
    if seen is None:
        credit = ping_interval
        unchanged = Deployment.latest_ping_at.is_(None)
    else:
        gap = (now - seen).total_seconds()
        credit = gap if 0 <= gap <= 2 * ping_interval else ping_interval
        unchanged = Deployment.latest_ping_at == seen
    return Deployment.viewer_seconds + case((unchanged, credit), else_=activity_resolution)
