"""The hot answers given before Flask (app/hot_wsgi.py), on SQLite and
PostgreSQL: the same body and headers Flask gives, and every request the
middleware cannot answer exactly as Flask would passed on to Flask (wrong or
missing CSRF token, a stranger to a private app, another host, an HTML
poll, a starting or failed deployment, a ping whose write is due...)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app import lifecycle
from app.extensions import db
from app.hot_wsgi import HotAnswers
from app.models import Deployment, VizApp, utcnow
from app.views import viz
from tests.factories import CSRF_META, login, make_app, make_deployment, make_user

JSON = {"Accept": "application/json"}
S = timedelta(seconds=1)
IGNORED = {"date", "set-cookie"}


@pytest.fixture
def clock(monkeypatch):
    now = [utcnow()]
    monkeypatch.setattr(viz, "utcnow", lambda: now[0])
    return now


@pytest.fixture
def running(any_app, any_fake_backend, clock):
    wave = make_app(make_user("alice"), "wave")
    dep = make_deployment(wave, clock[0] - 60 * S, ready_at=clock[0] - 50 * S)
    dep.backend_ref = any_fake_backend.create(lifecycle.spec_for(dep))
    db.session.commit()
    return dep.public_name


def hot(any_app) -> HotAnswers:
    assert isinstance(any_app.wsgi_app, HotAnswers)
    # the sleep notice is worded from the same limits (slack and goodbye grace included)
    assert any_app.wsgi_app.limits == lifecycle.limits(any_app.config["DORMOUSE"])
    return any_app.wsgi_app


def visitor(any_app):
    client = any_app.test_client()
    found = CSRF_META.search(client.get("/alice/wave/viz/").get_data(as_text=True))
    client.token = found.group(1)
    return client


def ping(client, name, **kwargs):
    headers = {**JSON, "X-CSRFToken": client.token, **kwargs.pop("headers", {})}
    return client.post(
        "/alice/wave/viz/ping", data={"deployment": name}, headers=headers, csrf=False, **kwargs
    )


def status(client, name, headers=JSON, **kwargs):
    return client.get(f"/alice/wave/viz/status?deployment={name}", headers=headers, **kwargs)


def same_as_flask(any_app, ask):
    """The answer given here, then Flask's to the same request: equal but
    for the date (a ping's write is not due in between)."""
    middleware = hot(any_app)
    before = middleware.answered
    fast = ask()
    assert middleware.answered == before + 1, "not answered before Flask"
    middleware.enabled = False
    try:
        slow = ask()
    finally:
        middleware.enabled = True
    assert middleware.answered == before + 1
    assert fast.status_code == slow.status_code == 200
    assert fast.get_json() == slow.get_json()
    assert fast.get_data() == slow.get_data()
    headers = {(k.lower(), v) for k, v in fast.headers.items() if k.lower() not in IGNORED}
    assert headers == {(k.lower(), v) for k, v in slow.headers.items() if k.lower() not in IGNORED}
    return fast


def test_a_visitors_poll_and_ping_are_answered_as_flask_answers_them(any_app, running, clock):
    client = visitor(any_app)
    assert ping(client, running).status_code == 200  # Flask: the read, the first write, the checks
    data = same_as_flask(any_app, lambda: status(client, running)).get_json()
    assert data["status"] == "running" and data["url"] and data["sleep_notice"]
    assert same_as_flask(any_app, lambda: ping(client, running)).get_json()["status"] == "running"
    clock[0] += 0.5 * S
    same_as_flask(
        any_app, lambda: ping(client, running, content_type="application/x-www-form-urlencoded;charset=UTF-8")
    )


def test_a_logged_in_visitor_and_a_stopped_deployment_too(any_app, running, clock):
    client = visitor(any_app)
    login(client)
    client.token = CSRF_META.search(client.get("/alice/wave/viz/").get_data(as_text=True)).group(1)
    assert ping(client, running).status_code == 200
    same_as_flask(any_app, lambda: ping(client, running))
    lifecycle.stop(db.session.scalar(db.select(Deployment)), reason="idle")
    assert status(client, running).get_json()["status"] == "stopped"  # read again by Flask
    data = same_as_flask(any_app, lambda: status(client, running)).get_json()
    assert data["status"] == "stopped" and data["why_stopped"]
    same_as_flask(any_app, lambda: ping(client, running))


def test_a_due_ping_is_written_by_flask(any_app, running, clock):
    client = visitor(any_app)
    middleware = hot(any_app)
    assert ping(client, running).status_code == 200
    before = middleware.answered
    clock[0] += any_app.config["DORMOUSE"].activity_resolution * S
    assert ping(client, running).status_code == 200
    assert middleware.answered == before  # the write is Flask's
    db.session.expire_all()
    assert db.session.scalar(db.select(Deployment.latest_ping_at)) == clock[0]
    assert ping(client, running).status_code == 200
    assert middleware.answered == before + 1


def test_whatever_it_cannot_answer_exactly_goes_to_flask(any_app, running, clock):
    client = visitor(any_app)
    middleware = hot(any_app)
    assert ping(client, running).status_code == 200
    assert status(client, running).status_code == 200
    before = middleware.answered
    assert ping(client, running, headers={"X-CSRFToken": "forged"}).status_code == 400
    stranger = any_app.test_client()  # no session, no token
    answer = stranger.post("/alice/wave/viz/ping", data={"deployment": running}, headers=JSON, csrf=False)
    assert answer.status_code == 400
    bob = visitor(any_app)  # a token of another session
    assert ping(client, running, headers={"X-CSRFToken": bob.token}).status_code == 400
    assert status(client, running, {"Accept": "application/json", "HX-Request": "true"}).status_code == 286
    assert status(client, running, {"Accept": "text/html"}).mimetype == "text/html"
    assert status(client, running, headers={**JSON, "Host": "evil.example"}).status_code == 400
    viz_host = any_app.config["DORMOUSE"].viz_host
    assert status(client, running, headers={**JSON, "Host": viz_host}).status_code == 404
    assert client.get("/alice/wave/viz/status", headers=JSON).status_code == 200  # no name: the latest
    assert client.get("/alice/Wave/viz/status?deployment=" + running, headers=JSON).status_code == 404
    # over HTTPS, Flask-WTF's strict referrer check
    secure = {"base_url": "https://localhost"}
    assert ping(client, running, **secure).status_code == 400
    assert middleware.answered == before
    answer = ping(client, running, headers={"Referer": "https://localhost/alice/wave/viz/"}, **secure)
    assert answer.status_code == 200 and middleware.answered == before + 1
    assert answer.headers["Strict-Transport-Security"]


def test_a_private_app_a_starting_or_failed_deployment_go_to_flask(any_app, running, clock):
    client = visitor(any_app)
    middleware = hot(any_app)
    assert status(client, running).status_code == 200
    before = middleware.answered
    db.session.execute(update(VizApp).values(is_public=False))
    db.session.commit()  # this worker's write: the memo reads again
    assert status(client, running).status_code == 404
    assert ping(client, running).status_code == 404
    db.session.execute(update(VizApp).values(is_public=True))
    db.session.execute(update(Deployment).values(status="failed", status_reason="secret output"))
    db.session.commit()
    for _ in range(2):
        data = status(client, running).get_json()
        assert data["status"] == "failed" and "secret" not in data["reason"]  # for its owner only
    assert middleware.answered == before


def test_a_session_flask_login_acts_on_goes_to_flask(any_app, running, clock):
    client = visitor(any_app)
    middleware = hot(any_app)
    assert status(client, running).status_code == 200
    with client.session_transaction() as session:
        session["_remember"] = "clear"  # a remember-me cookie to clear: Flask-Login's after_request does it
    name = any_app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name).value
    before = middleware.answered
    for _ in range(2):  # the first remembers the cookie's check, the second finds it remembered
        client.set_cookie(name, cookie)
        answer = status(client, running)
        assert answer.status_code == 200
        assert any(c.startswith("remember_token=;") for c in answer.headers.getlist("Set-Cookie"))
    assert middleware.answered == before
