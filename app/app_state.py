"""What every page says about an app's state, from its latest deployment.

One pure function, :func:`state_of`, turns the latest deployment (the live one
if any, else the most recent) into what the gallery, the app page and the
owner's page show: starting, running (since), asleep (since), failed (at, and
why: for the owner and admins only), and :func:`latest_deployments` reads that
deployment for many apps in one query. :func:`with_budgets` marks the apps
whose monthly budget keeps them from starting (app/budget.py): "over budget".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import case, func, select

from . import budget
from .extensions import db
from .models import LIVE_STATUSES, Deployment, VizApp
from .prices import Prices


@dataclass(frozen=True)
class AppState:
    label: str  # "starting", "running", "asleep" or "failed"
    since: datetime | None  # when it started, became ready, stopped or failed; None: never ran
    reason: str = ""  # why it failed (the app's output: for its owner and admins only)
    stop_reason: str = ""  # idle, owner, admin, gone, failed
    over_budget: bool = False  # not live, and its monthly budget keeps it from starting

    @property
    def is_live(self) -> bool:
        return self.label in LIVE_STATUSES

    @property
    def words(self) -> str:
        """ "running since", "asleep since", "failed at", "starting since"."""
        return {"failed": "failed at"}.get(self.label, f"{self.label} since")


def state_of(dep: Deployment | None) -> AppState:
    if dep is None:
        return AppState("asleep", None)
    if dep.status == "starting":
        return AppState("starting", dep.created_at)
    if dep.status == "running":
        return AppState("running", dep.ready_at or dep.created_at)
    if dep.status == "failed":
        return AppState("failed", dep.stopped_at or dep.created_at, dep.status_reason or "", "failed")
    return AppState("asleep", dep.stopped_at, stop_reason=dep.stop_reason or "")


def latest_deployments(app_ids: list[int], name: str = "default") -> dict[int, Deployment]:
    """Each app's live deployment, or else its most recent one, in one query
    (what :func:`app.lifecycle.latest_deployment` reads for one app)."""
    if not app_ids:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=Deployment.app_id,
            order_by=(
                case((Deployment.status.in_(LIVE_STATUSES), 0), else_=1),
                Deployment.created_at.desc(),
                Deployment.id.desc(),
            ),
        )
        .label("rank")
    )
    ranked = (
        select(Deployment.id, rank).where(Deployment.app_id.in_(app_ids), Deployment.name == name).subquery()
    )
    rows = db.session.scalars(
        select(Deployment).join(ranked, ranked.c.id == Deployment.id).where(ranked.c.rank == 1)
    )
    return {dep.app_id: dep for dep in rows}


def states(app_ids: list[int]) -> dict[int, AppState]:
    latest = latest_deployments(app_ids)
    return {app_id: state_of(latest.get(app_id)) for app_id in app_ids}


def with_budgets(
    states: dict[int, AppState], apps: Sequence[VizApp], *, now: datetime, prices: Prices
) -> dict[int, AppState]:
    """``states`` with the apps that may not start for their budget marked
    (one cost query, and only if one of them has a budget). A live app is
    not marked: a running deployment is never cut off for its cost."""
    over = budget.over_budget_ids(apps, now=now, prices=prices)
    return {
        app_id: replace(state, over_budget=True) if app_id in over and not state.is_live else state
        for app_id, state in states.items()
    }
