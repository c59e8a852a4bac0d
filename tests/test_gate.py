"""The front door's forwardAuth check (``GET /_auth/viz``), as Traefik calls
it: the original request's URI in ``X-Forwarded-Uri``, its cookies as sent."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event

from app import lifecycle, tokens
from app.extensions import db
from app.models import utcnow
from app.views.gate import COOKIE, TOKEN_PARAM


@pytest.fixture
def client(app):
    """Traefik, as far as the gate sees it: no cookie jar of its own, it
    forwards the browser's cookies in each request's headers."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def live(app, wave, fake_backend):
    dep = lifecycle.ensure_deployment(wave)
    fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    return dep


def keys(app):
    return app.config["DORMOUSE"].jwt_keys


def entry_for(app, public_name: str, **kw) -> str:
    return tokens.issue(keys(app), public_name=public_name, subject="anonymous", kind=tokens.ENTRY,
                        ttl=60, **kw)  # fmt: skip


def ask(client, uri: str, cookie: str | None = None, proto: str = "http", host: str = "viz.example.org"):
    headers = {"X-Forwarded-Uri": uri, "X-Forwarded-Host": host, "X-Forwarded-Proto": proto}
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    return client.get("/_auth/viz", headers=headers)


def session_cookie(response) -> tuple[str, str]:
    """(value, the whole Set-Cookie header) of the gate's cookie."""
    (header,) = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{COOKIE}=")]
    return header.split(";", 1)[0].split("=", 1)[1], header


@contextmanager
def counting_queries():
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_an_entry_token_opens_the_door_once_and_the_cookie_keeps_it_open(app, client, live):
    uri = f"{live.prefix}?{TOKEN_PARAM}={entry_for(app, live.public_name)}"
    first = ask(client, uri, proto="https")
    assert first.status_code == 200
    value, header = session_cookie(first)
    assert f"Path={live.prefix}" in header and "HttpOnly" in header
    # Over https the cookie is kept by the iframe whether or not Dormouse's page
    # is the same site as the apps' host, and only under the page embedding it.
    assert "Secure" in header and "SameSite=None" in header and "Partitioned" in header
    assert ask(client, uri).status_code == 401  # the same entry URL again: refused
    # every later request of the iframe passes on the cookie alone, with no query
    prefix = live.prefix
    with counting_queries() as queries:
        for path in ("", "_dash-layout", "_dash-update-component", "assets/style.css"):
            assert ask(client, prefix + path, cookie=value).status_code == 200
    assert queries == []


@pytest.mark.parametrize(
    "proto, host, kept",
    [
        ("https", "viz.example.org", "Secure; SameSite=None; Partitioned"),
        ("http", "viz.dormouse.localhost:8000", "Secure; SameSite=None; Partitioned"),  # a secure context
        ("http", "localhost:8000", "Secure; SameSite=None; Partitioned"),
        ("http", "viz.example.org", "SameSite=Lax"),  # plain http elsewhere: same-site frames only
    ],
)
def test_the_app_cookie_is_as_cross_site_as_the_transport_allows(app, client, live, proto, host, kept):
    uri = f"{live.prefix}?{TOKEN_PARAM}={entry_for(app, live.public_name)}"
    _, header = session_cookie(ask(client, uri, proto=proto, host=host))
    attributes = sorted(
        a.strip() for a in header.split(";")[1:] if not a.strip().startswith(("Expires", "Max-Age"))
    )
    assert attributes == sorted(["HttpOnly", f"Path={live.prefix}", *kept.split("; ")])


def test_no_token_no_entry(app, client, live):
    for uri in (live.prefix, f"{live.prefix}_dash-layout", f"{live.prefix}?{TOKEN_PARAM}="):
        response = ask(client, uri)
        assert response.status_code == 401 and COOKIE not in response.headers.get("Set-Cookie", "")


def test_a_token_for_another_deployment_is_refused(app, client, live, alice):
    from tests.factories import make_app

    other = lifecycle.ensure_deployment(make_app(alice, "other"))
    token = entry_for(app, other.public_name)
    assert ask(client, f"{live.prefix}?{TOKEN_PARAM}={token}").status_code == 401
    # and its cookie opens only its own prefix
    first = ask(client, f"{other.prefix}?{TOKEN_PARAM}={token}")
    assert first.status_code == 200
    value, _ = session_cookie(first)
    assert ask(client, live.prefix, cookie=value).status_code == 401
    assert ask(client, other.prefix, cookie=value).status_code == 200


def test_expired_tampered_and_unsigned_tokens_are_refused(app, client, live):
    expired = entry_for(app, live.public_name, now=utcnow() - timedelta(seconds=300))
    tampered = entry_for(app, live.public_name)[:-6] + "AAAAAA"
    header, payload, _ = entry_for(app, live.public_name).split(".")
    unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + "."
    for token in (expired, tampered, unsigned, "garbage"):
        assert ask(client, f"{live.prefix}?{TOKEN_PARAM}={token}").status_code == 401, token
        assert ask(client, live.prefix, cookie=token).status_code == 401, token
    # an entry token is not a cookie, nor a cookie an entry token
    assert ask(client, live.prefix, cookie=entry_for(app, live.public_name)).status_code == 401


def test_a_stopped_deployment_takes_no_new_viewers(app, client, live):
    token = entry_for(app, live.public_name)
    lifecycle.stop(live, reason="admin")
    assert ask(client, f"{live.prefix}?{TOKEN_PARAM}={token}").status_code == 401


@pytest.mark.parametrize("uri", ["", "/", "/alice/wave/", "/static/x.js", "/alice/wave/viz/", "/A/B/C/"])
def test_paths_that_name_no_deployment_are_refused(client, live, uri):
    assert ask(client, uri).status_code == 401


@pytest.mark.parametrize("tail", ["../../other/default-x/", "%2e%2e/x", "./x", "a%2Fb", "a\\b"])
def test_a_valid_cookie_opens_no_path_that_could_resolve_elsewhere(app, client, live, tail):
    first = ask(client, f"{live.prefix}?{TOKEN_PARAM}={entry_for(app, live.public_name)}")
    value, _ = session_cookie(first)
    assert ask(client, live.prefix + "x", cookie=value).status_code == 200  # control
    assert ask(client, live.prefix + tail, cookie=value).status_code == 401
