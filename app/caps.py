"""The caps on live deployments (``MAX_LIVE_DEPLOYMENTS`` in all,
``MAX_LIVE_PER_OWNER`` per publisher), exact across workers and replicas.

A new deployment claims one free numbered slot of each cap; partial unique
indexes on the live rows (app/models.py) let no two live deployments hold the
same slot, so a race loses at the INSERT and looks again
(:func:`app.lifecycle.ensure_deployment`). With no slot free, :class:`Busy`.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from .config import Settings
from .extensions import db
from .models import LIVE_STATUSES, Deployment, VizApp

SLOT_ATTEMPTS = 8  # tries to claim a free slot while others claim them too

BUSY_TOTAL = "The server is running as many apps as it may right now."
BUSY_OWNER = "This publisher's apps are running as many at once as they may right now."


class Busy(Exception):
    """The app may not start now; the message says why, for the viewer.
    Nothing was created. Raised when a cap on live deployments is reached
    (the viewer is asked to try again later); :class:`app.budget.OverBudget`,
    a kind of it, when the app's monthly budget is spent."""


def free_slots(app: VizApp, limits: Settings) -> tuple[int, int]:
    """A free slot of each cap, chosen at random among the free ones (so
    simultaneous starts rarely reach for the same); :class:`Busy` if none."""
    live = select(Deployment.slot, Deployment.owner_id, Deployment.owner_slot).where(
        Deployment.status.in_(LIVE_STATUSES)
    )
    rows = db.session.execute(live).all()
    taken = {row.slot for row in rows}
    owner_taken = {row.owner_slot for row in rows if row.owner_id == app.owner_id}
    free = [n for n in range(limits.max_live_deployments) if n not in taken]
    owner_free = [n for n in range(limits.max_live_per_owner) if n not in owner_taken]
    if not owner_free:
        raise Busy(BUSY_OWNER)
    if not free:
        raise Busy(BUSY_TOTAL)
    return secrets.choice(free), secrets.choice(owner_free)
