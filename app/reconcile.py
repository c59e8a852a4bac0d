"""Reconcile: make the database and the backend agree, from one listing of the
backend and one query of the live rows' names (read in keyset pages by id, so
memory does not grow with the table; only the columns a name needs, no ORM
objects). :func:`app.sweep.reconcile` runs it under the sweep's report.

Running rows whose app is no longer listed are marked stopped (``gone``), or
failed when the backend knows it crashed; things the backend runs that no live
row knows (orphans, e.g. after a crash) are stopped. Rows are read *after* the
listing, and every row exists before its backend object is created, so a
deployment being created is never taken for an orphan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Protocol

from sqlalchemy import select

from . import slugs
from .backends.base import Backend
from .extensions import db
from .lifecycle import fail, stop
from .models import LIVE_STATUSES, Deployment, User, VizApp, utcnow

log = logging.getLogger(__name__)

PAGE = 5000  # live rows per page of the names query


class Report(Protocol):
    """What reconcile adds to (``app.sweep.SweepReport`` has it)."""

    vanished: list[Deployment]
    orphans_stopped: list[str]
    errors: int


def live_names(backend_name: str, page: int = PAGE) -> Iterator[list]:
    """(id, status, ready_at, name) of the live rows under this backend, a
    page at a time: one query, resumed after each page's last id."""
    after = 0
    while True:
        rows = db.session.execute(
            select(
                Deployment.id,
                Deployment.status,
                Deployment.ready_at,
                Deployment.public_name,
                User.username,
                VizApp.title,
            )  # fmt: skip
            .join(VizApp, VizApp.id == Deployment.app_id)
            .join(User, User.id == VizApp.owner_id)
            .where(
                Deployment.status.in_(LIVE_STATUSES),
                Deployment.backend == backend_name,
                Deployment.id > after,
            )
            .order_by(Deployment.id)
            .limit(page)
        ).all()
        if not rows:
            return
        yield rows
        if len(rows) < page:
            return
        after = rows[-1].id


def reconcile(
    be: Backend,
    report: Report,
    *,
    now: datetime,
    keep_going: Callable[[], bool] = lambda: True,
    page: int = PAGE,
) -> bool:
    """Reconcile into ``report``; False if ``keep_going()`` said stop (the
    sweep lost its lease) before the end."""
    listed_at = utcnow()
    try:
        listed = be.list()
    except Exception:
        report.errors += 1
        log.exception("reconcile: listing the backend failed")
        return True
    unmatched = dict(listed)  # what no live row has claimed yet: orphans at the end
    for rows in live_names(be.name, page):
        if not keep_going():
            return False
        vanished = []
        for row in rows:
            name = slugs.deployment_name(row.username, row.title, row.public_name)
            unmatched.pop(name, None)
            if (
                name not in listed
                and row.status == "running"
                and row.ready_at is not None
                and row.ready_at < listed_at
            ):
                vanished.append(row.id)
        for dep_id in vanished:
            _gone(be, dep_id, report, now)
    for name, ref in unmatched.items():
        try:
            be.stop(ref)
            report.orphans_stopped.append(ref)
            log.info("reconcile: stopped orphan %s", name)
        except Exception:
            report.errors += 1
            log.exception("reconcile: stopping orphan %s failed; going on", name)
    return True


def _gone(be: Backend, dep_id: int, report: Report, now: datetime) -> None:
    """Mark one running row whose app the backend no longer lists."""
    dep = db.session.get(Deployment, dep_id)
    if dep is None or dep.status != "running":
        return
    try:
        status = be.status(dep.backend_ref) if dep.backend_ref else None
        if status is not None and status.state == "failed":
            changed = fail(dep, status.reason or "The app exited.", now)
        else:
            changed = stop(
                dep,
                reason="gone",
                now=now,
                detail=(status.reason if status else "") or "The app is no longer running.",
            )
        if changed:
            report.vanished.append(dep)
    except Exception:
        report.errors += 1
        db.session.rollback()
        log.exception("reconcile: deployment %s failed; going on", dep.public_name)
