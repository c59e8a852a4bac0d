"""The sweep: the periodic pass that the scheduler, `flask sweep` and
`flask reconcile` run over every live deployment, one at a time across
workers and replicas (the ``sweep`` lease, :mod:`app.leases`).

It reconciles the database with the backend (:mod:`app.reconcile`), then
applies the idle policy (:func:`app.idle.decide`, and its SQL twin in
:mod:`app.stale` that chooses the stale set in one query), so every rule stays
in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from . import idle, leases, metrics, stale, tokens
from . import reconcile as reconciling
from .extensions import db
from .lifecycle import backend, limits, refresh, settings
from .models import Deployment, utcnow
from .stale import DeploymentRef

log = logging.getLogger(__name__)

SWEEP_LEASE = "sweep"


@dataclass
class SweepReport:
    ran: bool = True  # False when another worker held the sweep lease
    stopped: list[tuple[DeploymentRef, str]] = field(default_factory=list)  # (deployment, detail)
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
    replica is sweeping; otherwise a report with ``ran`` False. While it
    runs, :func:`keep_lease` renews the lease, so a long pass never outlives it."""
    ttl = lease_ttl()
    with leases.held(SWEEP_LEASE, ttl=ttl) as held:
        if not held:
            log.debug("sweep: another worker holds the lease")
            return SweepReport(ran=False)
        token = _LEASE.set(_Lease(leases.HOLDER, ttl, time.monotonic()))
        try:
            return run()
        finally:
            _LEASE.reset(token)


@dataclass
class _Lease:
    holder: str
    ttl: float
    renewed: float  # time.monotonic() of the last renewal


_LEASE: ContextVar[_Lease | None] = ContextVar("sweep_lease", default=None)


def keep_lease() -> bool:
    """Renew the sweep lease when a quarter of its time has gone (called
    between pages of a pass); False if another worker has taken it. Outside
    :func:`under_lease` (a direct call, a test) there is nothing to renew."""
    lease = _LEASE.get()
    if lease is None or time.monotonic() - lease.renewed < lease.ttl / 4:
        return True
    lease.renewed = time.monotonic()
    return leases.acquire(SWEEP_LEASE, lease.holder, lease.ttl)


@metrics.timed_sweep
def sweep(*, now: datetime | None = None, lim: idle.IdleLimits | None = None) -> SweepReport:
    """One pass: reconcile with the backend (so a lost app is reported as gone,
    not idle), then fail deployments that never started and stop idle ones;
    last, forget the entry tokens that have expired.

    Idle rows are chosen and stopped as a set (:mod:`app.stale`: one indexed
    query read in pages, one conditional UPDATE per page, one backend stop
    per stopped row); starting rows, few at any time, are read one by one.
    """
    now = now or utcnow()
    lim = lim or limits()
    report = reconcile(now=now)
    if not report.ran:
        return report
    ids = db.session.scalars(
        select(Deployment.id).where(Deployment.status == "starting").order_by(Deployment.id)
    ).all()
    for dep_id in ids:
        try:
            dep = db.session.get(Deployment, dep_id)
            if dep is None or dep.status != "starting":
                continue
            # never idle while starting; refresh fails it past START_TIMEOUT
            refresh(dep, now=now, force=True, lim=lim)
            if dep.status == "failed":
                report.failed.append(dep)
        except Exception:
            report.errors += 1
            db.session.rollback()
            log.exception("sweep: deployment id %s failed; going on", dep_id)
    idle_stops = stale.stop_idle(now, lim, backend(), keep_going=keep_lease)
    report.stopped += idle_stops.stopped
    report.errors += idle_stops.errors
    if idle_stops.gave_up:
        log.warning("sweep: lost the sweep lease mid-pass; another worker goes on")
        return report
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
    """Make the database and the backend agree, from one listing of the
    backend (:mod:`app.reconcile`); ``ran`` is False if the sweep lease was
    lost on the way."""
    report = SweepReport()
    report.ran = reconciling.reconcile(backend(), report, now=now or utcnow(), keep_going=keep_lease)
    if not report.ran:
        log.warning("reconcile: lost the sweep lease mid-pass; another worker goes on")
    return report
