"""Goodbyes (a viz page's ``pagehide`` beacon): what ``lifecycle.record_goodbye``
counts, the sweep that stops an app soon after its last page closed and keeps
one another page still shows, and the race guard of ``stop(if_unchanged)``;
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app import lifecycle, sweep
from app.extensions import db
from app.idle import IdleLimits
from app.models import Deployment, utcnow
from tests.factories import make_app, make_user

LIMITS = IdleLimits(
    load_timeout=600, ping_timeout=600, start_timeout=120, activity_resolution=5, goodbye_grace=60
)


@pytest.fixture
def wave(any_app):
    return make_app(make_user("alice"), "wave")


def running(app, backend, now, loads: int = 1) -> Deployment:
    """A running deployment of ``app`` loaded ``loads`` times at ``now``."""
    dep = lifecycle.ensure_deployment(app, now=now)
    backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, now=now, force=True)
    for _ in range(loads):
        lifecycle.record_load(dep, now=now)
    assert dep.status == "running" and dep.page_loads == loads
    return dep


def test_a_goodbye_counts_once_per_open_page_and_never_revives(any_app, any_fake_backend, wave):
    now = utcnow()
    dep = running(wave, any_fake_backend, now, loads=2)
    assert lifecycle.record_goodbye(dep, now=now + timedelta(seconds=1))
    assert lifecycle.record_goodbye(dep, now=now + timedelta(seconds=2))
    # a third goodbye for two loads (a forged or repeated beacon) is not counted
    assert not lifecycle.record_goodbye(dep, now=now + timedelta(seconds=3))
    db.session.refresh(dep)
    assert (dep.goodbyes, dep.latest_goodbye_at) == (2, now + timedelta(seconds=2))
    lifecycle.record_load(dep, now=now + timedelta(seconds=4))  # a page restored from the bfcache
    assert lifecycle.stop(dep, reason="owner", now=now + timedelta(seconds=5))
    assert not lifecycle.record_goodbye(dep, now=now + timedelta(seconds=6))
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.goodbyes == 2 and dep.stopped_at == now + timedelta(seconds=5)


def test_the_sweep_stops_an_app_a_grace_after_its_last_page_closed(any_app, any_fake_backend, wave):
    t0 = utcnow() - timedelta(seconds=300)
    dep = running(wave, any_fake_backend, t0)
    lifecycle.record_ping(dep, now=t0 + timedelta(seconds=10))
    bye = t0 + timedelta(seconds=20)
    assert lifecycle.record_goodbye(dep, now=bye)
    # the load and the ping would keep it 600 s; the goodbye keeps it 60 s
    kept = sweep.sweep(now=bye + timedelta(seconds=60), lim=LIMITS)
    assert kept.stopped == [] and dep.status == "running"
    report = sweep.sweep(now=bye + timedelta(seconds=61), lim=LIMITS)
    assert [(ref.public_name, detail) for ref, detail in report.stopped] == [
        (dep.public_name, "its last page closed 61s ago, nothing since")
    ]
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "idle"
    assert any_fake_backend.stopped == [dep.backend_ref]


@pytest.mark.parametrize("after", ["another page open", "pinged since", "loaded since", "no grace"])
def test_the_sweep_keeps_an_app_still_shown(any_app, any_fake_backend, wave, after):
    t0 = utcnow() - timedelta(seconds=300)
    dep = running(wave, any_fake_backend, t0, loads=2 if after == "another page open" else 1)
    bye = t0 + timedelta(seconds=20)
    assert lifecycle.record_goodbye(dep, now=bye)
    if after == "pinged since":  # a ping after the goodbye: some page still shows it
        lifecycle.record_ping(dep, now=bye + timedelta(seconds=1))
    if after == "loaded since":  # a page restored from the back/forward cache says hello
        lifecycle.record_load(dep, now=bye + timedelta(seconds=1))
    lim = IdleLimits(600, 600, 120) if after == "no grace" else LIMITS
    report = sweep.sweep(now=bye + timedelta(seconds=120), lim=lim)
    assert report.stopped == []
    db.session.refresh(dep)
    assert dep.status == "running"
    # and once the timeouts pass, the sweep stops it all the same
    late = sweep.sweep(now=bye + timedelta(seconds=700), lim=lim)
    assert [ref.public_name for ref, _ in late.stopped] == [dep.public_name]


def test_a_goodbye_between_decision_and_stop_lets_the_next_sweep_decide(any_app, any_fake_backend, wave):
    now = utcnow()
    dep = running(wave, any_fake_backend, now - timedelta(seconds=900))
    # `dep` is what the sweep read; a page's goodbye lands on its own connection meanwhile
    with db.engine.begin() as other:
        other.execute(
            update(Deployment)
            .where(Deployment.id == dep.id)
            .values(goodbyes=Deployment.goodbyes + 1, latest_goodbye_at=now)
        )
    assert not lifecycle.stop(dep, reason="idle", now=now, if_unchanged=True)
    assert dep.is_live and dep.goodbyes == 1 and any_fake_backend.calls["stop"] == 0
    assert lifecycle.stop(dep, reason="idle", now=now, if_unchanged=True)  # re-read, unchanged since


def test_the_viz_page_names_the_goodbye_endpoint(any_app, wave):
    page = any_app.test_client().get("/alice/wave/viz/").get_data(as_text=True)
    assert 'data-goodbye-url="/alice/wave/viz/goodbye"' in page
    assert 'data-start-url="/alice/wave/viz/start"' in page


def test_a_goodbye_for_a_stopped_or_unknown_deployment_changes_nothing(any_app, any_fake_backend, wave):
    now = utcnow()
    dep = running(wave, any_fake_backend, now)
    lifecycle.stop(dep, reason="owner", now=now)
    client = any_app.test_client()
    for name in (dep.public_name, "no-such-deployment", ""):
        response = client.post("/alice/wave/viz/goodbye", data={"deployment": name})
        assert response.status_code == 204
    db.session.refresh(dep)
    assert dep.goodbyes == 0 and dep.latest_goodbye_at is None
