"""The front door's check and the database (issue 7): after the first exchange
every request of an app passes on its cookie with no SQL at all, the exchange
itself writes exactly once, and nothing unauthenticated reaches the database.
The check's speed is measured by bench/forward_auth.py, not here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event

from app import lifecycle, tokens
from app.extensions import db
from app.models import utcnow
from app.views.gate import COOKIE, TOKEN_PARAM

ASSETS = (
    "",
    "_dash-layout",
    "_dash-dependencies",
    "_dash-update-component",
    "_dash-component-suites/dash/dash-renderer/build/dash_renderer.min.js",
    "assets/style.css?v=3",
    f"?{TOKEN_PARAM}=an-old-entry-url-reloaded",  # a cookie that passes never looks at the query
)


@pytest.fixture
def client(app):
    """Traefik as the gate sees it: no cookie jar, the browser's cookies forwarded."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def live(app, wave, fake_backend):
    dep = lifecycle.ensure_deployment(wave)
    fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    return dep


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement sent to the database inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def ask(client, uri: str, cookie: str | None = None):
    headers = {"X-Forwarded-Uri": uri, "X-Forwarded-Host": "viz.localhost", "X-Forwarded-Proto": "https"}
    if cookie:
        headers["Cookie"] = f"other=1; {COOKIE}={cookie}"
    return client.get("/_auth/viz", headers=headers)


def entry_for(app, public_name: str, **kw) -> str:
    return tokens.issue(app.config["DORMOUSE"].jwt_keys, public_name=public_name, subject="anonymous",
                        kind=tokens.ENTRY, ttl=60, **kw)  # fmt: skip


def cookie_of(response) -> str:
    (header,) = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{COOKIE}=")]
    return header.split(";", 1)[0].split("=", 1)[1]


def test_the_exchange_reads_the_deployment_once_and_inserts_once(app, client, live):
    uri = f"{live.prefix}?{TOKEN_PARAM}={entry_for(app, live.public_name)}"  # (prefix loads the app)
    with statements() as seen:
        first = ask(client, uri)
    assert first.status_code == 200 and cookie_of(first)
    reads = [s for s in seen if s.startswith("SELECT")]
    inserts = [s for s in seen if s.startswith("INSERT")]
    assert len(reads) == 1 and "FROM deployments" in reads[0], seen
    assert len(inserts) == 1 and inserts[0].startswith("INSERT INTO used_tokens"), seen
    assert len(seen) == 2, seen  # nothing else: no update, no delete


def test_after_the_exchange_the_cookie_path_runs_no_sql(app, client, live):
    prefix = live.prefix  # read before counting: after a commit it loads the app and its owner
    cookie = cookie_of(ask(client, f"{prefix}?{TOKEN_PARAM}={entry_for(app, live.public_name)}"))
    with statements() as seen:
        for _ in range(20):
            for asset in ASSETS:
                assert ask(client, prefix + asset, cookie=cookie).status_code == 200, asset
    assert seen == []


def test_what_is_refused_on_its_signature_or_claims_runs_no_sql(app, client, live, alice):
    from tests.factories import make_app

    other = lifecycle.ensure_deployment(make_app(alice, "other"))
    prefix, other_prefix = live.prefix, other.prefix
    good = cookie_of(ask(client, f"{prefix}?{TOKEN_PARAM}={entry_for(app, live.public_name)}"))
    expired = entry_for(app, live.public_name, now=utcnow() - timedelta(seconds=300))
    foreign = entry_for(app, other.public_name)
    tampered = entry_for(app, live.public_name)[:-6] + "AAAAAA"
    with statements() as seen:
        assert ask(client, prefix).status_code == 401  # nothing at all
        assert ask(client, other_prefix, cookie=good).status_code == 401  # another deployment's prefix
        assert ask(client, "/not/an-app", cookie=good).status_code == 401
        for token in (expired, foreign, tampered, "garbage", good):  # a session token is no entry token
            assert ask(client, f"{prefix}?{TOKEN_PARAM}={token}").status_code == 401, token
            assert ask(client, prefix, cookie=token).status_code == (200 if token == good else 401)
    assert seen == []
