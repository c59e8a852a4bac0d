"""The API's app routes with the scripted backend: list, publish (the
publish form's rules, errors by field), read, edit, delete, the deployment
(status, start, stop; caps -> 503), statistics; the same rules as the
owner's page, and JSON errors throughout. (Who may call what: the access
matrix, tests/test_access_api.py; bad tokens: tests/test_api_tokens.py;
real processes: tests/test_api_e2e_local.py.)"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app import costs, lifecycle
from app.extensions import db
from app.models import Deployment, VizApp, utcnow
from tests.factories import (
    CSRFClient,
    bearer,
    build_app,
    make_app,
    make_deployment,
    make_settings,
    make_token,
    make_user,
)
from tests.fakes import FakeBackend

NEW = {"title": "fresh", "framework": "dash", "source": "dash-wave/app.py:server", "cpu": "250m"}


@pytest.fixture(autouse=True)
def eager_reads(monkeypatch):
    """Let every status poll read the backend (not once a second), so tests need not wait."""
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)


@pytest.fixture
def auth(app: Flask, alice) -> dict[str, str]:
    return bearer(make_token(alice))


def _app(title: str) -> VizApp:
    db.session.expire_all()
    return db.session.scalar(select(VizApp).where(VizApp.title == title))


# ---------------------------------------------------------------- list, publish
def test_the_list_is_the_galleries_of_the_tokens_user(app, client, alice, wave, auth):
    make_app(alice, "secret", is_public=False)
    bob = make_user("bob")
    make_app(bob, "bobs", is_public=False)
    root = make_user("root", admin=True)
    titles = {
        who: [
            a["title"] for a in client.get("/api/v1/apps", headers=bearer(make_token(u))).get_json()["apps"]
        ]
        for who, u in (("alice", alice), ("bob", bob), ("root", root))
    }
    assert titles == {
        "alice": ["secret", "wave"],
        "bob": ["bobs", "wave"],
        "root": ["bobs", "secret", "wave"],
    }
    (listed,) = [
        a for a in client.get("/api/v1/apps", headers=auth).get_json()["apps"] if a["title"] == "wave"
    ]
    assert listed["owner"] == "alice" and listed["state"] == {"label": "asleep", "since": None}
    assert listed["viz_url"].endswith("/alice/wave/viz/") and "config" in listed  # alice's own
    (seen_by_bob,) = [
        a
        for a in client.get("/api/v1/apps", headers=bearer(make_token(bob))).get_json()["apps"]
        if a["title"] == "wave"
    ]
    assert "config" not in seen_by_bob  # the configuration is for its owner and admins


def test_publish_with_the_forms_rules(app, client, alice, auth):
    response = client.post(
        "/api/v1/apps", json={**NEW, "env": {"GREETING": "hi"}, "is_public": False}, headers=auth, csrf=False
    )
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"] == "/api/v1/apps/alice/fresh"
    body = response.get_json()
    assert body["title"] == "fresh" and body["is_public"] is False
    assert body["config"]["env_names"] == ["GREETING"] and body["config"]["cpu"] == "250m"
    row = _app("fresh")
    assert row.owner_id == alice.id and row.env == {"GREETING": "hi"} and row.callable == "server"
    # the same title again, and every other mistake at once, by field
    response = client.post(
        "/api/v1/apps",
        json={**NEW, "source": "../etc/passwd.py", "cpu": "lots", "memory": "99Gi", "port": 80},
        headers=auth,
        csrf=False,
    )
    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert set(fields) == {"title", "source", "cpu", "memory", "port"} and "already" in fields["title"]
    assert response.get_json()["status"] == 422


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"framework": "dash"}, {"title"}),
        ({**NEW, "colour": "red"}, {"colour"}),
        ({**NEW, "is_public": "yes"}, {"is_public"}),
        ({**NEW, "description": ["a", "b"]}, {"description"}),
        ({**NEW, "framework": "shiny"}, {"framework"}),
        ({**NEW, "env": {"A": {"nested": 1}}}, {"env"}),
        ({**NEW, "env": {"A=B": "x"}}, {"env"}),
        ({**NEW, "env": {"A": "x\nPATH=/evil"}}, {"env"}),  # no line smuggled in
        ({**NEW, "embed_origins": ["https://ok.example", 3]}, {"embed_origins"}),
        ({**NEW, "embed_origins": ["javascript:alert(1)"]}, {"embed_origins"}),
    ],
)
def test_publish_refuses_wrong_fields_by_name(app, client, auth, body, fields):
    response = client.post("/api/v1/apps", json=body, headers=auth, csrf=False)
    assert response.status_code == 422 and set(response.get_json()["fields"]) == fields
    assert _app("fresh") is None


def test_a_body_that_is_no_json_object_is_400(app, client, auth):
    for kwargs in ({"data": "title=x"}, {"json": ["a"]}, {"data": "{", "content_type": "application/json"}):
        response = client.post("/api/v1/apps", headers=auth, csrf=False, **kwargs)
        assert response.status_code == 400 and response.get_json()["status"] == 400


# ------------------------------------------------------------ read, edit, delete
def test_edit_keeps_what_is_not_sent_and_hidden_values(app, client, alice, auth):
    make_app(alice, "wave", env="TOKEN=s3cret\nMODE=fast", description="Old.")
    response = client.patch(
        "/api/v1/apps/alice/wave",
        json={"description": "New.", "env": "TOKEN=********\nMODE=slow"},
        headers=auth,
    )
    assert response.status_code == 200, response.get_json()
    row = _app("wave")
    assert row.description == "New." and row.env == {"TOKEN": "s3cret", "MODE": "slow"} and row.cpu == "500m"
    assert "s3cret" not in response.get_data(as_text=True)
    refused = client.patch("/api/v1/apps/alice/wave", json={"title": "renamed", "cpu": "x"}, headers=auth)
    assert refused.status_code == 422 and set(refused.get_json()["fields"]) == {"title"}
    refused = client.patch("/api/v1/apps/alice/wave", json={"cpu": "x"}, headers=auth)
    assert refused.status_code == 422 and set(refused.get_json()["fields"]) == {"cpu"}
    assert _app("wave").cpu == "500m"
    same = client.patch("/api/v1/apps/alice/wave", json={"title": "wave", "framework": "dash"}, headers=auth)
    assert same.status_code == 200  # naming the fixed fields as they are is no change


def test_made_private_its_deployment_stops(app, client, fake_backend, wave, auth):
    started = client.post("/api/v1/apps/alice/wave/deployment", headers=auth, csrf=False)
    assert started.status_code == 202 and started.get_json()["status"] == "starting"
    response = client.patch("/api/v1/apps/alice/wave", json={"is_public": False}, headers=auth)
    assert response.status_code == 200 and response.get_json()["is_public"] is False
    (dep,) = db.session.scalars(select(Deployment)).all()
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "owner" and fake_backend.stopped


def test_delete_stops_and_hides_the_app(app, client, fake_backend, wave, auth):
    client.post("/api/v1/apps/alice/wave/deployment", headers=auth, csrf=False)
    response = client.delete("/api/v1/apps/alice/wave", headers=auth)
    assert response.status_code == 204 and response.get_data() == b""
    assert _app("wave").deleted_at is not None and fake_backend.stopped
    assert client.get("/api/v1/apps/alice/wave", headers=auth).status_code == 404
    assert client.delete("/api/v1/apps/alice/wave", headers=auth).status_code == 404


# -------------------------------------------------------------------- deployment
def test_start_poll_stop(app, client, fake_backend, wave, auth):
    assert client.get("/api/v1/apps/alice/wave/deployment", headers=auth).get_json()["status"] == "none"
    response = client.post("/api/v1/apps/alice/wave/deployment", headers=auth, csrf=False)
    assert response.status_code == 202 and response.headers["Cache-Control"] == "no-store"
    first = response.get_json()
    assert first["status"] == "starting" and first["url"] is None
    again = client.post("/api/v1/apps/alice/wave/deployment", headers=auth, csrf=False).get_json()
    assert again["public_name"] == first["public_name"] and fake_backend.calls["create"] == 1  # the live one
    fake_backend.set(fake_backend.only_ref(), "running")
    status = client.get("/api/v1/apps/alice/wave/deployment", headers=auth).get_json()
    assert status["status"] == "running" and status["url"].startswith("http://viz.dormouse.localhost")
    assert "dormouse_token" not in status["url"]  # no entry token in the API's answers
    stopped = client.delete("/api/v1/apps/alice/wave/deployment", headers=auth)
    assert stopped.status_code == 200
    assert stopped.get_json()["stopped"] is True and stopped.get_json()["deployment"]["status"] == "stopped"
    assert stopped.get_json()["deployment"]["stop_reason"] == "owner"
    again = client.delete("/api/v1/apps/alice/wave/deployment", headers=auth).get_json()
    assert again["stopped"] is False and again["deployment"]["status"] == "stopped"


def test_a_failure_says_why_to_its_owner_only(app, client, fake_backend, wave, auth):
    client.post("/api/v1/apps/alice/wave/deployment", headers=auth, csrf=False)
    fake_backend.set(fake_backend.only_ref(), "failed", reason="Traceback: ZeroDivisionError")
    mine = client.get("/api/v1/apps/alice/wave/deployment", headers=auth).get_json()
    assert mine["status"] == "failed" and "ZeroDivisionError" in mine["reason"]
    theirs = client.get(
        "/api/v1/apps/alice/wave/deployment", headers=bearer(make_token(make_user("bob")))
    ).get_json()
    assert theirs["status"] == "failed" and "ZeroDivisionError" not in theirs["reason"] and theirs["reason"]


def test_a_full_server_is_503_with_retry_after(tmp_path: Path):
    app = build_app(make_settings(tmp_path, MAX_LIVE_DEPLOYMENTS="1"))
    app.test_client_class = CSRFClient
    app.extensions["dormouse.backend"] = FakeBackend()
    with app.app_context():
        try:
            alice = make_user("alice")
            make_app(alice, "one")
            make_app(alice, "two")
            auth = bearer(make_token(alice))
            client = app.test_client()
            assert (
                client.post("/api/v1/apps/alice/one/deployment", headers=auth, csrf=False).status_code == 202
            )
            response = client.post("/api/v1/apps/alice/two/deployment", headers=auth, csrf=False)
            assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
            assert response.get_json() == {"error": response.get_json()["error"], "status": 503}
            assert "as many apps" in response.get_json()["error"]
        finally:
            db.session.remove()
            db.engine.dispose()


def test_start_has_the_viz_starts_rate_limits(tmp_path: Path):
    app = build_app(make_settings(tmp_path, RATE_LIMITS="1"))
    app.test_client_class = CSRFClient
    app.extensions["dormouse.backend"] = FakeBackend()
    with app.app_context():
        try:
            alice = make_user("alice")
            wave = make_app(alice, "wave")
            auth = bearer(make_token(alice))
            client = app.test_client()
            codes = []
            for _ in range(11):
                started = client.post("/api/v1/apps/alice/wave/deployment", headers=auth, csrf=False)
                codes.append(started.status_code)
                if dep := lifecycle.live_deployment(wave):
                    lifecycle.stop(dep, reason="idle")  # so that each start makes a deployment
            assert codes == [202] * 10 + [429]  # START_PER_CLIENT: 10 a minute
            response = client.post("/api/v1/apps/alice/wave/deployment", headers=auth, csrf=False)
            assert response.status_code == 429 and response.get_json()["status"] == 429
            assert int(response.headers["Retry-After"]) >= 1
            # and the viz page's starts count with them: same limits, same counts
            assert client.post("/alice/wave/viz/start", headers={"HX-Request": "true"}).status_code == 429
        finally:
            db.session.remove()
            db.engine.dispose()


# ------------------------------------------------------------------------ stats
def test_stats_are_the_usage_numbers_and_this_months_cost(any_app, any_fake_backend):
    alice = make_user("alice")
    wave = make_app(alice, "wave")
    now = utcnow()
    make_deployment(
        wave, now - timedelta(hours=3), ready_at=now - timedelta(hours=3) + timedelta(seconds=4),
        stopped_at=now - timedelta(hours=2), page_loads=3, viewer_seconds=600,
    )  # fmt: skip
    make_deployment(
        wave, now - timedelta(days=20), ready_at=now - timedelta(days=20), stopped_at=now - timedelta(days=19)
    )
    client = any_app.test_client()
    auth = bearer(make_token(alice))
    week = client.get("/api/v1/apps/alice/wave/stats?days=7", headers=auth)
    assert week.status_code == 200
    body = week.get_json()
    assert (
        body["deployments"] == 1 and body["page_loads"] == 3 and body["viewer_minutes"] == pytest.approx(10)
    )
    assert body["running_seconds"] == pytest.approx(3600, abs=2) and body["cold_starts"] == 1
    assert body["stops_by_reason"] == {"idle": 1}
    # every deployment has stopped: this month's cost is fixed, whenever in the month this runs
    expected = costs.app_month_cost(wave.id, now.year, now.month, any_app.config["DORMOUSE"].prices, utcnow())
    assert body["month_cost"] == dataclasses.asdict(expected)
    assert expected.dollars > 0 or (now - timedelta(hours=3)).month != now.month
    month = client.get("/api/v1/apps/alice/wave/stats?days=30", headers=auth).get_json()
    assert month["deployments"] == 2
    default = client.get("/api/v1/apps/alice/wave/stats", headers=auth).get_json()  # 10 days
    assert default["deployments"] == 1 and default["end"] > default["start"]
    for bad in ("0", "367", "x", "-1", "1.5", "\u00b2", "0010"):
        response = client.get(f"/api/v1/apps/alice/wave/stats?days={bad}", headers=auth)
        assert response.status_code == 400 and "days" in response.get_json()["error"]


def test_unknown_api_paths_and_methods_answer_json(app, client, auth):
    response = client.get("/api/v1/nothing", headers=auth)
    assert response.status_code == 404 and response.get_json() == {
        "error": "There is nothing here.",
        "status": 404,
    }
    response = client.put("/api/v1/apps", headers=auth)
    assert response.status_code == 405 and response.get_json()["status"] == 405
