"""The deployment lifecycle: the one implementation that views, CLI and the
scheduler all call.

State changes are conditional UPDATEs (``WHERE status IN (...)``), so two
workers racing on the same row never undo each other's work, and the database's
partial unique index makes simultaneous first visits share one deployment.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from . import app_environment, app_envs, budget, idle, metrics, slugs, start_schedule, usage
from .backends.base import AppSpec, Backend, BackendError
from .caps import BUSY_TOTAL, SLOT_ATTEMPTS, Busy, free_slots
from .config import Settings
from .extensions import db
from .models import LIVE_STATUSES, Deployment, VizApp, utcnow
from .publishing import parse_cpu, parse_memory

log = logging.getLogger(__name__)

# Seconds between two backend status reads of one starting deployment, however
# many pages poll it, across all workers and replicas (a conditional update on
# ``status_checked_at`` claims each read): a tenth of its age, from
# STATUS_READ_FIRST while it is young up to STATUS_READ_INTERVAL from 10 s of
# age on (app/start_schedule.py). At most 10 reads a second in a start's
# first second, 10/age a second after it, 1 a second from 10 s on.
STATUS_READ_FIRST = 0.1
STATUS_READ_INTERVAL = 1.0


def settings() -> Settings:
    return current_app.config["DORMOUSE"]


def backend() -> Backend:
    return current_app.extensions["dormouse.backend"]


def limits(s: Settings | None = None) -> idle.IdleLimits:
    s = s or settings()
    return idle.IdleLimits(
        s.idle_load_timeout,
        s.idle_ping_timeout,
        s.start_timeout,
        activity_resolution=s.activity_resolution,
        goodbye_grace=s.goodbye_grace,
    )


def spec_for(dep: Deployment, python: str | None = None) -> AppSpec:
    app = dep.app
    return AppSpec(
        owner=app.owner.username,
        title=app.title,
        framework=app.framework,  # type: ignore[arg-type]
        deployment_name=dep.deployment_name,
        prefix=dep.prefix,
        source=app.source,
        callable=app.callable,
        image=app.image,
        command=app.command,
        port=app.port,
        cpu=app.cpu,
        memory=app.memory,
        env=dict(app.env or {}),
        deployment_id=dep.id,
        public_name=dep.public_name,
        python=python,
    )


# --- reading -----------------------------------------------------------------


def live_deployment(app: VizApp, name: str = "default") -> Deployment | None:
    return db.session.scalar(
        select(Deployment).where(
            Deployment.app_id == app.id,
            Deployment.name == name,
            Deployment.status.in_(LIVE_STATUSES),
        )
    )


def live_deployments(app_ids: list[int], name: str = "default") -> dict[int, Deployment]:
    """The live deployment of each of these apps that has one, in one query."""
    if not app_ids:
        return {}
    rows = db.session.scalars(
        select(Deployment).where(
            Deployment.app_id.in_(app_ids),
            Deployment.name == name,
            Deployment.status.in_(LIVE_STATUSES),
        )
    )
    return {dep.app_id: dep for dep in rows}


def is_live(public_name: str) -> bool:
    """Whether the deployment with this public name is starting or running."""
    found = db.session.scalar(
        select(Deployment.id).where(
            Deployment.public_name == public_name, Deployment.status.in_(LIVE_STATUSES)
        )
    )
    return found is not None


def deployment_by_public_name(app: VizApp, public_name: str) -> Deployment | None:
    return db.session.scalar(
        select(Deployment).where(Deployment.app_id == app.id, Deployment.public_name == public_name)
    )


def latest_deployment(app: VizApp, name: str = "default") -> Deployment | None:
    """The live deployment if there is one, else the most recent one."""
    return live_deployment(app, name) or db.session.scalar(
        select(Deployment)
        .where(Deployment.app_id == app.id, Deployment.name == name)
        .order_by(Deployment.created_at.desc(), Deployment.id.desc())
        .limit(1)
    )


# --- writing -----------------------------------------------------------------


def _transition(
    dep: Deployment,
    from_statuses: tuple[str, ...],
    *conditions: ColumnElement[bool],
    refresh_row: bool = True,
    **values: object,
) -> bool:
    """Apply ``values`` to ``dep`` only if its status is still one of
    ``from_statuses`` and every extra condition holds; commit; report whether
    this call made the change. The one conditional update every state change,
    ping and read claim goes through, so racing workers never undo each other."""
    result = db.session.execute(
        update(Deployment)
        .where(Deployment.id == dep.id, Deployment.status.in_(from_statuses), *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if refresh_row:
        db.session.refresh(dep)
    return result.rowcount == 1


def _older_than(column: InstrumentedAttribute[datetime | None], cutoff: datetime) -> ColumnElement[bool]:
    """``column`` is unset or at most ``cutoff``."""
    return or_(column.is_(None), column <= cutoff)


def ensure_deployment(app: VizApp, *, now: datetime | None = None, name: str = "default") -> Deployment:
    """Return the app's live deployment, starting one if there is none.

    Race-safe: when several requests arrive at once, the partial unique index
    lets exactly one INSERT succeed; the others read the winner's row. The
    caps are exact the same way: a new deployment claims a free slot below
    ``MAX_LIVE_DEPLOYMENTS`` and one below ``MAX_LIVE_PER_OWNER`` for its owner,
    and partial unique indexes let no two live rows hold the same slot. With
    none free, :class:`Busy` is raised and nothing is created (app/caps.py);
    so is :class:`app.budget.OverBudget` when the app's monthly budget is
    spent (a live deployment is returned whatever its cost).
    """
    now = now or utcnow()
    existing = live_deployment(app, name)
    if existing is not None:
        return existing
    budget.check(app, now=now, prices=settings().prices)
    python = None
    if backend().name == "local":  # the app runs with its own environment: it must be ready
        python = app_envs.python_for(app, settings(), now=now)
    for _ in range(SLOT_ATTEMPTS):
        slot, owner_slot = free_slots(app, settings())
        dep = Deployment(
            app=app,
            owner_id=app.owner_id,
            slot=slot,
            owner_slot=owner_slot,
            name=name,
            public_name=slugs.public_name(name),
            status="starting",
            phase="Requesting a new deployment",
            backend=backend().name,
            created_at=now,
            cpu_millicores=parse_cpu(app.cpu),  # what runs, for its cost (app/costs.py)
            memory_mib=parse_memory(app.memory),
        )
        db.session.add(dep)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            winner = live_deployment(app, name)
            if winner is not None:
                return winner
            continue  # a slot (or the public name) was taken meanwhile: look again
        log.info("deployment %s: starting %s", dep.public_name, app.slug_path)
        metrics.record_start()
        _launch(dep, now, python)
        return dep
    raise Busy(BUSY_TOTAL)


def _launch(dep: Deployment, now: datetime, python: str | None = None) -> None:
    spec = spec_for(dep, python)
    reserved = app_environment.refused(spec.env)
    if reserved:  # saved before the rule existed: never hand them to a backend
        log.warning("deployment %s: refused reserved environment %s", dep.public_name, reserved)
        fail(
            dep,
            f"This app sets reserved environment variables ({', '.join(reserved)}); "
            "its owner must remove them before it can start.",
            now,
        )
        return
    try:
        ref = backend().create(spec)
    except BackendError as exc:
        log.warning("deployment %s: could not start: %s", dep.public_name, exc)
        fail(dep, str(exc), now)
        return
    except Exception:
        log.exception("deployment %s: backend error while starting", dep.public_name)
        fail(dep, "The server could not start this app (internal error).", now)
        return
    _transition(dep, ("starting",), backend_ref=ref, phase="Starting the app")


def fail(dep: Deployment, reason: str, now: datetime) -> bool:
    """Mark a live deployment failed with ``reason`` and stop what the backend
    started; report whether this call made the change."""
    changed = _transition(
        dep,
        LIVE_STATUSES,
        status="failed",
        status_reason=reason,
        phase="",
        stopped_at=now,
        stop_reason="failed",
    )
    if changed:
        metrics.record_stop("failed")
        _stop_backend(dep)
    return changed


def _stop_backend(dep: Deployment) -> None:
    if not dep.backend_ref:
        return
    try:
        backend().stop(dep.backend_ref)
    except Exception:  # reconcile stops leftovers on a later sweep
        log.exception("deployment %s: backend stop failed; reconcile will retry", dep.public_name)


def record_load(dep: Deployment, *, now: datetime | None = None) -> None:
    """A full page load of the viz page."""
    now = now or utcnow()
    _transition(dep, LIVE_STATUSES, latest_load_at=now, page_loads=Deployment.page_loads + 1)


def record_ping(dep: Deployment, *, now: datetime | None = None) -> bool:
    """A ping from a focused page. Writes only when the recorded ping is older
    than ACTIVITY_RESOLUTION, so many open tabs cost few writes. A ping never
    revives a stopped deployment."""
    now = now or utcnow()
    metrics.record_ping()
    cutoff = now - timedelta(seconds=settings().activity_resolution)
    return _transition(
        dep,
        LIVE_STATUSES,
        _older_than(Deployment.latest_ping_at, cutoff),
        latest_ping_at=now,
        viewer_seconds=usage.ping_credit(
            dep.latest_ping_at,
            now,
            ping_interval=settings().ping_interval,
            activity_resolution=settings().activity_resolution,
        ),
    )


def record_goodbye(dep: Deployment, *, now: datetime | None = None) -> bool:
    """A page of ``dep`` was closed (its ``pagehide`` beacon): one open page
    fewer. A conditional UPDATE: only on a live row (a goodbye never revives
    a stopped one) and never more goodbyes than page loads; report whether
    it counted."""
    now = now or utcnow()
    return _transition(
        dep,
        LIVE_STATUSES,
        Deployment.goodbyes < Deployment.page_loads,
        refresh_row=False,
        goodbyes=Deployment.goodbyes + 1,
        latest_goodbye_at=now,
    )


def refresh(
    dep: Deployment, *, now: datetime | None = None, force: bool = False, lim: idle.IdleLimits | None = None
) -> Deployment:
    """Bring a starting deployment's status up to date from the backend.

    Running, failed and stopped rows are returned as they are: the hot path
    (polls and pings of a running app) never calls the backend. A starting row
    past START_TIMEOUT (the idle policy's rule) is failed; otherwise it is read
    from the backend at most once per STATUS_READ_INTERVAL across all workers
    and replicas (``force``, for the sweep, reads it anyway), a young one
    more often (:func:`read_interval`): the page polls a young start fast, and
    each of its polls may be the one that finds the app ready.
    """
    now = now or utcnow()
    if dep.status != "starting":
        return dep
    verdict = idle.decide(now=now, deployment=dep, limits=lim or limits())
    if verdict.stop:
        fail(dep, f"The app {verdict.detail}.", now)
        return dep
    if not dep.backend_ref or not _due_for_read(dep, now, force):
        return dep
    try:
        status = backend().status(dep.backend_ref)
    except Exception:
        log.exception("deployment %s: status read failed", dep.public_name)
        return dep
    if status.state == "running":
        if _transition(dep, ("starting",), status="running", ready_at=now, phase="Ready"):
            age = (now - dep.created_at).total_seconds()
            log.info("deployment %s: running after %.1fs", dep.public_name, age)
            metrics.observe_cold_start(age)
    elif status.state == "failed":
        fail(dep, status.reason or "The app exited while starting.", now)
    elif status.state == "gone":
        fail(dep, status.reason or "The app's process disappeared before it was ready.", now)
    elif status.phase and status.phase != dep.phase:
        _transition(dep, ("starting",), phase=status.phase[:200])
    return dep


def read_interval(age: float) -> float:
    """Seconds between two backend reads of a starting deployment ``age``
    seconds old."""
    return start_schedule.backoff(age, first=STATUS_READ_FIRST, last=STATUS_READ_INTERVAL)


def _due_for_read(dep: Deployment, now: datetime, force: bool) -> bool:
    """Claim this interval's backend read of ``dep``: only one request (in any
    worker or replica) wins per :func:`read_interval` of its age."""
    if force:
        return True
    interval = read_interval(start_schedule.age_of(dep.created_at, now))
    cutoff = now - timedelta(seconds=interval)
    return _transition(
        dep,
        ("starting",),
        _older_than(Deployment.status_checked_at, cutoff),
        refresh_row=False,
        status_checked_at=now,
    )


def stop(
    dep: Deployment, *, reason: str, now: datetime | None = None, detail: str = "", if_unchanged: bool = False
) -> bool:
    """Stop a live deployment; report whether this call stopped it.

    With ``if_unchanged`` (the idle sweep), the row is stopped only if no load,
    ping or goodbye arrived and no admin kept it awake since ``dep`` was read,
    so a visitor who pings between the decision and the stop keeps the app
    (and a row that changed otherwise is decided again by the next sweep).
    """
    now = now or utcnow()
    guard = []
    if if_unchanged:
        for column, seen in (
            (Deployment.latest_load_at, dep.latest_load_at),
            (Deployment.latest_ping_at, dep.latest_ping_at),
            (Deployment.keep_awake_until, dep.keep_awake_until),
            (Deployment.latest_goodbye_at, dep.latest_goodbye_at),
            (Deployment.page_loads, dep.page_loads),
            (Deployment.goodbyes, dep.goodbyes),
        ):
            guard.append(column.is_(None) if seen is None else column == seen)
    if not _transition(
        dep,
        LIVE_STATUSES,
        *guard,
        status="stopped",
        stopped_at=now,
        stop_reason=reason,
        status_reason=detail,
        phase="",
    ):
        return False
    log.info("deployment %s: stopped (%s) %s", dep.public_name, reason, detail)
    metrics.record_stop(reason)
    _stop_backend(dep)
    return True


def keep_awake(dep: Deployment, *, until: datetime, by: int | None) -> bool:
    """Let the idle sweep keep ``dep`` until ``until`` (an admin's request;
    ``by`` is the admin's user id); report whether it was still live."""
    changed = _transition(dep, LIVE_STATUSES, keep_awake_until=until, keep_awake_by=by)
    if changed:
        log.info("deployment %s: kept awake until %s", dep.public_name, until.isoformat())
    return changed
