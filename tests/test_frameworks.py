"""The framework registry drives everything: the database constraint, the form,
the CLI, publishing, both backends and the pages. A third framework registered
here (a fake "panel") is taken everywhere without any other change."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import text

from app.backends import frameworks
from app.backends.base import AppSpec, BackendError
from app.backends.frameworks import FRAMEWORKS, Framework, Launch, LocalHost
from app.backends.kube_objects import app_path, container_args, make_deployment
from app.backends.local_commands import child_env, launch
from app.cli import apps_cli
from app.extensions import db
from app.forms import PublishForm
from app.kube_settings import KubeSettings
from app.models import VizApp
from app.publishing import AppInput, PublishError, publish, validate
from tests.factories import EXAMPLES, make_spec

KUBE = KubeSettings.from_env({"VIZ_HOST": "viz.example.org"}, required=True)
PREFIX = "/alice/pan/default-abc234/"


def panel_launch(spec: AppSpec, target: Path, host: LocalHost) -> Launch:
    argv = [
        host.python,
        "-m",
        "panel",
        "serve",
        str(target),
        "--port",
        str(host.port),
        "--prefix",
        spec.prefix,
        *[f"--allow-websocket-origin={o}" for o in host.origins],
    ]
    return Launch(argv, target.parent, spec.prefix + "app")


def panel_container_args(spec: AppSpec, source: str, prefix: str, viz_host: str) -> list[str]:
    return ["panel", "serve", source, "--port", str(spec.port), "--prefix", prefix]


PANEL = Framework(
    name="panel", label="Panel (HoloViz)", badge="Panel", default_port=5007,
    launch=panel_launch, container_args=panel_container_args, app_name=lambda source: "app",
    prefix_env=lambda prefix: {"PANEL_PREFIX": prefix},
    readiness_path=lambda prefix, path: path + "/health",
)  # fmt: skip


@pytest.fixture
def panel(monkeypatch: pytest.MonkeyPatch) -> Framework:
    monkeypatch.setitem(FRAMEWORKS, "panel", PANEL)
    return PANEL


def spec(framework: str, **kw: object) -> AppSpec:
    return make_spec(framework, title="pan", **{"source": "dash-wave/app.py", "image": "img:1", **kw})


# --- the registry itself -------------------------------------------------------


def test_every_entry_is_complete():
    assert set(FRAMEWORKS) == {"dash", "bokeh"}
    for name, fw in FRAMEWORKS.items():
        assert fw.name == name and frameworks.get(name) is fw
        assert fw.label and fw.badge and 1024 <= fw.default_port <= 65535 and fw.default_source
    assert FRAMEWORKS["dash"].takes_callable and FRAMEWORKS["dash"].default_callable == "server"
    assert not FRAMEWORKS["bokeh"].takes_callable


def test_an_unknown_framework_is_a_clear_backend_error():
    with pytest.raises(BackendError, match="Unknown framework 'shiny'"):
        frameworks.get("shiny")


@pytest.mark.parametrize("name", ["Dash", "da sh", "dash'); --", "", "a" * 11, "9lives"])
def test_names_that_would_not_fit_the_column_or_the_constraint_are_refused(name):
    with pytest.raises(ValueError, match="bad framework name"):
        frameworks.registry(dataclasses.replace(FRAMEWORKS["dash"], name=name))


def test_names_text(panel):
    assert frameworks.names_text() == "dash, bokeh or panel"


# --- every entry is offered everywhere ---------------------------------------------


def test_every_framework_is_in_the_form_the_cli_and_the_database(app):
    with app.test_request_context():
        choices = PublishForm(meta={"csrf": False}).framework.choices
    offered = {choice.value: choice.label for choice in choices}
    assert offered == {name: fw.label for name, fw in FRAMEWORKS.items()}

    (option,) = [p for p in apps_cli.commands["publish"].params if p.name == "framework"]
    assert list(option.type.choices) == list(FRAMEWORKS)

    (check,) = [c for c in VizApp.__table__.constraints if c.name == "ck_viz_apps_framework"]
    migrated = db.session.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'viz_apps'"))
    for name in FRAMEWORKS:
        assert f"'{name}'" in str(check.sqltext)
        assert f"'{name}'" in migrated  # a new framework needs a migration too


def test_publishing_asks_the_registry(app, alice):
    settings = app.config["DORMOUSE"]
    with pytest.raises(PublishError) as info:
        validate(alice, AppInput(title="x", framework="shiny", image="img:1"), settings)
    assert info.value.errors["framework"] == "Choose dash or bokeh."
    for name, fw in FRAMEWORKS.items():
        published = publish(alice, AppInput(title=name, framework=name, image="img:1"), settings)
        assert published.port == fw.default_port


# --- a third framework, registered in one place ----------------------------------------


def test_a_new_framework_is_accepted_by_publishing_and_the_form(app, alice, panel):
    settings = app.config["DORMOUSE"]
    values = validate(alice, AppInput(title="pan", framework="Panel", source="dash-wave/app.py"), settings)
    assert values["framework"] == "panel" and values["port"] == 5007 and values["callable"] is None
    with pytest.raises(PublishError) as info:
        validate(alice, AppInput(title="pan", framework="panel", source="dash-wave/app.py:server"), settings)
    assert info.value.errors == {"source": "A Panel app is a script; give only its file, no ':callable'."}
    with app.test_request_context():
        assert ("panel", "Panel (HoloViz)") in [
            (c.value, c.label) for c in PublishForm(meta={"csrf": False}).framework.choices
        ]


def test_a_new_framework_gets_its_own_labels_on_the_pages(app, client, alice, panel):
    # the migrated database only knows the built-in frameworks; let this row in
    db.session.execute(text("PRAGMA ignore_check_constraints = ON"))
    db.session.add(
        VizApp(owner=alice, title="pan", framework="panel", source="dash-wave/app.py", port=5007, env={})
    )
    db.session.commit()
    db.session.execute(text("PRAGMA ignore_check_constraints = OFF"))
    gallery = client.get("/").get_data(as_text=True)
    assert '<span class="fw fw-panel">Panel</span>' in gallery
    page = client.get("/alice/pan/").get_data(as_text=True)
    assert "<dd>Panel (HoloViz)</dd>" in page


def test_the_local_backend_asks_the_registry(panel):
    s = spec("panel", env={"COLOR": "red"})
    run = launch(
        s,
        EXAMPLES / "dash-wave" / "app.py",
        python="/py",
        bind_host="127.0.0.1",
        port=8125,
        viz_authority="viz.example.org",
    )
    assert run.argv[:4] == ["/py", "-m", "panel", "serve"] and run.app_path == PREFIX + "app"
    assert "--allow-websocket-origin=viz.example.org" in run.argv
    env = child_env(s, {"PATH": "/bin", "SECRET_KEY": "x"})
    assert env["PANEL_PREFIX"] == PREFIX and env["COLOR"] == "red" and "SECRET_KEY" not in env
    assert "DASH_ROUTES_PATHNAME_PREFIX" not in env


def test_the_kube_backend_asks_the_registry(panel):
    s = spec("panel", source=None, port=5007)
    assert container_args(s, KUBE.viz_host) == [
        "panel",
        "serve",
        "app.py",
        "--port",
        "5007",
        "--prefix",
        PREFIX,
    ]
    assert app_path(s) == PREFIX + "app"
    (c,) = make_deployment(s, "n", KUBE, secret=None)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["PANEL_PREFIX"] == PREFIX and "DASH_ROUTES_PATHNAME_PREFIX" not in env
    assert c["readinessProbe"]["httpGet"]["path"] == PREFIX + "app/health"
