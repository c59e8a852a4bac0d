"""Pages, partials and the viz endpoints, with a scripted backend."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app import lifecycle
from app.extensions import db
from app.models import Deployment
from tests.factories import login, make_app, make_user

HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def eager_reads(monkeypatch):
    """Let every poll read the backend (not once a second), so tests need not wait."""
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)


def count_deployments() -> int:
    return db.session.scalar(select(func.count(Deployment.id)))


def test_gallery_lists_public_apps_and_hides_private(client, alice, wave):
    make_app(alice, "secret-plot", is_public=False)
    page = client.get("/").get_data(as_text=True)
    assert "wave" in page and "/alice/wave/viz/" in page
    assert "secret-plot" not in page
    login(client)
    assert "secret-plot" in client.get("/").get_data(as_text=True)


def test_private_app_is_404_for_others(client, alice):
    make_app(alice, "secret-plot", is_public=False)
    make_user("bob")
    for url in ("/alice/secret-plot/", "/alice/secret-plot/viz/"):
        assert client.get(url).status_code == 404
    login(client, "bob")
    assert client.get("/alice/secret-plot/viz/").status_code == 404
    assert client.post("/alice/secret-plot/viz/start").status_code == 404


def test_app_page_and_unknown_app(client, wave):
    page = client.get("/alice/wave/")
    assert page.status_code == 200 and "A wave." in page.get_data(as_text=True)
    assert client.get("/alice/nope/").status_code == 404
    assert client.get("/nobody/wave/viz/").status_code == 404


def test_viz_page_has_no_side_effects(client, wave, fake_backend):
    response = client.get("/alice/wave/viz/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert count_deployments() == 0 and fake_backend.calls["create"] == 0
    # the page itself asks to start, once it has loaded
    assert 'hx-post="/alice/wave/viz/start"' in html and 'hx-trigger="load, retry"' in html
    assert "/static/vendor/htmx-2.0.11.min.js" in html and "unpkg" not in html
    assert '"X-CSRFToken"' in html  # hx-headers carries the token
    assert 'data-ping-interval="10.0"' in html
    assert "noindex" in html


def test_start_creates_one_deployment_and_records_the_load(client, wave, fake_backend):
    first = client.post("/alice/wave/viz/start", headers=HX)
    assert first.status_code == 200  # still starting: keep polling
    html = first.get_data(as_text=True)
    assert 'data-status="starting"' in html and "every 0.1s" in html  # a young start: polled fast
    assert "Waiting for the app to answer" in html  # the backend's phase
    dep = db.session.scalar(select(Deployment))
    assert dep.status == "starting" and dep.latest_load_at is not None
    spec = fake_backend.specs[dep.backend_ref]
    assert spec.prefix == f"/alice/wave/{dep.public_name}/"
    assert spec.source == "dash-wave/app.py" and spec.callable == "server"
    # a second visitor shares it
    second = client.post("/alice/wave/viz/start", headers=HX)
    assert second.status_code == 200
    assert count_deployments() == 1 and fake_backend.calls["create"] == 1


def test_status_partial_states_and_poll_ending(client, wave, fake_backend, eager_reads):
    client.post("/alice/wave/viz/start", headers=HX)
    ref = fake_backend.only_ref()
    starting = client.get("/alice/wave/viz/status", headers=HX)
    assert starting.status_code == 200
    assert "HX-Request" in starting.headers["Vary"]
    assert starting.headers["Cache-Control"] == "no-store"
    fake_backend.set(ref, "running")
    running = client.get("/alice/wave/viz/status", headers=HX)
    assert running.status_code == 286  # ends the poll
    html = running.get_data(as_text=True)
    assert "<iframe" in html and "http://viz.dormouse.localhost:9999/alice/wave/" in html
    assert "?dormouse_token=" in html  # the iframe's one-time entry token
    assert "hx-trigger" not in html


def test_status_json(client, wave, fake_backend, eager_reads):
    assert client.get("/alice/wave/viz/status", headers=JSON).get_json()["status"] == "none"
    client.post("/alice/wave/viz/start", headers=HX)
    fake_backend.set(fake_backend.only_ref(), "running")
    data = client.get("/alice/wave/viz/status", headers=JSON).get_json()
    assert data["status"] == "running"
    assert data["url"].startswith("http://viz.dormouse.localhost:9999/alice/wave/")
    assert "dormouse_token" not in data["url"]  # entry tokens are handed out with the page only
    for key in ("reason", "created_at", "ready_at", "latest_load_at", "latest_ping_at"):
        assert key in data
    assert data["ready_at"] and data["latest_load_at"] and data["latest_ping_at"] is None


def test_failed_start_shows_reason_and_retry(client, wave, fake_backend, eager_reads):
    login(client)  # the owner sees why; see the next test for everyone else
    client.post("/alice/wave/viz/start", headers=HX)
    fake_backend.set(
        fake_backend.only_ref(), "failed", reason="Traceback ...\nZeroDivisionError: division by zero"
    )
    response = client.get("/alice/wave/viz/status", headers=HX)
    assert response.status_code == 286
    html = response.get_data(as_text=True)
    assert "could not start" in html and "ZeroDivisionError: division by zero" in html
    assert 'hx-post="/alice/wave/viz/start"' in html  # the retry button
    dep = db.session.scalar(select(Deployment))
    assert dep.status == "failed" and dep.stop_reason == "failed"
    assert fake_backend.stopped == [dep.backend_ref]  # cleaned up
    # retrying starts a fresh deployment
    client.post("/alice/wave/viz/start", headers=HX)
    assert count_deployments() == 2


def test_backend_refusal_is_shown_not_an_endless_start(client, wave, fake_backend):
    login(client)
    fake_backend.fail_create = "No free port between 8100 and 8100."
    html = client.post("/alice/wave/viz/start", headers=HX).get_data(as_text=True)
    assert 'data-status="failed"' in html and "No free port" in html


def test_reason_text_is_escaped(client, wave, fake_backend, eager_reads):
    login(client)
    client.post("/alice/wave/viz/start", headers=HX)
    fake_backend.set(fake_backend.only_ref(), "failed", reason="<script>alert(1)</script>")
    html = client.get("/alice/wave/viz/status", headers=HX).get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_ping_records_and_coalesces(client, wave, fake_backend):
    client.post("/alice/wave/viz/start", headers=HX)
    dep = db.session.scalar(select(Deployment))
    response = client.post("/alice/wave/viz/ping", data={"deployment": dep.public_name}, headers=JSON)
    assert response.status_code == 200 and response.get_json()["status"] == "starting"
    db.session.refresh(dep)
    first = dep.latest_ping_at
    assert first is not None
    client.post("/alice/wave/viz/ping", data={"deployment": dep.public_name}, headers=JSON)
    db.session.refresh(dep)
    assert dep.latest_ping_at == first  # within ACTIVITY_RESOLUTION: no write


def test_ping_after_spin_down_says_stopped_and_does_not_revive(client, wave, fake_backend):
    client.post("/alice/wave/viz/start", headers=HX)
    dep = db.session.scalar(select(Deployment))
    assert lifecycle.stop(dep, reason="idle", detail="test")
    old = dep.public_name
    data = client.post("/alice/wave/viz/ping", data={"deployment": old}, headers=JSON).get_json()
    assert data["status"] == "stopped" and data["stop_reason"] == "idle"
    db.session.refresh(dep)
    assert dep.latest_ping_at is None and dep.status == "stopped"
    # a page still showing the old deployment learns it stopped even after
    # another visitor started a new one
    client.post("/alice/wave/viz/start", headers=HX)
    data = client.post("/alice/wave/viz/ping", data={"deployment": old}, headers=JSON).get_json()
    assert data["status"] == "stopped"
    html = client.get(f"/alice/wave/viz/status?deployment={old}", headers=HX).get_data(as_text=True)
    assert "is asleep" in html and "went to sleep after" in html and "without viewers" in html
    assert "Wake it" in html and 'data-wakes="1"' in html


def test_posts_need_the_csrf_token(client, wave, fake_backend):
    for url in ("/alice/wave/viz/start", "/alice/wave/viz/ping"):
        response = client.post(url, headers=HX, csrf=False)
        assert response.status_code == 400
        assert "session has expired" in response.get_data(as_text=True)
    assert count_deployments() == 0


def test_robots_txt_disallows_viz_by_pattern(client, wave):
    response = client.get("/robots.txt")
    body = response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert "Disallow: /*/*/viz/" in body
    assert "wave" not in body and "alice" not in body


def test_healthz(client, tmp_path):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["database"] == "ok"
    # a database that does not answer makes the check fail
    from app import create_app
    from tests.factories import make_settings

    broken = create_app(
        settings=make_settings(tmp_path / "broken", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")
    )
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["database"] == "unreachable"


def test_login_logout(client, alice):
    assert client.get("/publish").status_code == 302  # to the login page
    bad = client.post("/login", data={"username": "alice", "password": "nope-nope"})
    assert bad.status_code == 400 and "Wrong username or password" in bad.get_data(as_text=True)
    ok = client.post("/login?next=/publish", data={"username": "alice", "password": "correct-horse"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/publish"
    form = client.get("/publish")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert 'name="title"' in html and 'name="framework"' in html and ">Publish</button>" in html
    assert "Cancel" not in html
    evil = client.post(
        "/login?next=//evil.example/x", data={"username": "alice", "password": "correct-horse"}
    )
    assert evil.headers["Location"] == "/"
    assert client.post("/logout").status_code == 302
    assert client.get("/publish").status_code == 302


def test_publish_form_success_and_errors(client, alice):
    login(client)
    form = client.get("/publish").get_data(as_text=True)
    assert "dash-wave/app.py" in form  # source suggestions from APPS_DIR
    bad = client.post(
        "/publish",
        data={
            "title": "Bad Title!",
            "framework": "dash",
            "source": "../../etc/passwd",
            "port": "99999",
            "cpu": "lots",
            "memory": "1TB",
            "env": "1X=2",
        },
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Nothing was saved" in html
    for message in (
        "lowercase letters",
        "relative path inside the apps folder",
        "1024 to 65535",
        "500m or 1.5",
        "512Mi or 2Gi",
        "not a valid variable name",
    ):
        assert message in html, message
    ok = client.post(
        "/publish",
        data={
            "title": "my-wave",
            "framework": "dash",
            "source": "dash-wave/app.py:server",
            "description": "Mine",
            "cpu": "250m",
            "memory": "256Mi",
            "env": "A=1\nB = two",
            "is_public": "y",
        },
    )
    assert ok.status_code == 302 and ok.headers["Location"] == "/alice/my-wave/"
    again = client.post(
        "/publish",
        data={
            "title": "my-wave",
            "framework": "bokeh",
            "source": "bokeh-sliders/main.py",
            "cpu": "250m",
            "memory": "256Mi",
        },
    )
    assert again.status_code == 400 and "already have an app called" in again.get_data(as_text=True)


def test_errors_answer_in_kind(client):
    assert client.get("/nope/nope/nope/").status_code == 404
    assert client.get("/x/y/", headers=JSON).get_json() == {"error": "There is nothing here.", "status": 404}
    partial = client.get("/x/y/viz/status", headers=HX).get_data(as_text=True)
    assert 'id="viz-status"' in partial and "nothing here" in partial
    assert json.loads(client.get("/x/y/viz/status", headers=JSON).data)["status"] == 404


def test_each_client_is_its_own_visitor(app, alice):
    """Two clients in one test: one logged in, one not. Nothing of the first
    (current user, CSRF token) may leak into the second's requests."""
    make_app(alice, "secret", is_public=False)
    owner, stranger = app.test_client(), app.test_client()
    login(owner)
    assert owner.get("/alice/secret/").status_code == 200
    assert stranger.get("/alice/secret/").status_code == 404
    assert "secret" not in stranger.get("/").get_data(as_text=True)
    assert owner.get("/alice/secret/").status_code == 200


def test_only_the_owner_and_admins_see_why_an_app_failed(app, wave, fake_backend, eager_reads):
    make_user("bob")
    make_user("root", admin=True)
    viewers = {name: app.test_client() for name in ("anonymous", "bob", "alice", "root")}
    for name, viewer in viewers.items():
        if name != "anonymous":
            login(viewer, name)
    viewers["anonymous"].post("/alice/wave/viz/start", headers=HX)
    fake_backend.set(fake_backend.only_ref(), "failed", reason="Traceback ...\nKeyError: 'DB_PASSWORD'")
    for name, viewer in viewers.items():
        data = viewer.get("/alice/wave/viz/status", headers=JSON).get_json()
        html = viewer.get("/alice/wave/viz/status", headers=HX).get_data(as_text=True)
        assert data["status"] == "failed" and "could not start" in html
        if name in ("alice", "root"):
            assert "DB_PASSWORD" in data["reason"] and "DB_PASSWORD" in html, name
        else:
            assert "DB_PASSWORD" not in data["reason"] and "DB_PASSWORD" not in html, name
            assert "Its owner can see why" in data["reason"] and "Its owner can see why" in html
