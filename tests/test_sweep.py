"""The sweep's own branches, on SQLite and PostgreSQL with a scripted backend:
errors it survives, the race it guards, starting rows, and reconcile's faults."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from app import idle, lifecycle, stale, sweep
from app.auth import get_user
from app.extensions import db
from app.idle import IdleLimits
from app.models import Deployment, utcnow
from tests.factories import make_app, make_user
from tests.fakes import FakeBackend

TINY = IdleLimits(load_timeout=60, ping_timeout=30, start_timeout=120)


def running(backend: FakeBackend, title: str, *, since_seconds: float = 600) -> Deployment:
    """A running deployment of a new app, loaded (and ready) ``since_seconds`` ago."""
    owner = get_user("alice") or make_user("alice")
    when = utcnow() - timedelta(seconds=since_seconds)
    dep = lifecycle.ensure_deployment(make_app(owner, title), now=when)
    lifecycle.record_load(dep, now=when)
    backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, now=when, force=True)
    assert dep.status == "running"
    return dep


def test_an_error_on_one_deployment_is_counted_and_the_sweep_goes_on(any_app, any_fake_backend, monkeypatch):
    a, b = running(any_fake_backend, "a"), running(any_fake_backend, "b")
    real_decide = idle.decide

    def decide(*, deployment, **kwargs):
        if deployment.id == a.id:
            raise RuntimeError("a row it cannot read")
        return real_decide(deployment=deployment, **kwargs)

    monkeypatch.setattr(idle, "decide", decide)
    report = sweep.sweep(lim=TINY)
    assert report.errors == 1
    assert [d.id for d, _ in report.stopped] == [b.id]
    db.session.refresh(a)
    db.session.refresh(b)
    assert a.status == "running" and b.status == "stopped"
    assert any_fake_backend.stopped == [b.backend_ref]


def test_a_failed_update_of_a_page_is_counted_and_the_next_page_goes_on(
    any_app, any_fake_backend, monkeypatch
):
    deps = [running(any_fake_backend, t) for t in ("a", "b", "c")]
    real_scalars = db.session.scalars
    failed = []

    def scalars(statement, *args, **kwargs):
        if getattr(statement, "is_dml", False) and not failed and "UPDATE deployments" in str(statement):
            failed.append(statement)
            raise RuntimeError("database hiccup")
        return real_scalars(statement, *args, **kwargs)

    monkeypatch.setattr(stale, "PAGE", 2)
    monkeypatch.setattr(db.session, "scalars", scalars)
    report = sweep.sweep(lim=TINY)
    assert failed and report.errors == 1
    # the first page (a, b) was left running; the second (c) was stopped
    assert [d.id for d, _ in report.stopped] == [deps[2].id]
    assert any_fake_backend.stopped == [deps[2].backend_ref]


def test_a_ping_between_the_decision_and_the_stop_keeps_the_app(any_app, any_fake_backend, monkeypatch):
    dep = running(any_fake_backend, "watched")
    real_decide = idle.decide

    def decide_then_ping(**kwargs):
        verdict = real_decide(**kwargs)
        # a visitor's ping lands, on its own connection, right after the decision
        with db.engine.begin() as other:
            other.execute(update(Deployment).where(Deployment.id == dep.id).values(latest_ping_at=utcnow()))
        return verdict

    monkeypatch.setattr(idle, "decide", decide_then_ping)
    report = sweep.sweep(lim=TINY)
    assert report.stopped == [] and report.errors == 0
    db.session.refresh(dep)
    assert dep.status == "running" and any_fake_backend.calls["stop"] == 0


def test_a_starting_deployment_is_not_stopped_as_idle(any_app, any_fake_backend):
    # a slow start with a short load limit: the viewer is waiting
    viz = make_app(make_user("alice"), "slow")
    began = utcnow() - timedelta(seconds=10)
    dep = lifecycle.ensure_deployment(viz, now=began)
    lifecycle.record_load(dep, now=began)
    report = sweep.sweep(lim=IdleLimits(load_timeout=4, ping_timeout=3, start_timeout=120))
    assert report.stopped == [] and report.failed == []
    assert dep.status == "starting"
    assert any_fake_backend.calls["status"] == 1  # the sweep read it (force) and left it starting


def test_a_starting_deployment_past_the_start_limit_fails(any_app, any_fake_backend):
    viz = make_app(make_user("alice"), "stuck")
    dep = lifecycle.ensure_deployment(viz, now=utcnow() - timedelta(seconds=121))
    report = sweep.sweep(lim=TINY)
    assert report.failed == [dep] and dep.status == "failed"
    assert "did not become ready within 120 seconds" in dep.status_reason
    assert any_fake_backend.stopped == [dep.backend_ref]


def test_reconcile_reports_a_crashed_app_as_failed(any_app, any_fake_backend, monkeypatch):
    dep = running(any_fake_backend, "crashy")
    any_fake_backend.set(dep.backend_ref, "failed", reason="The app stopped (exit code 3).")
    monkeypatch.setattr(any_fake_backend, "list", dict)  # no longer running
    report = sweep.reconcile()
    assert report.vanished == [dep]
    assert dep.status == "failed" and dep.stop_reason == "failed"
    assert dep.status_reason == "The app stopped (exit code 3)."


def test_reconcile_survives_a_failed_listing_and_the_sweep_goes_on(any_app, any_fake_backend, monkeypatch):
    dep = running(any_fake_backend, "idle")

    def unavailable():
        raise ConnectionError("backend unreachable")

    monkeypatch.setattr(any_fake_backend, "list", unavailable)
    reconciled = sweep.reconcile()
    assert reconciled.errors == 1 and not reconciled.changed
    assert dep.status == "running" and any_fake_backend.calls["stop"] == 0
    report = sweep.sweep(lim=TINY)  # the idle rule still applies without a listing
    assert report.errors == 1 and [d.id for d, _ in report.stopped] == [dep.id]


def test_report_lines_name_each_change(any_app, any_fake_backend):
    dep = running(any_fake_backend, "idle")
    any_fake_backend.extra = {"bob-ghost-default-abcdef": "fake:ghost"}
    report = sweep.sweep(lim=TINY)
    assert report.changed
    assert report.lines() == [
        f"stopped alice/idle ({dep.public_name}): idle, {report.stopped[0][1]}",
        "stopped orphan fake:ghost",
    ]
    assert "stopped 1 idle" in report.summary() and "1 orphans" in report.summary()
