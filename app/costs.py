"""What running apps costs, from the deployments table and two prices.

A deployment's cost is its running seconds × (CPU cores × the price of a
CPU-hour + memory GB × the price of a GB-hour) / 3600, with the CPU and memory
it was started with (``Deployment.cpu_millicores`` and ``.memory_mib``, kept
on the row because the app may be edited later). Running seconds are those of
:mod:`app.usage`: from ``created_at`` (start-up holds the resources too) to
``stopped_at``, or to now while live.

**GB means GiB** (1024 MiB, so ``512Mi`` is 0.5 GB): Kubernetes quantities
are binary, and cloud price sheets' "GB" for memory (Google Cloud's, on which
Compute Studio's published prices are based) is the binary gibibyte.

Nothing here reads the clock: callers pass ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from .extensions import db
from .models import Deployment, VizApp
from .prices import Prices
from .publishing import parse_cpu, parse_memory
from .usage import clipped_seconds, overlapping_rows

MIB_PER_GB = 1024  # GB means GiB; see the module's docstring


def deployment_cost(
    cpu_millicores: int | None, memory_mib: int | None, running: timedelta | float, prices: Prices
) -> float:
    """Dollars for running this much CPU and memory for ``running`` (a
    timedelta, or seconds). Unknown quantities (None) cost nothing."""
    seconds = running.total_seconds() if isinstance(running, timedelta) else float(running)
    cores = (cpu_millicores or 0) / 1000.0
    gbs = (memory_mib or 0) / MIB_PER_GB
    return prices.dollars(cores * seconds, gbs * seconds)


@dataclass(frozen=True)
class Cost:
    running_seconds: float = 0.0  # summed over deployments (overlapping ones each count)
    cpu_hours: float = 0.0  # core-hours
    gb_hours: float = 0.0  # GiB-hours
    dollars: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.running_seconds + other.running_seconds,
            self.cpu_hours + other.cpu_hours,
            self.gb_hours + other.gb_hours,
            self.dollars + other.dollars,
        )


@dataclass(frozen=True)
class MonthlyCosts:
    start: datetime
    end: datetime  # the month's end, or now if sooner
    by_app: dict[int, Cost]  # app id -> its cost; apps that did not run are absent
    by_owner: dict[int, Cost]  # user id -> the cost of their apps
    total: Cost


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """The month as [first instant, first instant of the next month), UTC."""
    start = datetime(year, month, 1, tzinfo=UTC)
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, nxt


def _elapsed_month(year: int, month: int, now: datetime) -> tuple[datetime, datetime]:
    start, nxt = month_bounds(year, month)
    return start, max(start, min(nxt, now))


def _cost(seconds: float, core_seconds: float, mib_seconds: float, prices: Prices) -> Cost:
    gb_seconds = mib_seconds / MIB_PER_GB
    return Cost(
        running_seconds=seconds,
        cpu_hours=core_seconds / 3600.0,
        gb_hours=gb_seconds / 3600.0,
        dollars=prices.dollars(core_seconds, gb_seconds),
    )


def monthly_costs(
    year: int, month: int, prices: Prices, now: datetime, app_id: int | None = None
) -> MonthlyCosts:
    """Each app's and each owner's cost in a calendar month (UTC), up to
    ``now`` in the current month: one aggregate query; ``app_id``: that app's
    only."""
    start, end = _elapsed_month(year, month, now)
    by_app: dict[int, Cost] = {}
    by_owner: dict[int, Cost] = {}
    total = Cost()
    if end > start:
        rows = overlapping_rows(
            start,
            end,
            app_id,
            Deployment.app_id.label("app_id"),
            clipped_seconds(start, end).label("seconds"),
            func.coalesce(Deployment.cpu_millicores, 0).label("millicores"),
            func.coalesce(Deployment.memory_mib, 0).label("mib"),
        ).subquery()
        query = (
            select(
                rows.c.app_id,
                VizApp.owner_id,
                func.sum(rows.c.seconds),
                func.sum(rows.c.seconds * rows.c.millicores),
                func.sum(rows.c.seconds * rows.c.mib),
            )
            .join(VizApp, VizApp.id == rows.c.app_id)
            .group_by(rows.c.app_id, VizApp.owner_id)
        )
        for app, owner, secs, milli_seconds, mib_seconds in db.session.execute(query):
            cost = _cost(
                float(secs or 0), float(milli_seconds or 0) / 1000.0, float(mib_seconds or 0), prices
            )
            by_app[app] = cost
            by_owner[owner] = by_owner.get(owner, Cost()) + cost
            total = total + cost
    return MonthlyCosts(start=start, end=end, by_app=by_app, by_owner=by_owner, total=total)


def app_month_cost(app_id: int, year: int, month: int, prices: Prices, now: datetime) -> Cost:
    """One app's cost in a month so far (its budget's measure)."""
    return monthly_costs(year, month, prices, now, app_id=app_id).by_app.get(app_id, Cost())


@dataclass(frozen=True)
class Savings:
    always_on: float  # dollars, had the app run all month (so far) as it is configured now
    actual: float  # dollars it cost
    saved: float  # always_on - actual (negative when overlapping runs cost more)


def saved_by_sleeping(app: VizApp, year: int, month: int, prices: Prices, now: datetime) -> Savings:
    """What sleeping saved this month (so far, in the current month) against
    the same app, with its CPU and memory as configured now, running all
    the time."""
    start, end = _elapsed_month(year, month, now)
    always_on = deployment_cost(parse_cpu(app.cpu), parse_memory(app.memory), end - start, prices)
    actual = app_month_cost(app.id, year, month, prices, now).dollars
    return Savings(always_on=always_on, actual=actual, saved=always_on - actual)
