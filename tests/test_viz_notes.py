"""The viz page's notes through its partials, on SQLite and PostgreSQL: the
quiet sleep notice of a running app, why a stopped one sleeps (and whether it
wakes by itself), the start estimate from this app's past cold starts (and
that a running app's polls never ask for it)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import lifecycle, start_estimate
from app.extensions import db
from app.models import Deployment, utcnow
from tests.factories import make_app, make_deployment, make_user

HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}
S = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def fresh_estimates():
    start_estimate.forget()  # the cache is per process; app ids repeat across tests
    yield
    start_estimate.forget()


@pytest.fixture
def wave(any_app, any_fake_backend):
    return make_app(make_user("alice"), "wave")


def partial(client, dep: Deployment) -> str:
    response = client.get(f"/alice/wave/viz/status?deployment={dep.public_name}", headers=HX)
    return response.get_data(as_text=True)


def seed_cold_starts(app, seconds: list[float]) -> None:
    base = utcnow() - timedelta(days=2)
    for n, took in enumerate(seconds):
        created = base + n * timedelta(hours=1)
        make_deployment(app, created, ready_at=created + took * S, stopped_at=created + 30 * 60 * S)


def test_a_start_shows_the_usual_time_once_there_is_history(any_app, wave, any_fake_backend):
    client = any_app.test_client()
    seed_cold_starts(wave, [10, 20])  # two: too few to say
    html = client.post("/alice/wave/viz/start", headers=HX).get_data(as_text=True)
    assert 'data-status="starting"' in html and "usually ready" not in html and "viz-slow" not in html
    dep = lifecycle.live_deployment(wave)
    lifecycle.stop(dep, reason="owner")
    start_estimate.forget()
    seed_cold_starts(wave, [12])  # 10, 12, 20: median 12, p95 19.2
    html = client.post("/alice/wave/viz/start", headers=HX).get_data(as_text=True)
    assert "usually ready in about 12 s" in html and 'data-slow-after="19"' in html
    assert re.search(r'<p class="viz-slow" id="viz-slow"\s+hidden>', html)  # not slow yet
    data = client.get("/alice/wave/viz/status", headers=JSON).get_json()
    assert data["estimate"] == {"typical": 12, "slow": 19}


def test_a_start_past_the_usual_p95_says_it_is_taking_longer(any_app, wave, any_fake_backend):
    seed_cold_starts(wave, [4, 5, 6])
    dep = make_deployment(wave, utcnow() - 40 * S)  # starting for 40 s: slow
    html = any_app.test_client().get(f"/alice/wave/viz/status?deployment={dep.public_name}", headers=HX)
    text = html.get_data(as_text=True)
    assert 'data-elapsed="40"' in text or 'data-elapsed="41"' in text
    assert re.search(r'<p class="viz-slow" id="viz-slow"\s*>Taking longer than usual', text)


def test_a_running_app_says_quietly_when_it_sleeps_and_its_polls_ask_no_estimate(
    any_app, wave, any_fake_backend, monkeypatch
):
    dep = lifecycle.ensure_deployment(wave)
    any_fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    assert dep.status == "running"

    def no_estimate(app_id: int):
        raise AssertionError("a running app's poll asked for the start estimate")

    monkeypatch.setattr(start_estimate, "for_app", no_estimate)
    client = any_app.test_client()
    html = partial(client, dep)
    assert '<p class="viz-sleep-note" id="viz-sleep-note">Sleeps after 60 s–5 min without viewers</p>' in html
    ping = client.post("/alice/wave/viz/ping", data={"deployment": dep.public_name}, headers=JSON)
    assert ping.get_json()["sleep_notice"] == "Sleeps after 60 s–5 min without viewers"
    assert ping.get_json()["estimate"] is None


def test_a_stopped_page_says_why_and_only_an_idle_one_wakes_by_itself(any_app, wave, any_fake_backend):
    now = utcnow()
    minute = 60 * S
    idle = make_deployment(wave, now - 60 * minute, ready_at=now - 59 * minute,
                           latest_ping_at=now - 40 * minute, stopped_at=now - 9 * minute,
                           stop_reason="idle")  # fmt: skip
    client = any_app.test_client()
    html = partial(client, idle)
    assert "This app went to sleep after 31 minutes without viewers." in html
    assert 'data-wakes="1"' in html and ">Wake it</button>" in html
    db.session.delete(idle)
    db.session.commit()
    stopped = make_deployment(wave, now - 60 * S, ready_at=now - 50 * S, stopped_at=now, stop_reason="admin")
    html = client.get(f"/alice/wave/viz/status?deployment={stopped.public_name}", headers=HX)
    text = html.get_data(as_text=True)
    assert "An administrator stopped it." in text and "data-wakes" not in text and "Start it again" in text
    assert db.session.scalar(select(Deployment.status).where(Deployment.id == stopped.id)) == "stopped"
