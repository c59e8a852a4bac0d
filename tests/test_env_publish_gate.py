"""When an app's environment is shown to others (app/app_envs.py,
app/managing.py): a new app only once its first environment is ready; an
edit that changes the requirements keeps the app on its ready environment
until the new one is. On SQLite and PostgreSQL, with real uv; the
background build is held (its keys recorded) and run here, so "in progress"
is deterministic."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import app_envs, env_builds
from app.editing import edit, input_of
from app.extensions import db
from app.models import Environment, User, VizApp, utcnow
from app.publishing import AppInput, publish
from tests.access import assert_hidden
from tests.envs_cache import uv_cache
from tests.factories import (
    EXAMPLES,
    CSRFClient,
    bearer,
    build_app,
    login,
    make_settings,
    make_token,
    make_user,
)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    root = tmp_path / "apps"
    shutil.copytree(EXAMPLES / "dash-wave", root / "dash-wave")
    shutil.copytree(EXAMPLES / "dash-wave", root / "humanized")
    (root / "humanized" / "requirements.txt").write_text("dash\nhumanize\n")
    return root


@pytest.fixture
def gate_app(tmp_path: Path, apps: Path, any_db_url: str) -> Iterator[Flask]:
    settings = make_settings(
        tmp_path,
        any_db_url,
        APPS_DIR=str(apps),
        ENVS_DIR=str(tmp_path / "envs"),
        ENV_CACHE_DIR=str(uv_cache()),
        ENV_COMPILE_BYTECODE="0",
    )
    app = build_app(settings)
    app.test_client_class = CSRFClient
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The background builds asked for, not run: the test runs them."""
    keys: list[str] = []
    monkeypatch.setattr(app_envs, "build_in_background", keys.append)
    return keys


def run(flask_app: Flask, key: str) -> Environment:
    """The held background build, run here as the executor runs it."""
    app_envs._background_build(flask_app, key)
    row = db.session.get(Environment, key)
    assert row is not None
    return row


def fail(key: str, error: str) -> None:
    db.session.execute(
        Environment.__table__.update().where(Environment.key == key).values(status="failed", error=error)
    )
    db.session.commit()


def the_app(title: str) -> VizApp:
    db.session.expire_all()
    app = db.session.scalar(select(VizApp).where(VizApp.title == title))
    assert app is not None
    return app


def clients(flask_app: Flask) -> dict[str, FlaskClient]:
    make_user("bob")
    make_user("root", admin=True)
    out = {"anonymous": flask_app.test_client()}
    for name in ("alice", "bob", "root"):
        out[name] = flask_app.test_client()
        login(out[name], name)
    return out


def assert_hidden_from_others(flask_app: Flask, who: dict[str, FlaskClient], title: str) -> None:
    for name in ("anonymous", "bob"):
        client = who[name]
        assert f"/alice/{title}/" not in client.get("/").get_data(as_text=True), name
        for path in ("/", "/viz/", "/stats", "/logs"):  # the very answer a missing app gets
            assert_hidden(client, "GET", path, title)  # type: ignore[arg-type]
        assert f"/alice/{title}/" not in client.get("/alice/").get_data(as_text=True)
    bob = db.session.scalar(select(User).where(User.username == "bob"))
    assert bob is not None
    listed = flask_app.test_client().get("/api/v1/apps", headers=bearer(make_token(bob))).get_json()
    assert title not in [a["title"] for a in listed["apps"]]


def test_a_new_app_is_shown_to_others_once_its_first_environment_is_ready(
    gate_app: Flask, held: list[str]
) -> None:
    alice = make_user("alice")
    who = clients(gate_app)
    form = {"title": "hum", "framework": "dash", "source": "humanized/app.py:server", "is_public": "y"}
    assert who["alice"].post("/publish", data=form).status_code == 302
    app = the_app("hum")
    assert app.owner_id == alice.id and app.is_public and app.env_key is None
    assert held == [app.pending_env_key]

    assert_hidden_from_others(gate_app, who, "hum")
    for name in ("alice", "root"):
        assert "/alice/hum/" in who[name].get("/").get_data(as_text=True), name
        page = who[name].get("/alice/hum/").get_data(as_text=True)
        assert 'data-env="building"' in page and "Only you and admins see this app" in page
    assert app_envs.state_of(app).label == "building"

    assert run(gate_app, held[0]).status == "ready"  # no further action: it is listed
    app = the_app("hum")
    assert app.env_key == held[0] and app.pending_env_key is None
    for name in ("anonymous", "bob"):
        assert "/alice/hum/" in who[name].get("/").get_data(as_text=True), name
        assert who[name].get("/alice/hum/").status_code == 200
    assert who["alice"].get("/alice/hum/").get_data(as_text=True).count('data-env="ready"') == 1


