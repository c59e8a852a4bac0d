"""What a publisher may put in an app's environment: names that change how an
interpreter, loader, shell or server starts are refused at publish (form and
CLI) and again at launch; the attack that used them does nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import lifecycle
from app.app_environment import refusal, refused
from app.extensions import db
from app.models import VizApp
from tests.factories import login, make_app


@pytest.mark.parametrize(
    "name",
    [
        "PYTHONPATH", "PYTHONWARNINGS", "PYTHONSTARTUP", "PYTHONHOME", "pythonpath",
        "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "BROWSER", "PATH", "HOME",
        "GUNICORN_CMD_ARGS", "BOKEH_ALLOW_WS_ORIGIN", "BOKEH_SECRET_KEY", "DASH_DEBUG",
        "DASH_ROUTES_PATHNAME_PREFIX", "DORMOUSE_PREFIX", "SECRET_KEY", "DATABASE_URL",
        "PERL5OPT", "NODE_OPTIONS", "GLIBC_TUNABLES", "http_proxy", "PORT",
    ],
)  # fmt: skip
def test_names_that_change_how_programs_start_are_refused(name):
    assert refusal(name) is not None, name


@pytest.mark.parametrize("name", ["API_KEY", "COLOR", "DATA_URL", "MAPBOX_TOKEN", "app_mode", "PY_LEVEL"])
def test_ordinary_names_pass(name):
    assert refusal(name) is None


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "X" * 129])
def test_malformed_names_are_refused(name):
    assert "not a valid variable name" in refusal(name)


def test_refused_lists_the_bad_names_in_order():
    assert refused({"A": "1", "BROWSER": "bash", "B": "2", "LD_PRELOAD": "x"}) == ["BROWSER", "LD_PRELOAD"]


ATTACK = "BROWSER=bash\nPYTHONWARNINGS=ignore::antigravity.x\nBASH_ENV=$(id > /tmp/x)"


def test_the_publish_form_refuses_them_and_saves_nothing(app, alice):
    client = app.test_client()
    login(client)
    form = {"title": "evil", "framework": "dash", "source": "dash-wave/app.py:server",
            "cpu": "500m", "memory": "512Mi", "env": ATTACK}  # fmt: skip
    response = client.post("/publish", data=form)
    assert response.status_code == 400
    assert "BROWSER is reserved" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(VizApp.id))) == 0


def test_the_cli_refuses_them(runner, alice):
    result = runner.invoke(
        args=["apps", "publish", "--owner", "alice", "--title", "evil", "--framework", "dash",
              "--source", "dash-wave/app.py:server", "--env", "PYTHONSTARTUP=/tmp/x.py"]
    )  # fmt: skip
    assert result.exit_code == 1 and "PYTHONSTARTUP is reserved" in result.output
    assert db.session.scalar(select(func.count(VizApp.id))) == 0


def test_an_app_saved_before_the_rule_is_refused_at_launch(app, alice, fake_backend):
    viz = make_app(alice, "old", env="COLOR=red")
    viz.env = {"COLOR": "red", "BROWSER": "bash", "LD_PRELOAD": "/tmp/evil.so"}  # an old row
    db.session.commit()
    dep = lifecycle.ensure_deployment(viz)
    assert dep.status == "failed"
    assert "BROWSER, LD_PRELOAD" in dep.status_reason
    assert fake_backend.calls["create"] == 0  # never handed to a backend


def test_the_attack_replayed_through_a_visit_does_nothing(app, alice, tmp_path):
    """The report's attack, on a row saved before the rule and the real local
    backend: a visit fails the deployment, starts no process, runs nothing."""
    marker = tmp_path / "pwned"
    viz = make_app(alice, "evil")
    viz.env = {"BROWSER": "bash", "PYTHONWARNINGS": "ignore::antigravity.x", "BASH_ENV": f"$(id > {marker})"}
    db.session.commit()
    client = app.test_client()
    data = client.post("/alice/evil/viz/start", headers={"Accept": "application/json"}).get_json()
    assert data["status"] == "failed"
    assert lifecycle.backend().list() == {} and not marker.exists()
