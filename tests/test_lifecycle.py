"""The lifecycle module on SQLite and PostgreSQL, with a scripted backend."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app import lifecycle, sweep
from app.extensions import db
from app.idle import IdleLimits
from app.models import Deployment, VizApp, utcnow
from tests.factories import make_app, make_user

TINY = IdleLimits(load_timeout=60, ping_timeout=30, start_timeout=120)


@pytest.fixture
def wave(any_app):
    return make_app(make_user("alice"), "wave")


def test_simultaneous_first_visits_make_exactly_one_deployment(any_app, any_fake_backend, wave):
    app_id = wave.id
    threads, results, errors = 8, [], []
    barrier = threading.Barrier(threads)

    def visit():
        try:
            with any_app.app_context():
                viz = db.session.get(VizApp, app_id)
                barrier.wait()
                results.append(lifecycle.ensure_deployment(viz).id)
                db.session.remove()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=visit) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors, errors
    assert len(results) == threads and len(set(results)) == 1
    assert db.session.scalar(select(func.count(Deployment.id))) == 1
    assert any_fake_backend.calls["create"] == 1


def test_database_allows_one_live_deployment_per_app_and_name(any_app, any_fake_backend, wave):
    from sqlalchemy.exc import IntegrityError

    first = lifecycle.ensure_deployment(wave)
    db.session.add(
        Deployment(app=wave, name="default", public_name="default-dup001", status="running", backend="local")
    )
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    # a stopped one beside a live one is fine, and so is another name
    assert lifecycle.stop(first, reason="admin")
    db.session.add(
        Deployment(app=wave, name="default", public_name="default-new001", status="starting", backend="local")
    )
    db.session.add(
        Deployment(app=wave, name="other", public_name="other-new001", status="running", backend="local")
    )
    db.session.commit()


def test_refresh_reads_backend_only_while_starting(any_app, any_fake_backend, wave):
    now = utcnow()  # the clock is passed in: what counts is the interval, not the loop's speed
    dep = lifecycle.ensure_deployment(wave, now=now)
    lifecycle.refresh(dep, now=now, force=True)
    assert dep.status == "starting" and dep.phase == "Waiting for the app to answer"
    reads = any_fake_backend.calls["status"]
    within = now + timedelta(seconds=lifecycle.STATUS_READ_INTERVAL / 2)
    for _ in range(20):  # many pages polling within one interval: one read at most
        lifecycle.refresh(dep, now=within)
    assert any_fake_backend.calls["status"] <= reads + 1
    reads = any_fake_backend.calls["status"]
    later = within + timedelta(seconds=lifecycle.STATUS_READ_INTERVAL * 1.5)
    for _ in range(20):  # and in the next interval, exactly one
        lifecycle.refresh(dep, now=later)
    assert any_fake_backend.calls["status"] == reads + 1
    any_fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    assert dep.status == "running" and dep.ready_at is not None
    reads = any_fake_backend.calls["status"]
    for _ in range(20):
        lifecycle.refresh(dep, force=True)
        lifecycle.record_ping(dep)
    assert any_fake_backend.calls["status"] == reads  # the hot path makes no backend call


def test_start_timeout_fails_with_a_reason(any_app, any_fake_backend, wave):
    dep = lifecycle.ensure_deployment(wave, now=utcnow() - timedelta(seconds=500))
    lifecycle.refresh(dep, force=True)
    assert dep.status == "failed" and dep.stop_reason == "failed"
    assert "did not become ready within 180 seconds" in dep.status_reason
    assert any_fake_backend.stopped == [dep.backend_ref]


def test_idle_stop_does_not_cut_off_a_late_ping(any_app, any_fake_backend, wave):
    now = utcnow()
    dep = lifecycle.ensure_deployment(wave, now=now - timedelta(seconds=600))
    lifecycle.record_load(dep, now=now - timedelta(seconds=600))
    # `dep` is what the sweep read before deciding; a visitor's request pings
    # on its own connection meanwhile
    with db.engine.begin() as other:
        other.execute(update(Deployment).where(Deployment.id == dep.id).values(latest_ping_at=now))
    assert not lifecycle.stop(dep, reason="idle", now=now, if_unchanged=True)
    assert dep.is_live and dep.latest_ping_at == now and any_fake_backend.calls["stop"] == 0


def test_sweep_stops_idle_keeps_watched(any_app, any_fake_backend):
    alice = make_user("alice")
    now = utcnow()
    old = now - timedelta(seconds=600)
    idle_app, watched_app, loaded_app = (make_app(alice, t) for t in ("idle", "watched", "loaded"))
    deps = {}
    for viz in (idle_app, watched_app, loaded_app):
        dep = lifecycle.ensure_deployment(viz, now=old)
        lifecycle.record_load(dep, now=old)
        any_fake_backend.set(dep.backend_ref, "running")
        lifecycle.refresh(dep, now=old, force=True)
        deps[viz.title] = dep
    lifecycle.record_ping(deps["watched"], now=now - timedelta(seconds=10))
    lifecycle.record_load(deps["loaded"], now=now - timedelta(seconds=10))
    report = sweep.sweep(now=now, lim=TINY)
    assert [d.app.title for d, _ in report.stopped] == ["idle"]
    assert deps["idle"].status == "stopped" and deps["idle"].stop_reason == "idle"
    assert deps["idle"].backend_ref in any_fake_backend.stopped
    assert deps["watched"].status == "running" and deps["loaded"].status == "running"


def test_sweep_fails_a_deployment_stuck_starting(any_app, any_fake_backend, wave):
    dep = lifecycle.ensure_deployment(wave, now=utcnow() - timedelta(seconds=1000))
    report = sweep.sweep(lim=TINY)
    assert report.failed == [dep] and dep.status == "failed"


def test_sweep_goes_on_after_an_error(any_app, any_fake_backend):
    alice = make_user("alice")
    old = utcnow() - timedelta(seconds=600)
    a = lifecycle.ensure_deployment(make_app(alice, "a"), now=old)
    b = lifecycle.ensure_deployment(make_app(alice, "b"), now=old)
    for dep in (a, b):
        any_fake_backend.set(dep.backend_ref, "running")
        lifecycle.refresh(dep, now=old, force=True)
    original = any_fake_backend.stop

    def flaky(ref):
        if ref == a.backend_ref:
            raise RuntimeError("backend down")
        original(ref)

    any_fake_backend.stop = flaky
    report = sweep.sweep(lim=TINY)
    # a's row is stopped (the backend will be cleaned by reconcile); b is too
    assert {d.app.title for d, _ in report.stopped} == {"a", "b"}
    any_fake_backend.stop = original
    any_fake_backend.extra = {a.deployment_name: a.backend_ref}  # still running in the backend
    report = sweep.reconcile()
    assert report.orphans_stopped == [a.backend_ref]


def test_reconcile_marks_vanished_and_stops_orphans(any_app, any_fake_backend, wave):
    dep = lifecycle.ensure_deployment(wave)
    any_fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    any_fake_backend.extra = {"alice-ghost-default-abcdef": "fake:ghost"}
    any_fake_backend.states.pop(dep.backend_ref)  # the process died with the server
    report = sweep.reconcile()
    assert report.vanished == [dep] and dep.status == "stopped" and dep.stop_reason == "gone"
    assert report.orphans_stopped == ["fake:ghost"]


def test_reconcile_leaves_a_deployment_being_created_alone(any_app, any_fake_backend, wave):
    dep = lifecycle.ensure_deployment(wave)
    report = sweep.reconcile()  # starting: listed by the backend under its row's name
    assert report.orphans_stopped == [] and dep.status == "starting"


def test_record_ping_coalesces_writes(any_app, any_fake_backend, wave):
    dep = lifecycle.ensure_deployment(wave)
    now = utcnow()
    assert lifecycle.record_ping(dep, now=now)
    assert not lifecycle.record_ping(dep, now=now + timedelta(seconds=1))
    assert lifecycle.record_ping(dep, now=now + timedelta(seconds=6))
    assert dep.latest_ping_at == now + timedelta(seconds=6)
