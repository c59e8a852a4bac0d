"""The hot answers given before Flask (app/hot_wsgi.py), on SQLite and
PostgreSQL: the same body and headers Flask gives, and every request the
middleware cannot answer exactly as Flask would passed on to Flask (wrong or
missing CSRF token, a stranger to a private app, another host, an HTML
poll, a starting or failed deployment, a ping whose write is due...)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from app import lifecycle, tokens
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


def here_then_flask(any_app, ask):
    """``ask()`` answered by the middleware, then the same asked of Flask
    (the middleware off)."""
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
    return fast, slow


def same_as_flask(any_app, ask):
    """The answer given here, then Flask's to the same request: equal but
    for the date (a ping's write is not due in between)."""
    fast, slow = here_then_flask(any_app, ask)
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


# --- the running partial (HTMX), for an anonymous viewer ----------------------------------

HX = {"HX-Request": "true", "Accept": "text/html"}
TOKEN = re.compile(r"dormouse_token=([A-Za-z0-9_.-]+)")


def same_partial_as_flask(any_app, ask):
    """The partial given here, then Flask's: the same text around each one's
    own entry token, the same headers but the date."""
    fast, slow = here_then_flask(any_app, ask)
    assert fast.status_code == slow.status_code == 286
    (fast_token,) = TOKEN.findall(fast.get_data(as_text=True))
    (slow_token,) = TOKEN.findall(slow.get_data(as_text=True))
    assert fast_token != slow_token
    assert fast.get_data(as_text=True).replace(fast_token, "T") == slow.get_data(as_text=True).replace(
        slow_token, "T"
    )
    headers = {
        (k.lower(), v) for k, v in fast.headers.items() if k.lower() not in IGNORED | {"content-length"}
    }
    assert headers == {
        (k.lower(), v) for k, v in slow.headers.items() if k.lower() not in IGNORED | {"content-length"}
    }
    assert int(fast.headers["Content-Length"]) == len(fast.get_data())
    assert "Set-Cookie" not in fast.headers
    return fast_token


def test_an_anonymous_viewers_running_partial_is_answered_with_a_fresh_token(any_app, running, clock):
    client = visitor(any_app)
    middleware = hot(any_app)
    assert status(client, running, HX).status_code == 286  # Flask: marks the session not fresh, renders
    assert status(client, running, HX).status_code == 286  # Flask: checks the changed cookie once
    token = same_partial_as_flask(any_app, lambda: status(client, running, HX))
    claims = tokens.verify(any_app.config["DORMOUSE"].jwt_keys, token, public_name=running, kind=tokens.ENTRY)
    assert claims.subject == "anonymous"
    with any_app.app_context():
        assert tokens.consume(claims) is True and tokens.consume(claims) is False  # once, at the gate
    before = middleware.answered
    assert status(client, running, {**HX, "Host": "evil.example"}).status_code == 400
    assert status(client, running, {"HX-Request": ""}).status_code == 200  # not htmx's: Flask, no 286
    assert middleware.answered == before


def test_a_partial_flask_login_could_act_on_goes_to_flask(any_app, running, clock):
    client = visitor(any_app)
    middleware = hot(any_app)
    fresh = any_app.test_client()
    fresh.get("/alice/wave/viz/")
    with fresh.session_transaction() as session:
        session["csrf_token"] = "x" * 40  # a session Flask-Login has not yet marked not fresh
    assert status(client, running, HX).status_code == 286
    before = middleware.answered
    answer = status(fresh, running, HX)
    assert answer.status_code == 286 and middleware.answered == before
    assert answer.headers.get("Set-Cookie")  # Flask-Login marked it: the cookie changed
    alice = visitor(any_app)
    login(alice)
    for _ in range(2):
        (token,) = TOKEN.findall(status(alice, running, HX).get_data(as_text=True))
        claims = tokens.verify(
            any_app.config["DORMOUSE"].jwt_keys, token, public_name=running, kind=tokens.ENTRY
        )
        assert claims.subject.startswith("user:")
    assert middleware.answered == before  # a logged-in viewer's token names her: Flask's
    client.set_cookie(any_app.config["REMEMBER_COOKIE_NAME"], "whatever")
    assert status(client, running, HX).status_code == 286 and middleware.answered == before


def test_a_private_app_or_a_stopped_deployment_partial_goes_to_flask(any_app, running, clock):
    client = visitor(any_app)
    middleware = hot(any_app)
    assert status(client, running, HX).status_code == 286
    db.session.execute(update(VizApp).values(is_public=False))
    db.session.commit()
    before = middleware.answered
    assert status(client, running, HX).status_code == 404
    db.session.execute(update(VizApp).values(is_public=True))
    db.session.commit()
    lifecycle.stop(db.session.scalar(db.select(Deployment)), reason="idle")
    assert "asleep" in status(client, running, HX).get_data(as_text=True)
    assert middleware.answered == before


def test_the_entry_token_limit_counts_the_partials_answered_here(tmp_path, any_db_url, clock):
    from app.rate_limits import ENTRY_TOKENS
    from tests.factories import CSRFClient, build_app, make_settings
    from tests.fakes import FakeBackend

    app = build_app(make_settings(tmp_path, any_db_url, RATE_LIMITS="1", STATUS_POLL_INTERVAL="10"))
    app.test_client_class = CSRFClient  # each request with its own g, as in a server
    backend = app.extensions["dormouse.backend"] = FakeBackend()
    with app.app_context():
        wave = make_app(make_user("alice"), "wave")
        dep = make_deployment(wave, clock[0] - 60 * S, ready_at=clock[0] - 50 * S)
        dep.backend_ref = backend.create(lifecycle.spec_for(dep))
        db.session.commit()
        client = visitor(app)
        middleware = hot(app)
        allowed = app.extensions[ENTRY_TOKENS].items[0].amount
        here = {"X-Forwarded-For": "203.0.113.7"}
        for _ in range(allowed):
            assert status(client, dep.public_name, {**HX, **here}).status_code == 286
        assert middleware.answered >= allowed - 2  # all but the first (or two) answered here
        refused = status(client, dep.public_name, {**HX, **here})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= 60
        assert status(client, dep.public_name, {**HX, "X-Forwarded-For": "203.0.113.8"}).status_code == 286
        db.session.remove()
        db.engine.dispose()
