"""Traefik rule injection (issue 8): a name that reaches a route rule
(``Host(`VIZ_HOST`) && PathPrefix(`/<owner>/<title>/<deployment>/`)``)
carrying backticks, parentheses, ``||`` or spaces could widen the route to
other hosts or paths, e.g. a title ``a`) || Host(`evil``. Every way such a
string can come in is tried: a title or a user name (the publish form, the
CLI), the settings (``VIZ_HOST``, ``TRUSTED_HOSTS``, Traefik's names; the
README's run command refuses to start), and a row written past every check
(an old or tampered database), which the local backend refuses before it
writes a route or starts anything.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from app.backends.local_routes import LocalRoutes
from app.config_env import ConfigError
from app.extensions import db
from app.models import Deployment, User, VizApp
from app.traefik_config import route_rule
from tests.factories import CSRFClient, attach_default_env, build_app, make_settings, make_spec, make_user
from tests.security.helpers import JSON, PASSWORD, Site
from tests.serving import REPO, free_port

INJECTIONS = [
    "a`) || Host(`evil",
    "x) || PathPrefix(`/",
    "wave`)",
    "`",
    "wave || true",
    "wave)",
    "wave && Path(`/",
    "a b",
    "a\nb",
    "Wave",
]
SLASHLESS = [s for s in INJECTIONS if "/" not in s and s.strip() == s]  # routable as one path segment
HOSTS = ["viz.example.org`) || Host(`evil.org", "viz.example.org) || PathPrefix(`/", "viz example.org",
         "viz.example.org`", "`evil`"]  # fmt: skip


@pytest.mark.parametrize("title", INJECTIONS)
def test_titles_that_would_break_a_rule_are_refused_at_publish(site: Site, title: str) -> None:
    """Attack: publish an app whose title closes the rule's backtick and adds
    a clause. Expected: the form answers 400 naming the title's grammar, the
    CLI fails saying the same, nothing is saved."""
    form = {"title": title, "framework": "dash", "source": "dash-wave/app.py:server", "cpu": "500m",
            "memory": "512Mi"}  # fmt: skip
    answer = site.client("alice").post("/publish", data=form)
    assert answer.status_code == 400
    assert "lowercase letters, digits or hyphens" in answer.get_data(as_text=True)
    args = ["apps", "publish", "--owner", "alice", "--title", title, "--framework", "dash",
            "--source", "dash-wave/app.py:server"]  # fmt: skip
    result = site.app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1 and "title: That title is not allowed" in result.output, result.output
    assert site.titles() == {"wave"}


def test_user_names_that_would_break_a_rule_are_refused(site: Site) -> None:
    """Attack: an account named like a rule fragment (the name is the first
    segment of every app's prefix). Expected: ``flask users create`` refuses
    it; a login with it finds nobody."""
    runner = site.app.test_cli_runner()
    for name in INJECTIONS:
        result = runner.invoke(args=["users", "create", name, "--password-stdin"], input=PASSWORD + "\n")
        assert result.exit_code == 1 and "not allowed" in result.output, (name, result.output)
    with site.ctx():
        assert sorted(db.session.scalars(select(User.username))) == ["alice", "bob"]


@pytest.mark.parametrize(
    "env",
    [{"VIZ_HOST": host} for host in HOSTS]
    + [{"VIZ_HOST": host, "BACKEND": "kubernetes"} for host in HOSTS]
    + [{"TRUSTED_HOSTS": f"dormouse.example.org {host}"} for host in HOSTS if " " not in host]  # a list
    + [
        {"TRAEFIK_ENTRYPOINT": "websecure`) || Host(`evil"},
        {"TRAEFIK_CERT_RESOLVER": "le`)"},
        {"TRAEFIK_MIDDLEWARES": "auth`) || Host(`evil"},
    ],  # fmt: skip
)
def test_settings_that_would_break_a_rule_are_refused(tmp_path, env: dict[str, str]) -> None:
    """Attack: an operator (or a leaked deploy variable) sets VIZ_HOST,
    TRUSTED_HOSTS (the TLS certificate's names) or a Traefik name to a rule
    fragment. Expected: a ConfigError naming the variable; Dormouse does not start."""
    with pytest.raises(ConfigError, match=next(iter(env)) if "BACKEND" not in env else "VIZ_HOST"):
        make_settings(tmp_path, **env)


def test_the_front_door_refuses_to_start_with_an_injected_viz_host(tmp_path) -> None:
    """Attack: the README's run command (``python -m app.front_door``) with
    ``VIZ_HOST`` set to a rule fragment. Expected: it exits at once with a
    configuration error naming VIZ_HOST, before writing Traefik's files or
    starting anything."""
    instance = tmp_path / "instance"
    env = {**os.environ, "INSTANCE_PATH": str(instance), "PORT": str(free_port()), "HOST": "127.0.0.1",
           "VIZ_HOST": HOSTS[0]}  # fmt: skip
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "app.front_door"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, start_new_session=True)  # fmt: skip
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "VIZ_HOST must be a host name" in done.stderr
    assert not (instance / "traefik").exists()


def test_every_rule_fragment_is_refused_by_the_rule_itself(tmp_path) -> None:
    """Attack: the same strings handed straight to the rule and route-file
    builders (a path that skipped every earlier check). Expected: ValueError,
    no file written."""
    routes = LocalRoutes(tmp_path / "routes", viz_host="viz.dormouse.localhost")
    for bad in INJECTIONS:
        with pytest.raises(ValueError):
            route_rule("viz.example.org", f"/alice/{bad}/default-abc234/")
        with pytest.raises(ValueError):
            routes.write(make_spec(owner="alice", title=bad), "http://127.0.0.1:18123")
        with pytest.raises(ValueError):
            routes.write(make_spec(owner=bad, title="wave"), "http://127.0.0.1:18123")
    for host in HOSTS:
        with pytest.raises(ValueError):
            route_rule(host, "/alice/wave/default-abc234/")
    assert not (tmp_path / "routes").exists() or not any((tmp_path / "routes").iterdir())


def test_a_tampered_row_never_reaches_traefik(tmp_path) -> None:
    """Attack: rows written past every check (a database edited by hand, or
    from before the rules): an app titled like a rule fragment, a user named
    like one. A visit asks the real local backend to start it. Expected: the
    start is refused (the deployment fails with a reason, or the page says
    why), no route file is written, no process is started."""
    app = build_app(make_settings(tmp_path, RATE_LIMITS="0"))
    app.test_client_class = CSRFClient
    routes = tmp_path / "instance" / "traefik" / "routes"
    with app.app_context():
        alice = make_user("alice", PASSWORD)
        evil = User(username="x`) || Host(`evil", is_admin=False)
        evil.set_password(PASSWORD)
        db.session.add(evil)
        rows = [(alice, t) for t in SLASHLESS] + [(evil, "wave")]
        for owner, title in rows:
            db.session.add(VizApp(owner=owner, title=title, framework="dash", source="dash-wave/app.py",
                                  callable="server", port=8050, cpu="500m", memory="512Mi"))  # fmt: skip
        db.session.commit()
        for row in db.session.scalars(select(VizApp)):
            attach_default_env(row)  # it may start as far as the backend's own checks
        paths = [(owner.username, title) for owner, title in rows]
        db.session.remove()
        client = app.test_client()
        backend = app.extensions["dormouse.backend"]
        try:
            started = 0
            for owner, title in paths:
                answer = client.post(f"/{owner}/{title}/viz/start", headers=JSON)
                assert answer.status_code in (200, 404), (title, answer.status_code)  # 404: not routable
                if answer.status_code == 200:
                    started += 1
                    assert answer.get_json()["status"] == "failed", (title, answer.get_json())
            rows = db.session.execute(select(Deployment.status, Deployment.status_reason)).all()
            assert started >= len(paths) - 1 and len(rows) == started, (started, rows)
            for status, reason in rows:
                assert status == "failed" and reason.startswith("Invalid"), (status, reason)
            assert backend.list() == {}
            assert not routes.exists() or [p.name for p in routes.iterdir()] == []
        finally:
            for ref in backend.list().values():
                backend.stop(ref)
            db.session.remove()
            db.engine.dispose()