def test_a_failed_first_build_stays_hidden_and_shows_its_error_to_the_owner(
    gate_app: Flask, held: list[str]
) -> None:
    make_user("alice")
    who = clients(gate_app)
    form = {"title": "hum", "framework": "dash", "source": "humanized/app.py:server", "is_public": "y"}
    assert who["alice"].post("/publish", data=form).status_code == 302
    assert the_app("hum").is_public
    fail(held[0], "error: humanize <b>x</b> could not be built")
    assert_hidden_from_others(gate_app, who, "hum")
    page = who["alice"].get("/alice/hum/").get_data(as_text=True)
    assert 'data-env="failed"' in page and "humanize &lt;b&gt;x&lt;/b&gt; could not be built" in page
    assert "edit requirements.txt, then save the app again" in page
    answer = who["alice"].post("/alice/hum/viz/start", headers={"Accept": "application/json"})
    assert answer.status_code == 409


def test_an_edit_keeps_viewers_on_the_old_environment_until_the_new_one_is_ready(
    gate_app: Flask, apps: Path, held: list[str]
) -> None:
    settings = gate_app.config["DORMOUSE"]
    alice = make_user("alice")
    app = publish(
        alice,
        AppInput(title="wave", framework="dash", source="dash-wave/app.py:server"),
        settings,
        build_now=True,
    )
    old = app.env_key
    assert old is not None and app.pending_env_key is None
    old_python = app_envs.python_for(app, settings, now=utcnow())
    who = clients(gate_app)

    (apps / "dash-wave" / "requirements.txt").write_text("dash\nhumanize\n")
    edit(app, input_of(app), settings)  # the web's way: built in the background (held here)
    app = the_app("wave")
    new = app.pending_env_key
    assert held == [new] and new != old and app.env_key == old
    assert app_envs.python_for(app, settings, now=utcnow()) == old_python
    assert who["anonymous"].get("/alice/wave/").status_code == 200
    assert "data-env-pending" in who["alice"].get("/alice/wave/").get_data(as_text=True)
    later = utcnow() + timedelta(seconds=settings.envs.keep_unused + 3600)
    prunable = {row.key for row in env_builds.unused(settings.envs, now=later)}
    assert old not in prunable and new not in prunable

    fail(new, "error: the new build broke")  # the app stays on the old one; its owner sees why
    app = the_app("wave")
    assert app_envs.python_for(app, settings, now=utcnow()) == old_python
    page = who["alice"].get("/alice/wave/").get_data(as_text=True)
    assert "The new environment failed: the app keeps running in its previous one" in page
    assert "error: the new build broke" in page
    assert "the new build broke" not in who["bob"].get("/alice/wave/").get_data(as_text=True)
    prunable = {row.key for row in env_builds.unused(settings.envs, now=later)}
    assert new not in prunable  # a failed pending environment is not pruned either (status is not building)

    edit(app, input_of(app), settings)  # saved again: built again, then switched to
    app = the_app("wave")
    assert app.pending_env_key == new and held == [new, new]
    assert run(gate_app, new).status == "ready"
    app = the_app("wave")
    assert app.env_key == new and app.pending_env_key is None
    assert app_envs.python_for(app, settings, now=utcnow()).endswith(f"{new}/bin/python")


def test_an_edit_of_an_app_whose_environment_failed_moves_it_at_once(
    gate_app: Flask, apps: Path, held: list[str]
) -> None:
    settings = gate_app.config["DORMOUSE"]
    data = AppInput(title="wave", framework="dash", source="dash-wave/app.py:server")
    app = publish(make_user("alice"), data, settings, build_now=True)
    old = app.env_key
    assert old is not None
    fail(old, "error: the old one broke")  # nothing to keep running
    (apps / "dash-wave" / "requirements.txt").write_text("dash\nhumanize\n")
    edit(the_app("wave"), input_of(the_app("wave")), settings)
    app = the_app("wave")
    assert app.env_key == held[0] != old and app.pending_env_key is None
    with pytest.raises(app_envs.EnvNotReady) as caught:
        app_envs.python_for(app, settings, now=utcnow())
    assert not caught.value.failed  # viewers see "being prepared", not the old failure
