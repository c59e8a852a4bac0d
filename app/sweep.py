"""The sweep: the periodic pass that the scheduler, `flask sweep` and
`flask reconcile` run over every live deployment, one at a time across
workers and replicas (the ``sweep`` lease, :mod:`app.leases`).

It reconciles the database with the backend, then applies the idle policy
(:func:`app.idle.decide`) to each live row through the lifecycle's own
operations, so every rule stays in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from . import idle, leases, metrics, tokens
from .extensions import db
from .lifecycle import backend, fail, limits, refresh, settings, stop
from .models import LIVE_STATUSES, Deployment, utcnow

log = logging.getLogger(__name__)

SWEEP_LEASE = "sweep"


@dataclass
class SweepReport:
    ran: bool = True  # False when another worker held the sweep lease
    stopped: list[tuple[Deployment, str]] = field(default_factory=list)  # (deployment, detail)
    failed: list[Deployment] = field(default_factory=list)
    vanished: list[Deployment] = field(default_factory=list)
    orphans_stopped: list[str] = field(default_factory=list)
    errors: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.stopped or self.failed or self.vanished or self.orphans_stopped)

    def lines(self) -> list[str]:
        """One line per thing the pass changed, for the CLI and the logs."""
        out = [
            f"stopped {dep.app.slug_path} ({dep.public_name}): idle, {detail}" for dep, detail in self.stopped
        ]
        out += [f"failed {dep.app.slug_path} ({dep.public_name}): {dep.status_reason}" for dep in self.failed]
        out += [f"gone {dep.app.slug_path} ({dep.public_name}): {dep.status_reason}" for dep in self.vanished]
        out += [f"stopped orphan {ref}" for ref in self.orphans_stopped]
        return out

    def summary(self) -> str:
        return (
            f"stopped {len(self.stopped)} idle, {len(self.failed)} failed to start, "
            f"{len(self.vanished)} vanished, {len(self.orphans_stopped)} orphans, "
            f"{self.errors} errors"
        )


def lease_ttl() -> float:
    """How long one pass may hold the sweep lease before another may take it."""
    return max(120.0, settings().sweep_interval * 2)


def under_lease(run: Callable[[], SweepReport]) -> SweepReport:
    """``run()`` (:func:`sweep` or :func:`reconcile`) if no other worker or
    replica is sweeping; otherwise a report with ``ran`` False."""
    with leases.held(SWEEP_LEASE, ttl=lease_ttl()) as held:
        if not held:
            log.debug("sweep: another worker holds the lease")
            return SweepReport(ran=False)
        return run()


@metrics.timed_sweep
def sweep(*, now: datetime | None = None, lim: idle.IdleLimits | None = None) -> SweepReport:
    """One pass: reconcile with the backend (so a lost app is reported as gone,
    not idle), then fail deployments that never started and stop idle ones;
    last, forget the entry tokens that have expired."""
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
                # never idle while starting; refresh fails it past START_TIMEOUT
                refresh(dep, now=now, force=True, lim=lim)
                if dep.status == "failed":
                    report.failed.append(dep)
                continue
            verdict = idle.decide(now=now, deployment=dep, limits=lim)
            # if_unchanged: a load or ping that lands after this decision keeps it
            if verdict.stop and stop(dep, reason="idle", now=now, detail=verdict.detail, if_unchanged=True):
                report.stopped.append((dep, verdict.detail))
        except Exception:
            report.errors += 1
            db.session.rollback()
            log.exception("sweep: deployment id %s failed; going on", dep_id)
    try:
        tokens.forget_expired(now)
    except Exception:
        report.errors += 1
        db.session.rollback()
        log.exception("sweep: forgetting expired entry tokens failed")
    try:
        environments_upkeep(now)
    except Exception:
        report.errors += 1
        db.session.rollback()
        log.exception("sweep: environment upkeep failed")
    return report


ENV_PRUNE_EVERY = 10  # sweeps between two prunes of unused environments (per process)
_sweeps = 0


def environments_upkeep(now: datetime) -> None:
    """Local backend: take over environment builds whose builder died (one
    query), and every :data:`ENV_PRUNE_EVERY` sweeps remove environments no
    app uses any more (app/env_builds.py)."""
    global _sweeps
    s = settings()
    if s.backend != "local":
        return
    from . import app_envs, env_builds

    app_envs.retry_stale(s, now=now)
    _sweeps += 1
    if _sweeps % ENV_PRUNE_EVERY == 1:
        env_builds.prune(env_builds.Builder.from_settings(s), now=now)


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
        vanished = (
            dep.status == "running"
            and dep.ready_at is not None
            and dep.ready_at < listed_at
            and dep.deployment_name not in listed
        )
        if not vanished:
            continue
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
