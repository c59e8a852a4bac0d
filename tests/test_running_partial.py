"""The running app's status partial remembered per worker (app/running_partial.py),
on SQLite and PostgreSQL: the remembered answer is the full render's text with
its own fresh entry token, per viewer and deployment, and usable once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import lifecycle, running_partial, tokens
from app.extensions import db
from app.models import Deployment, utcnow
from tests.factories import login, make_app, make_deployment, make_user

HTMX = {"HX-Request": "true"}
TOKEN = re.compile(r"dormouse_token=([A-Za-z0-9_.-]+)")
S = timedelta(seconds=1)


@pytest.fixture
def running(any_app, any_fake_backend):
    now = utcnow()
    wave = make_app(make_user("alice"), "wave")
    dep = make_deployment(wave, now - 60 * S, ready_at=now - 50 * S)
    dep.backend_ref = any_fake_backend.create(lifecycle.spec_for(dep))
    db.session.commit()
    return dep.public_name


def partial(client, name):
    answer = client.get(f"/alice/wave/viz/status?deployment={name}", headers=HTMX)
    assert answer.status_code == 286
    text = answer.get_data(as_text=True)
    found = TOKEN.findall(text)
    assert len(found) == 1, text
    return text, found[0]


def remembered(any_app) -> int:
    return len(running_partial.for_app(any_app)._parts)


def test_the_remembered_partial_is_the_full_render_with_a_fresh_token(any_app, running, monkeypatch):
    client = any_app.test_client()
    first, token1 = partial(client, running)
    second, token2 = partial(client, running)
    assert remembered(any_app) == 1
    monkeypatch.setattr(running_partial, "shape", lambda *a: None)  # nothing remembered: a full render
    full, token3 = partial(client, running)
    assert len({token1, token2, token3}) == 3  # a new token for every answer
    assert first.replace(token1, "T") == second.replace(token2, "T") == full.replace(token3, "T")
    assert '<iframe class="viz-frame"' in second and "wave (dash app)" in second
    keys = any_app.config["DORMOUSE"].jwt_keys
    for token in (token1, token2, token3):
        claims = tokens.verify(keys, token, public_name=running, kind=tokens.ENTRY)
        assert claims.subject == "anonymous"


def test_the_token_names_its_viewer_though_the_text_around_it_is_shared(any_app, running):
    stranger = any_app.test_client()
    partial(stranger, running)
    alice = any_app.test_client()
    login(alice)
    _, token = partial(alice, running)
    assert remembered(any_app) == 1
    claims = tokens.verify(any_app.config["DORMOUSE"].jwt_keys, token, public_name=running, kind=tokens.ENTRY)
    assert claims.subject.startswith("user:")


def test_a_remembered_token_is_accepted_once_by_the_gate(any_app, running):
    client = any_app.test_client()
    partial(client, running)
    _, token = partial(client, running)
    with any_app.app_context():
        claims = tokens.verify(
            any_app.config["DORMOUSE"].jwt_keys, token, public_name=running, kind=tokens.ENTRY
        )
        assert tokens.consume(claims) is True
        assert tokens.consume(claims) is False


def test_a_changed_deployment_is_a_new_shape(any_app, running):
    client = any_app.test_client()
    partial(client, running)
    dep = db.session.scalar(select(Deployment).where(Deployment.public_name == running))
    dep.keep_awake_until = utcnow() + 3600 * S  # the sleep notice changes
    db.session.commit()
    text, _ = partial(client, running)
    assert remembered(any_app) == 2
    assert "viz-sleep-note" in text


def test_the_memo_is_bounded_and_a_placeholder_it_cannot_place_means_a_full_render(monkeypatch):
    monkeypatch.setattr(running_partial, "SHAPES", 3)
    memo = running_partial.RunningPartials()
    for i in range(10):
        assert memo.render(i, "tok", lambda t, i=i: f"<a {i}>{t}</a>") == f"<a {i}>tok</a>"
        assert len(memo._parts) <= 3
    twice = []

    def render(t):
        twice.append(t)
        return f"{t}|{t}"

    assert memo.render("x", "tok", render) == "tok|tok"
    assert memo.render("x", "tok2", render) == "tok2|tok2"
    assert twice == [running_partial.PLACEHOLDER, "tok", "tok2"]
