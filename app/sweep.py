"""The sweep: the periodic pass that the scheduler, `flask sweep` and
`flask reconcile` run over every live deployment.

It reconciles the database with the backend, then applies the idle policy
(:func:`app.idle.decide`) to each live row through the lifecycle's own
operations, so every rule stays in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from . import idle
from .extensions import db
from .lifecycle import backend, fail, limits, refresh, stop
from .models import LIVE_STATUSES, Deployment, utcnow

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    ran: bool = True
    stopped: list[tuple[Deployment, str]] = field(default_factory=list)  # (deployment, detail)
    failed: list[Deployment] = field(default_factory=list)
    vanished: list[Deployment] = field(default_factory=list)
    orphans_stopped: list[str] = field(default_factory=list)
    errors: int = 0


def sweep(*, now: datetime | None = None, lim: idle.IdleLimits | None = None) -> SweepReport:
    """One pass: reconcile with the backend (so a lost app is reported as gone,
    not idle), then fail deployments that never started and stop idle ones."""
    now = now or utcnow()
    lim = lim or limits()
    report = reconcile(now=now)
    ids = db.session.scalars(
        select(Deployment.id).where(Deployment.status.in_(LIVE_STATUSES)).order_by(Deployment.id)
    ).all()
    for dep_id in ids:
        try:
            dep = db.session.get(Deployment, dep_id)
            if dep is None or not dep.is_live:
                continue
            if dep.status == "starting":
                refresh(dep, now=now, force=True)
                if dep.status == "failed":
                    report.failed.append(dep)
                    continue
            verdict = idle.decide(
                now=now, status=dep.status, created_at=dep.created_at,
                latest_load_at=dep.latest_load_at, latest_ping_at=dep.latest_ping_at, limits=lim,
            )
            if not verdict.stop:
                continue
            if verdict.kind == "start-timeout":
                if fail(dep, f"The app did not become ready: {verdict.detail}.", now):
                    report.failed.append(dep)
            elif stop(dep, reason="idle", now=now, detail=verdict.detail, if_unchanged=True):
                report.stopped.append((dep, verdict.detail))
        except Exception:
            report.errors += 1
            db.session.rollback()
            log.exception("sweep: deployment id %s failed; going on", dep_id)
    return report


def reconcile(*, now: datetime | None = None) -> SweepReport:
    """Make the database and the backend agree, from one listing of the backend.

    Running rows whose app is no longer listed are marked stopped (``gone``),
    or failed when the backend knows it crashed; things the backend runs that
    no live row knows (orphans, e.g. after a crash) are stopped. Rows are read
    *after* the listing, and every row exists before its backend object is
    created, so a deployment being created is never taken for an orphan.
    """
    now = now or utcnow()
    report = SweepReport()
    be = backend()
    listed_at = utcnow()
    try:
        listed = be.list()
    except Exception:
        report.errors += 1
        log.exception("reconcile: listing the backend failed")
        return report
    live = db.session.scalars(
        select(Deployment).where(Deployment.status.in_(LIVE_STATUSES), Deployment.backend == be.name)
    ).all()
    for dep in live:
        vanished = (dep.status == "running" and dep.ready_at is not None
                    and dep.ready_at < listed_at and dep.deployment_name not in listed)
        if not vanished:
            continue
        try:
            status = be.status(dep.backend_ref) if dep.backend_ref else None
            if status is not None and status.state == "failed":
                changed = fail(dep, status.reason or "The app exited.", now)
            else:
                changed = stop(dep, reason="gone", now=now,
                               detail=(status.reason if status else "") or "The app is no longer running.")
            if changed:
                report.vanished.append(dep)
        except Exception:
            report.errors += 1
            db.session.rollback()
            log.exception("reconcile: deployment %s failed; going on", dep.public_name)
    known = {dep.deployment_name for dep in live}
    for name, ref in listed.items():
        if name in known:
            continue
        try:
            be.stop(ref)
            report.orphans_stopped.append(ref)
            log.info("reconcile: stopped orphan %s", name)
        except Exception:
            report.errors += 1
            log.exception("reconcile: stopping orphan %s failed; going on", name)
    return report
