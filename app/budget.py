"""An app's optional monthly budget: the rule that refuses to start it once
this month's cost (:func:`app.costs.app_month_cost`) has reached it.

:func:`check` is called by :func:`app.lifecycle.ensure_deployment` before a
new deployment is made, so every way of starting an app (the viz page, the
owner's restart, the CLI, the API) obeys it; a live deployment is returned
as it is and is never cut off for its cost. Over budget, :class:`OverBudget`
says how much was spent of what, and when the app may start again: on the
1st of next month (UTC), or at once when an admin lifts the budget for the
rest of the month (``VizApp.budget_lifted_until``, the audit log has who).

The decision itself, :func:`is_over`, is a pure function of the budget, the
amount spent, the lift and ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from .caps import Busy
from .costs import app_month_cost, month_bounds, monthly_costs
from .extensions import db
from .models import VizApp
from .prices import Prices

NEAR = 0.8  # the admin's list shows apps at 80 % of their budget or more


class OverBudget(Busy):
    """The app's monthly budget is spent: it may not start (the message says
    why and until when). Nothing was created. A kind of :class:`Busy`, so a
    caller that handles a full server handles this too; the viz page tells
    them apart, and does not retry this one."""


def is_over(*, budget: float | None, spent: float, lifted_until: datetime | None, now: datetime) -> bool:
    """Whether an app may not start: it has a budget, has spent it this
    month, and no admin has lifted it until later than ``now``."""
    if budget is None:
        return False
    if lifted_until is not None and now < lifted_until:
        return False
    return spent >= budget


def lifted(app: VizApp, now: datetime) -> bool:
    return app.budget_lifted_until is not None and now < app.budget_lifted_until


def next_month(now: datetime) -> datetime:
    """The first instant (UTC) of the month after ``now``'s."""
    return month_bounds(now.year, now.month)[1]


def message(*, budget: float, spent: float, now: datetime) -> str:
    """What a viewer (and the owner) is told when the app may not start."""
    return (
        f"This app has used ${spent:,.2f} of its ${budget:,.2f} budget for {now:%B %Y}, so it does "
        f"not start. It may start again on {next_month(now):%-d %B %Y} (UTC), or as soon as an "
        "admin lifts its budget."
    )


def spent(app: VizApp, *, now: datetime, prices: Prices) -> float:
    """Dollars the app has cost this month so far."""
    return app_month_cost(app.id, now.year, now.month, prices, now).dollars


def check(app: VizApp, *, now: datetime, prices: Prices) -> None:
    """Raise :class:`OverBudget` if the app may not start now. Queries the
    costs only for an app with a budget that is not lifted."""
    if app.monthly_budget is None or lifted(app, now):
        return
    amount = spent(app, now=now, prices=prices)
    if is_over(budget=app.monthly_budget, spent=amount, lifted_until=None, now=now):
        raise OverBudget(message(budget=app.monthly_budget, spent=amount, now=now))


def lift(app: VizApp, *, now: datetime) -> datetime:
    """Let the app start whatever it costs for the rest of this month; the
    moment the lift ends (the 1st of next month). The caller records who."""
    until = next_month(now)
    app.budget_lifted_until = until
    db.session.commit()
    return until


@dataclass(frozen=True)
class BudgetRow:
    app: VizApp
    budget: float
    spent: float
    lifted_until: datetime | None

    @property
    def share(self) -> float:
        return self.spent / self.budget if self.budget else 0.0

    @property
    def over(self) -> bool:
        return self.spent >= self.budget


def rows(apps: Iterable[VizApp], *, now: datetime, prices: Prices) -> list[BudgetRow]:
    """This month's spending of each of these apps that has a budget, most
    spent (as a share of its budget) first: one cost query for all of them."""
    budgeted = [app for app in apps if app.monthly_budget is not None]
    if not budgeted:
        return []
    only = budgeted[0].id if len(budgeted) == 1 else None  # one app: its rows only
    by_app = monthly_costs(now.year, now.month, prices, now, app_id=only).by_app
    found = [
        BudgetRow(
            app=app,
            budget=float(app.monthly_budget or 0),
            spent=by_app[app.id].dollars if app.id in by_app else 0.0,
            lifted_until=app.budget_lifted_until if lifted(app, now) else None,
        )
        for app in budgeted
    ]
    return sorted(found, key=lambda row: (-row.share, row.app.id))


def over_budget_ids(apps: Iterable[VizApp], *, now: datetime, prices: Prices) -> set[int]:
    """The ids of those apps that may not start now for their budget (what
    the gallery, the app page and the owner's page show)."""
    return {
        row.app.id
        for row in rows(apps, now=now, prices=prices)
        if is_over(budget=row.budget, spent=row.spent, lifted_until=row.lifted_until, now=now)
    }


def near_or_over(*, now: datetime, prices: Prices) -> list[BudgetRow]:
    """The admin dashboard's list: apps not deleted with a budget, at
    :data:`NEAR` of it or more this month."""
    apps = db.session.scalars(
        select(VizApp).where(VizApp.monthly_budget.is_not(None), VizApp.deleted_at.is_(None))
    )
    return [row for row in rows(apps, now=now, prices=prices) if row.share >= NEAR]
