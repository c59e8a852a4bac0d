"""The in-process sweep, run by APScheduler.

Every worker that serves requests may run a scheduler; a database lease makes
sure that only one sweep runs at a time across workers and replicas. The
scheduler is started by the server (gunicorn's ``post_worker_init`` hook, or
``flask run``), never by other CLI commands or the debug reloader's parent.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Iterator

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from . import lifecycle, sweep
from .extensions import db
from .models import SchedulerLease, utcnow

log = logging.getLogger(__name__)

SWEEP_JOB_ID = "dormouse-sweep"
SWEEP_LEASE = "sweep"
HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
EXTENSION_KEY = "dormouse.scheduler"


def acquire_lease(name: str, holder: str, ttl: float, now: datetime | None = None) -> bool:
    """Take the named lease if it is free, expired, or already ours."""
    now = now or utcnow()
    expires = now + timedelta(seconds=ttl)
    result = db.session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name,
               or_(SchedulerLease.expires_at < now, SchedulerLease.holder == holder))
        .values(holder=holder, expires_at=expires)
    )
    if result.rowcount == 1:
        db.session.commit()
        return True
    db.session.rollback()
    if db.session.get(SchedulerLease, name) is not None:
        return False
    db.session.add(SchedulerLease(name=name, holder=holder, expires_at=expires))
    try:
        db.session.commit()
        return True
    except IntegrityError:  # someone else created it first
        db.session.rollback()
        return False


def release_lease(name: str, holder: str) -> None:
    db.session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
        .values(expires_at=utcnow())
    )
    db.session.commit()


@contextmanager
def lease(name: str, ttl: float, holder: str = HOLDER) -> Iterator[bool]:
    held = acquire_lease(name, holder, ttl)
    try:
        yield held
    finally:
        if held:
            try:
                release_lease(name, holder)
            except Exception:  # it expires by itself
                db.session.rollback()
                log.exception("could not release lease %s", name)


def sweep_under_lease() -> sweep.SweepReport:
    """One sweep, if no other worker or replica is sweeping (``ran`` False then)."""
    ttl = max(120.0, lifecycle.settings().sweep_interval * 2)
    with lease(SWEEP_LEASE, ttl=ttl) as held:
        if not held:
            log.debug("sweep: another worker holds the lease")
            return sweep.SweepReport(ran=False)
        return sweep.sweep()


def run_sweep(app: Flask) -> sweep.SweepReport:
    """The scheduler's job: a sweep under the lease, inside an app context."""
    with app.app_context():
        report = sweep_under_lease()
        if report.stopped or report.failed or report.vanished or report.orphans_stopped:
            log.info(
                "sweep: stopped %d idle, %d failed to start, %d vanished, %d orphans",
                len(report.stopped), len(report.failed), len(report.vanished),
                len(report.orphans_stopped),
            )
        return report


def _on_job_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error("scheduled job %s raised", event.job_id,
                  exc_info=(type(event.exception), event.exception, event.exception.__traceback__))
    else:
        log.warning("scheduled job %s missed its run time", event.job_id)


def init_app(app: Flask) -> None:
    """Make (but do not start) the scheduler with the sweep job."""
    settings = app.config["DORMOUSE"]
    scheduler = BackgroundScheduler(timezone="UTC", daemon=True)
    scheduler.add_job(
        run_sweep,
        "interval",
        args=[app],
        id=SWEEP_JOB_ID,
        seconds=settings.sweep_interval,
        next_run_time=utcnow() + timedelta(seconds=2),  # soon after start: reconcile
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(settings.sweep_interval)),
        replace_existing=True,
    )
    scheduler.add_listener(_on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    app.extensions[EXTENSION_KEY] = scheduler


def start(app: Flask) -> bool:
    """Start the app's scheduler if enabled; return whether it is running."""
    settings = app.config["DORMOUSE"]
    scheduler: BackgroundScheduler | None = app.extensions.get(EXTENSION_KEY)
    if scheduler is None or not settings.scheduler_enabled:
        return False
    if app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true" and os.environ.get(
        "FLASK_RUN_FROM_CLI"
    ):
        return False  # the reloader's parent process: its child runs the scheduler
    if not scheduler.running:
        scheduler.start()
        log.info("scheduler started: sweep every %.0fs", settings.sweep_interval)
    return True


def shutdown(app: Flask) -> None:
    scheduler: BackgroundScheduler | None = app.extensions.get(EXTENSION_KEY)
    if scheduler is not None and scheduler.running:
        scheduler.shutdown(wait=False)
