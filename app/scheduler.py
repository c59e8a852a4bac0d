"""The in-process sweep, run by APScheduler: this module only wires the job.

Every worker that serves requests may run a scheduler; the sweep's own lease
(:func:`app.sweep.under_lease`) makes sure that only one sweep runs at a time
across workers and replicas. The scheduler is started by the server
(gunicorn's ``post_worker_init`` hook, or ``flask run``), never by other CLI
commands or the debug reloader's parent.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import click
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from . import sweep
from .models import utcnow

log = logging.getLogger(__name__)

SWEEP_JOB_ID = "dormouse-sweep"
EXTENSION_KEY = "dormouse.scheduler"


def run_sweep(app: Flask) -> sweep.SweepReport:
    """The scheduler's job: one sweep under the sweep lease, in an app context."""
    with app.app_context():
        report = sweep.under_lease(sweep.sweep)
        if report.changed or report.errors:
            log.info("sweep: %s", report.summary())
            for line in report.lines():
                log.info("sweep: %s", line)
        return report


def _on_job_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error(
            "scheduled job %s raised",
            event.job_id,
            exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
        )
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


def started_by_flask_run() -> bool:
    """Whether this app is being made for ``flask run`` (the development
    server): the app factory then runs inside the ``run`` command's click
    context. Every other CLI command (``users create``, ``db upgrade``...) must
    not sweep: it may run anywhere, see no backend and mark live rows gone."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.command.name == "run"


def start(app: Flask) -> bool:
    """Start the app's scheduler if enabled; return whether it is running."""
    settings = app.config["DORMOUSE"]
    scheduler: BackgroundScheduler | None = app.extensions.get(EXTENSION_KEY)
    if scheduler is None or not settings.scheduler_enabled:
        return False
    if app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true" and os.environ.get("FLASK_RUN_FROM_CLI"):
        return False  # the reloader's parent process: its child runs the scheduler
    if not scheduler.running:
        scheduler.start()
        log.info("scheduler started: sweep every %.0fs", settings.sweep_interval)
    return True


def shutdown(app: Flask) -> None:
    scheduler: BackgroundScheduler | None = app.extensions.get(EXTENSION_KEY)
    if scheduler is not None and scheduler.running:
        scheduler.shutdown(wait=False)
