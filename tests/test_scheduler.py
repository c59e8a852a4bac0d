"""The scheduler: job settings, starting rules, skipping under a held lease, error logging."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import timedelta

import click

from app import create_app, leases, lifecycle, scheduler, sweep
from app.extensions import db
from app.models import utcnow
from tests.factories import build_app, make_app, make_settings
from tests.serving import REPO


def test_job_is_configured_for_one_run_at_a_time(app):
    job = app.extensions[scheduler.EXTENSION_KEY].get_job(scheduler.SWEEP_JOB_ID)
    assert job is not None
    assert job.max_instances == 1 and job.coalesce is True
    assert (
        job.trigger.interval
        == timedelta(seconds=app.config["DORMOUSE"].sweep_interval)
        == timedelta(seconds=15)
    )


def test_not_started_when_disabled(app):
    assert app.config["DORMOUSE"].scheduler_enabled is False
    assert scheduler.start(app) is False
    assert not app.extensions[scheduler.EXTENSION_KEY].running


def test_started_when_enabled_and_not_in_reloader_parent(tmp_path, monkeypatch):
    enabled = build_app(make_settings(tmp_path, SCHEDULER_ENABLED="1", SWEEP_INTERVAL="3600"))
    enabled.debug = True
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "true")
    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    assert scheduler.start(enabled) is False  # the reloader's parent
    monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    try:
        assert scheduler.start(enabled) is True
        assert enabled.extensions[scheduler.EXTENSION_KEY].running
        assert scheduler.start(enabled) is True  # idempotent
    finally:
        scheduler.shutdown(enabled)


def test_only_flask_run_starts_it_among_cli_commands(tmp_path):
    settings = make_settings(tmp_path, SCHEDULER_ENABLED="1", SWEEP_INTERVAL="3600")
    for command in ("users", "db", "sweep", "run"):
        with click.Context(click.Command(command)):
            made = create_app(settings=settings)
        try:
            assert made.extensions[scheduler.EXTENSION_KEY].running is (command == "run"), command
        finally:
            scheduler.shutdown(made)


def test_a_cli_command_starts_no_scheduler(tmp_path):
    """`flask users create`, run as an operator runs it: no sweep, no scheduler."""
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path / "instance"), "SCHEDULER_ENABLED": "1",
           "SWEEP_INTERVAL": "1", "LOG_LEVEL": "INFO"}  # fmt: skip
    env.pop("DATABASE_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
    done = subprocess.run([*flask, "users", "create", "bob", "--password-stdin"], cwd=REPO, env=env,
                          input="correct-horse\n", capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Created user bob" in done.stdout
    assert "scheduler started" not in done.stderr and "sweep" not in done.stderr, done.stderr


def test_run_sweep_skips_while_another_worker_sweeps(app, fake_backend, alice):
    dep = lifecycle.ensure_deployment(make_app(alice, "wave"), now=utcnow() - timedelta(hours=2))
    assert leases.acquire(sweep.SWEEP_LEASE, "other-worker", ttl=60)
    assert scheduler.run_sweep(app).ran is False
    assert dep.status == "starting"
    leases.release(sweep.SWEEP_LEASE, "other-worker")
    report = scheduler.run_sweep(app)
    assert report.ran and len(report.failed) == 1
    db.session.refresh(dep)
    assert dep.status == "failed"  # it never became ready


def test_job_errors_are_logged(app, caplog):
    sched = app.extensions[scheduler.EXTENSION_KEY]
    import threading

    done = threading.Event()
    sched.add_listener(lambda event: done.set(), scheduler.EVENT_JOB_ERROR)

    def failing(app_):
        raise RuntimeError("sweep exploded")

    sched.add_job(failing, args=[app], id="failing", next_run_time=utcnow())
    with caplog.at_level(logging.ERROR, logger="app.scheduler"):
        sched.start()
        try:
            assert done.wait(10)
        finally:
            sched.shutdown(wait=True)
    assert any("scheduled job failing raised" in r.getMessage() for r in caplog.records)
