"""Reconcile: make the database and the backend agree, from one listing of the
backend and one query of the live rows' names (read in keyset pages by id, so
memory does not grow with the table; only the columns a name needs, no ORM
objects). It counts the listed names a live row has; only when some are left
(orphans) does it read the names again to find which, so the common pass keeps
no set of names. :func:`app.sweep.reconcile` runs it under the sweep's report.

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

from sqlalchemy import and_, case, literal, select

from . import keyset
from .backends.base import Backend
from .extensions import db
from .lifecycle import fail, stop
from .models import LIVE_STATUSES, Deployment, User, VizApp, utcnow

log = logging.getLogger(__name__)

PAGE = 10_000  # live rows per page of the names query


class Report(Protocol):
    """What reconcile adds to (``app.sweep.SweepReport`` has it)."""

    vanished: list[Deployment]
    orphans_stopped: list[str]
    errors: int


def live_names(backend_name: str, listed_at: datetime, page: int | None = None) -> Iterator[list]:
    """(id, name, ready before ``listed_at`` and running) of the live rows
    under this backend, a page at a time: one query, resumed after each
    page's last id. The name and the flag are computed by the database and
    read through Core (no ORM rows, no datetimes to convert)."""
    name = User.username + "-" + VizApp.title + "-" + Deployment.public_name  # slugs.deployment_name
    page = page or PAGE
    could_vanish = case(
        (and_(Deployment.status == "running", Deployment.ready_at < listed_at), literal(1)), else_=literal(0)
    )
    yield from keyset.pages(
        select(Deployment.id, name, could_vanish)
        .join(VizApp, VizApp.id == Deployment.app_id)
        .join(User, User.id == VizApp.owner_id)
        .where(Deployment.status.in_(LIVE_STATUSES), Deployment.backend == backend_name),
        page,
    )


def reconcile(
    be: Backend,
    report: Report,
    *,
    now: datetime,
    keep_going: Callable[[], bool] = lambda: True,
    page: int | None = None,
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
    matched = 0  # listed names a live row has: all of them, unless there are orphans
    for rows in live_names(be.name, listed_at, page):
        if not keep_going():
            return False
        vanished = []
        for dep_id, name, could_vanish in rows:
            if name in listed:
                matched += 1
            elif could_vanish:
                vanished.append(dep_id)
        for dep_id in vanished:
            _gone(be, dep_id, report, now)
    if matched < len(listed):  # orphans: find them with a second read of the names
        unmatched = dict(listed)
        for rows in live_names(be.name, listed_at, page):
            for _, name, _ in rows:
                unmatched.pop(name, None)
        _stop_orphans(be, unmatched, report)
    return True


def _stop_orphans(be: Backend, orphans: dict[str, str], report: Report) -> None:
    for name, ref in orphans.items():
        try:
            be.stop(ref)
            report.orphans_stopped.append(ref)
            log.info("reconcile: stopped orphan %s", name)
        except Exception:
            report.errors += 1
            log.exception("reconcile: stopping orphan %s failed; going on", name)


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
