"""What the stats pages show, gathered from :mod:`app.usage` and
:mod:`app.costs` with ``now`` passed in: an app's usage over a chosen window
with its plots and its monthly costs (``/<owner>/<title>/stats``), an owner's
costs this month and last (``/<owner>/``), and the whole site's usage with
the costs per owner and per app (``/admin/stats``).

The window is one of :data:`WINDOW_DAYS` days ending now; :func:`parse_days`
reads it from the page's form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from . import costs, svg_plots, usage
from .costs import Cost, Savings
from .extensions import db
from .models import User, VizApp
from .prices import Prices
from .publishing import parse_cpu, parse_memory

WINDOW_DAYS = (1, 7, 10, 30, 90)
DEFAULT_DAYS = round(usage.DEFAULT_WINDOW / timedelta(days=1))  # 10
MONTHS_SHOWN = 6  # this month and the five before it
TOP_SHOWN = 20  # owners and apps on the site's cost tables


def parse_days(raw: str | None) -> tuple[int, str | None]:
    """The window's length in days from the form (absent: the default), and
    an error for a person when it is not one of :data:`WINDOW_DAYS` (the
    default is used then)."""
    if raw is None or raw == "":
        return DEFAULT_DAYS, None
    if re.fullmatch(r"[0-9]{1,3}", raw) and int(raw) in WINDOW_DAYS:
        return int(raw), None
    choices = ", ".join(str(d) for d in WINDOW_DAYS)
    return DEFAULT_DAYS, f"Choose a window of {choices} days; showing the last {DEFAULT_DAYS} days."


def window(days: int, now: datetime) -> tuple[datetime, datetime]:
    return usage.default_window(now, timedelta(days=days))


def months_back(now: datetime, count: int) -> list[tuple[int, int]]:
    """(year, month) of this month and the ``count - 1`` before it, newest first."""
    year, month = now.year, now.month
    found = []
    for _ in range(count):
        found.append((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return found


# --- one app -----------------------------------------------------------------------


@dataclass(frozen=True)
class MonthRow:
    start: datetime  # the month's first instant (UTC)
    current: bool  # this month, so far
    cost: Cost
    savings: Savings


@dataclass(frozen=True)
class AppReport:
    days: int
    start: datetime
    end: datetime
    stats: usage.UsageStats
    timeline: svg_plots.Plot
    hours: svg_plots.Plot
    cold_starts: svg_plots.Plot
    months: list[MonthRow]
    prices: Prices
    budget: float | None  # the app's monthly budget (dollars), shown only


def app_months(app: VizApp, now: datetime, prices: Prices, count: int = MONTHS_SHOWN) -> list[MonthRow]:
    """This month so far and the months before it, back to the one the app
    was published in (at most ``count``): its cost and what sleeping saved
    against it running all the time, as it is configured now (for the month
    it was published in, from its publication)."""
    rows = []
    published = app.created_at
    for year, month in months_back(now, count):
        start, nxt = costs.month_bounds(year, month)
        if nxt <= published:
            break
        cost = costs.app_month_cost(app.id, year, month, prices, now)
        since, until = max(start, published), min(nxt, now)
        always_on = costs.deployment_cost(
            parse_cpu(app.cpu), parse_memory(app.memory), max(until - since, timedelta(0)), prices
        )
        savings = Savings(always_on=always_on, actual=cost.dollars, saved=always_on - cost.dollars)
        rows.append(MonthRow(start=start, current=start <= now < nxt, cost=cost, savings=savings))
    return rows


def app_report(app: VizApp, days: int, now: datetime, prices: Prices) -> AppReport:
    start, end = window(days, now)
    stats = usage.app_stats(app.id, start, end)
    starts = usage.cold_starts(app.id, start, end)
    intervals = usage.running_intervals(app.id, start, end)
    return AppReport(
        days=days,
        start=start,
        end=end,
        stats=stats,
        timeline=svg_plots.timeline(intervals, start, end, lane_of=lambda iv: iv.name),
        hours=svg_plots.hours_per_day(usage.daily_hours(intervals, start, end)),
        cold_starts=svg_plots.cold_start_histogram(
            starts, p50=stats.cold_start_p50, p95=stats.cold_start_p95
        ),
        months=app_months(app, now, prices),
        prices=prices,
        budget=app.monthly_budget,
    )


# --- one owner -----------------------------------------------------------------------


@dataclass(frozen=True)
class AppCosts:
    app: VizApp
    this_month: Cost
    last_month: Cost


@dataclass(frozen=True)
class OwnerCosts:
    this_month_start: datetime
    last_month_start: datetime
    this_month: Cost  # every app of the owner's, deleted ones too
    last_month: Cost
    apps: list[AppCosts]  # the apps shown on the page, in its order
    deleted_this_month: Cost  # the owner's deleted apps, summed
    deleted_last_month: Cost

    @property
    def has_deleted(self) -> bool:
        return self.deleted_this_month.dollars > 0 or self.deleted_last_month.dollars > 0


def owner_costs(owner: User, apps: Iterable[VizApp], now: datetime, prices: Prices) -> OwnerCosts:
    """The owner's costs this month so far and last month, in all and for
    each of ``apps`` (the apps on their page); their deleted apps count in
    the totals, and summed on a line of their own."""
    (y1, m1), (y0, m0) = months_back(now, 2)
    this = costs.monthly_costs(y1, m1, prices, now)
    last = costs.monthly_costs(y0, m0, prices, now)
    rows = [AppCosts(app, this.by_app.get(app.id, Cost()), last.by_app.get(app.id, Cost())) for app in apps]
    deleted = db.session.scalars(
        select(VizApp.id).where(VizApp.owner_id == owner.id, VizApp.deleted_at.is_not(None))
    ).all()
    return OwnerCosts(
        this_month_start=this.start,
        last_month_start=last.start,
        this_month=this.by_owner.get(owner.id, Cost()),
        last_month=last.by_owner.get(owner.id, Cost()),
        apps=rows,
        deleted_this_month=sum((this.by_app.get(i, Cost()) for i in deleted), Cost()),
        deleted_last_month=sum((last.by_app.get(i, Cost()) for i in deleted), Cost()),
    )


# --- the site ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteReport:
    days: int
    start: datetime
    end: datetime
    stats: usage.UsageStats
    timeline: svg_plots.Plot
    hours: svg_plots.Plot
    cold_starts: svg_plots.Plot
    month_start: datetime
    month_total: Cost
    by_owner: list[tuple[User, Cost]]  # the TOP_SHOWN costliest this month
    by_app: list[tuple[VizApp, Cost]]
    owners: int  # owners with a cost this month, in all
    apps: int  # apps with a cost this month, in all
    prices: Prices


def _apps_by_id(ids: Iterable[int]) -> dict[int, VizApp]:
    wanted = set(ids)
    if not wanted:
        return {}
    found = db.session.scalars(
        select(VizApp).where(VizApp.id.in_(wanted)).options(joinedload(VizApp.owner))
    ).all()
    return {app.id: app for app in found}


def site_report(days: int, now: datetime, prices: Prices, top: int = TOP_SHOWN) -> SiteReport:
    start, end = window(days, now)
    stats = usage.site_stats(start, end)
    intervals = usage.running_intervals(None, start, end)
    month = costs.monthly_costs(now.year, now.month, prices, now)
    apps = _apps_by_id({iv.app_id for iv in intervals} | set(month.by_app))
    costliest_apps = sorted(month.by_app.items(), key=lambda kv: (-kv[1].dollars, kv[0]))[:top]
    costliest_owners = sorted(month.by_owner.items(), key=lambda kv: (-kv[1].dollars, kv[0]))[:top]
    users = {
        u.id: u for u in db.session.scalars(select(User).where(User.id.in_([o for o, _ in costliest_owners])))
    }

    def lane(iv: usage.Interval) -> str:
        app = apps.get(iv.app_id)
        return app.slug_path if app is not None else f"app {iv.app_id}"

    starts = usage.cold_starts(None, start, end)
    return SiteReport(
        days=days,
        start=start,
        end=end,
        stats=stats,
        timeline=svg_plots.timeline(
            intervals, start, end, lane_of=lane, title="Running intervals, every app"
        ),
        hours=svg_plots.hours_per_day(
            usage.daily_hours(intervals, start, end), title="App-hours running per day, every app"
        ),
        cold_starts=svg_plots.cold_start_histogram(
            starts, title="Cold-start times, every app", p50=stats.cold_start_p50, p95=stats.cold_start_p95
        ),
        month_start=month.start,
        month_total=month.total,
        by_owner=[(users[o], c) for o, c in costliest_owners if o in users],
        by_app=[(apps[a], c) for a, c in costliest_apps if a in apps],
        owners=len(month.by_owner),
        apps=len(month.by_app),
        prices=prices,
    )
