"""Publishing with a requirements file (app/app_envs.py, app/publishing.py)
and what owners and viewers see while an environment is prepared or after
it failed. Real uv and the real package index; uv's cache shared between
runs (tests/envs_cache.py), a fresh ENVS_DIR and apps folder per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import app_envs, env_builds
from app.extensions import db
from app.models import Deployment, Environment, VizApp, utcnow
from app.publishing import AppInput, PublishError, publish
from tests.envs_cache import uv_cache
from tests.factories import EXAMPLES, CSRFClient, build_app, login, make_settings, make_user
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    """An apps folder: the wave demo, and a copy of it with requirements."""
    root = tmp_path / "apps"
    shutil.copytree(EXAMPLES / "dash-wave", root / "dash-wave")
    shutil.copytree(EXAMPLES / "dash-wave", root / "humanized")
    (root / "humanized" / "requirements.txt").write_text("dash\nhumanize  # numbers for people\n")
    (root / "secret.txt").write_text("SECRET_KEY=hunter2\n")
    return root


@pytest.fixture
def env_app(tmp_path: Path, apps: Path) -> Iterator[Flask]:
    settings = make_settings(
        tmp_path,
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


def data(title: str, source: str, **kw: str) -> AppInput:
    return AppInput(title=title, framework="dash", source=source, **kw)


def settings_of(flask_app: Flask):
    return flask_app.config["DORMOUSE"]


def test_requirements_beside_the_source_are_installed_and_shared(env_app: Flask) -> None:
    alice = make_user("alice")
    first = publish(alice, data("one", "humanized/app.py:server"), settings_of(env_app), build_now=True)
    assert first.requirements_text == "dash\nhumanize\n"
    env = app_envs.state_of(first)
    assert env.label == "ready", env.error
    row = db.session.get(Environment, first.env_key)
    assert row is not None and "humanize==" in row.lock_text and row.builds == 1

    runs = dict(env_builds.RUNS)
    second = publish(alice, data("two", "humanized/app.py:server"), settings_of(env_app), build_now=True)
    assert second.env_key == first.env_key
    assert dict(env_builds.RUNS) == runs  # same requirements: no resolve, no build
    db.session.refresh(row)
    assert row.builds == 1

    plain = publish(alice, data("plain", "dash-wave/app.py:server"), settings_of(env_app), build_now=True)
    assert plain.requirements_text is None  # no file: the framework's default environment
    assert plain.env_key != first.env_key and app_envs.state_of(plain).label == "ready"


@pytest.mark.parametrize(
    ("named", "message"),
    [
        ("../secret.txt", "relative path inside the apps folder"),
        ("/etc/passwd", "relative path inside the apps folder"),
        ("nothing/requirements.txt", "No file 'nothing/requirements.txt'"),
        ("secret.txt", "Line 1: not a package requirement"),
    ],
)
def test_a_named_requirements_file_must_be_a_clean_file_in_the_apps_folder(
    env_app: Flask, named: str, message: str
) -> None:
    with pytest.raises(PublishError) as caught:
        publish(make_user("alice"), data("x", "dash-wave/app.py", requirements=named), settings_of(env_app))
    assert message in caught.value.errors["requirements"]
    assert "hunter2" not in str(caught.value)
    assert db.session.scalar(select(func.count(VizApp.id))) == 0


def test_a_requirements_file_beside_the_source_that_leads_out_is_refused(env_app: Flask, apps: Path) -> None:
    outside = apps.parent / "outside.txt"
    outside.write_text("dash\n")
    (apps / "humanized" / "requirements.txt").unlink()
    (apps / "humanized" / "requirements.txt").symlink_to(outside)
    with pytest.raises(PublishError) as caught:
        publish(make_user("alice"), data("x", "humanized/app.py"), settings_of(env_app))
    assert (
        caught.value.errors["requirements"]
        == "requirements.txt beside the source leads out of the apps folder."
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("dash\n-r ../secret.txt\n--index-url http://127.0.0.1:9/simple\n", "Line 2: options such as -r"),
        ("humanize\n", "must list dash"),
        ("dash\ndormouse-no-such-package-xyz\n", "was not found in the package registry"),
        ("dash==2.18.2\n", "dash==2.18.2 and dash>=4,<5"),
    ],
)
def test_requirements_that_cannot_be_met_are_a_form_error_and_save_nothing(
    env_app: Flask, apps: Path, lines: str, message: str
) -> None:
    (apps / "humanized" / "requirements.txt").write_text(lines)
    with pytest.raises(PublishError) as caught:
        publish(make_user("alice"), data("x", "humanized/app.py"), settings_of(env_app))
    assert message in caught.value.errors["requirements"]
    assert db.session.scalar(select(func.count(VizApp.id))) == 0
    assert not (settings_of(env_app).envs.envs_dir).exists() or not any(
        p for p in settings_of(env_app).envs.envs_dir.iterdir() if p.name != ".uv-cache"
    )


def test_the_web_form_builds_in_the_background_and_viewers_wait_for_it(env_app: Flask) -> None:
    alice = make_user("alice")
    owner = env_app.test_client()
    login(owner, "alice")
    form = {"title": "hum", "framework": "dash", "source": "humanized/app.py:server"}
    answer = owner.post("/publish", data=form)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    app_row = db.session.scalar(select(VizApp).where(VizApp.title == "hum"))
    assert app_row is not None and app_row.owner_id == alice.id
    assert app_row.env_key is None and app_row.pending_env_key  # its first: others see it once ready

    def ready() -> bool:
        db.session.expire_all()
        return app_row.env_key is not None and app_envs.state_of(app_row).label == "ready"

    wait_for(ready, 240, "the background build")
    page = owner.get("/alice/hum/").get_data(as_text=True)
    assert 'data-env="ready"' in page
    viewer_page = env_app.test_client().get("/alice/hum/").get_data(as_text=True)
    assert "data-env" not in viewer_page  # the environment is its owner's business


def test_a_viewer_of_an_app_being_prepared_waits_and_no_deployment_is_made(env_app: Flask) -> None:
    alice = make_user("alice")
    app_row = publish(alice, data("hum", "humanized/app.py:server"), settings_of(env_app), build_now=True)
    db.session.execute(
        Environment.__table__.update().where(Environment.key == app_row.env_key).values(status="building")
    )
    db.session.commit()
    viewer = env_app.test_client()
    viewer.get("/alice/hum/viz/")
    answer = viewer.post("/alice/hum/viz/start", headers={"HX-Request": "true"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "3"
    text = answer.get_data(as_text=True)
    assert "hum is being prepared" in text and 'hx-trigger="load delay:3s"' in text
    as_json = viewer.post("/alice/hum/viz/start", headers={"Accept": "application/json"}).get_json()
    assert as_json["status"] == "preparing"
    assert db.session.scalar(select(func.count(Deployment.id))) == 0


def test_a_failed_environment_shows_uv_s_words_to_its_owner_only(env_app: Flask) -> None:
    alice = make_user("alice")
    app_row = publish(alice, data("hum", "humanized/app.py:server"), settings_of(env_app), build_now=True)
    error = "error: No solution found when resolving dependencies\n  cause: Because <b>x</b> was not found"
    db.session.execute(
        Environment.__table__.update()
        .where(Environment.key == app_row.env_key)
        .values(status="failed", error=error)
    )
    db.session.commit()
    owner = env_app.test_client()
    login(owner, "alice")
    for client, sees in ((owner, True), (env_app.test_client(), False)):
        answer = client.post("/alice/hum/viz/start", headers={"HX-Request": "true"})
        assert answer.status_code == 409
        text = answer.get_data(as_text=True)
        assert ("Because &lt;b&gt;x&lt;/b&gt; was not found" in text) is sees
        assert "could not be installed" in text or sees
    page = owner.get("/alice/").get_data(as_text=True)
    assert 'data-env="failed"' in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert db.session.scalar(select(func.count(Deployment.id))) == 0


def test_an_edit_that_changes_the_requirements_moves_the_app_to_a_new_environment(
    env_app: Flask, apps: Path
) -> None:
    from app.editing import edit, input_of

    app_row = publish(make_user("alice"), data("hum", "humanized/app.py:server"), settings_of(env_app))
    before = app_row.env_key
    (apps / "humanized" / "requirements.txt").write_text("dash\nhumanize==4.12.3\n")
    edit(app_row, input_of(app_row), settings_of(env_app), build_now=True)
    assert app_row.requirements_text == "dash\nhumanize==4.12.3\n"
    assert app_row.env_key != before and app_envs.state_of(app_row).label == "ready"
    python = app_envs.python_for(app_row, settings_of(env_app), now=utcnow())
    assert python.endswith(f"{app_row.env_key}/bin/python")


def test_the_api_answers_an_app_being_prepared_503_and_a_failed_one_409(env_app: Flask) -> None:
    from tests.factories import bearer, make_token

    alice = make_user("alice")
    bob = make_user("bob")
    app_row = publish(alice, data("hum", "humanized/app.py:server"), settings_of(env_app), build_now=True)
    api = env_app.test_client()
    shown = api.get("/api/v1/apps/alice/hum", headers=bearer(make_token(alice))).get_json()
    assert shown["config"]["requirements"] == "dash\nhumanize\n"
    assert shown["config"]["environment"]["status"] == "ready"
    table = Environment.__table__
    for status, code in (("building", 503), ("failed", 409)):
        db.session.execute(
            table.update().where(table.c.key == app_row.env_key).values(status=status, error="uv said no")
        )
        db.session.commit()
        for user, sees in ((alice, True), (bob, False)):
            answer = api.post("/api/v1/apps/alice/hum/deployment", headers=bearer(make_token(user)))
            assert answer.status_code == code
            assert ("uv said no" in answer.get_data(as_text=True)) is (sees and status == "failed")
        if code == 503:
            assert answer.headers["Retry-After"] == "3"
    assert db.session.scalar(select(func.count(Deployment.id))) == 0


def test_the_sweep_retries_a_build_whose_builder_died_and_prunes_unused_environments(
    env_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from app import sweep

    app_row = publish(
        make_user("alice"), data("hum", "humanized/app.py:server"), settings_of(env_app), build_now=True
    )
    key = app_row.env_key
    assert key is not None
    envs_dir = settings_of(env_app).envs.envs_dir
    shutil.rmtree(envs_dir / key)  # as if a build had died half-way: the row says building, long ago
    table = Environment.__table__
    long_ago = utcnow() - env_builds.stale_after(settings_of(env_app).envs) - timedelta(seconds=1)
    db.session.execute(
        table.update()
        .where(table.c.key == key)
        .values(status="building", claimed_by="gone:1", claimed_at=long_ago)
    )
    db.session.commit()
    monkeypatch.setattr(sweep, "_sweeps", 0)
    sweep.sweep()

    def ready() -> bool:
        db.session.expire_all()
        return db.session.get(Environment, key).status == "ready"  # type: ignore[union-attr]

    wait_for(ready, 240, "the build taken over by the sweep")
    assert (envs_dir / key / "bin" / "python").exists()

    app_row.deleted_at = utcnow()
    db.session.commit()
    monkeypatch.setattr(sweep, "_sweeps", 0)
    later = utcnow() + timedelta(seconds=settings_of(env_app).envs.keep_unused + 1)
    sweep.sweep(now=later)
    assert not (envs_dir / key).exists()
    assert db.session.get(Environment, key) is None


def test_an_app_from_before_environments_gets_its_default_one_when_first_opened(env_app: Flask) -> None:
    alice = make_user("alice")
    db.session.add(
        VizApp(owner=alice, title="old", framework="dash", source="dash-wave/app.py", callable="server")
    )
    db.session.commit()  # as a database migrated from before environments holds it: no env_key
    viewer = env_app.test_client()
    answer = viewer.post("/alice/old/viz/start", headers={"Accept": "application/json"})
    assert answer.status_code == 503 and answer.get_json()["status"] == "preparing"
    assert db.session.scalar(select(func.count(Deployment.id))) == 0

    def prepared() -> bool:
        db.session.expire_all()
        old = db.session.scalar(select(VizApp).where(VizApp.title == "old"))
        return old is not None and app_envs.state_of(old).label == "ready"

    wait_for(prepared, 240, "the old app's default environment")


def test_flask_envs_build_list_and_prune(env_app: Flask) -> None:
    from datetime import timedelta

    alice = make_user("alice")
    app_row = publish(alice, data("hum", "humanized/app.py:server"), settings_of(env_app), build_now=True)
    key = app_row.env_key
    assert key is not None
    runner = env_app.test_cli_runner()
    built = runner.invoke(args=["envs", "build", "alice/hum"])
    assert built.exit_code == 0 and f"environment {key[:12]} ready" in built.output, built.output
    missing = runner.invoke(args=["envs", "build", "alice/nothing"])
    assert missing.exit_code == 1 and "No app 'alice/nothing'" in missing.output
    listed = runner.invoke(args=["envs", "list"]).output.splitlines()
    assert listed[0].split() == ["KEY", "STATUS", "FW", "SIZE", "APPS", "BUILDS", "LAST", "USED"]
    assert listed[1].split()[:6] == [key[:12], "ready", "dash", listed[1].split()[3], "1", "1"]
    assert runner.invoke(args=["envs", "prune"]).output.strip() == "nothing to remove"

    app_row.deleted_at = utcnow() - timedelta(seconds=settings_of(env_app).envs.keep_unused + 1)
    db.session.execute(
        Environment.__table__.update()
        .where(Environment.key == key)
        .values(built_at=app_row.deleted_at, created_at=app_row.deleted_at)
    )
    db.session.commit()
    dry = runner.invoke(args=["envs", "prune", "--dry-run"])
    assert dry.output.strip() == f"would remove {key[:12]}"
    assert (settings_of(env_app).envs.envs_dir / key).exists()
    assert runner.invoke(args=["envs", "prune"]).output.strip() == f"removed {key[:12]}"
    assert not (settings_of(env_app).envs.envs_dir / key).exists()
