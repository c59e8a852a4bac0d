"""Path traversal (issue 8): an app's source that points out of ``APPS_DIR``
(``..``, an absolute path, a symlink, a NUL byte, percent-encoded dots), at
publish (form and CLI) and again at launch for a row that skipped publish;
and request paths with dot segments sent through the served product's
Traefik, to reach another app with one app's cookie, or Dormouse's files.

The file outside ``APPS_DIR`` writes a marker when run, so "nothing ran" is
seen, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Deployment, VizApp
from tests.appchecks import enter
from tests.factories import CSRFClient, attach_default_env, build_app, make_settings, make_user
from tests.security.helpers import JSON, PASSWORD, Site, make_site, raw_get, route_files, visitor
from tests.serving import LiveServer, serve, start_app

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def apps_dir(tmp_path: Path) -> Path:
    """``apps/`` (the apps folder: ``dash-wave/app.py``, ``ok/app.py``, a
    symlink ``sneaky.py`` and a symlinked folder ``linked`` pointing out) and
    ``outside/evil.py`` beside it, which leaves ``outside/ran`` if run."""
    apps, outside = tmp_path / "apps", tmp_path / "outside"
    for folder in (apps / "dash-wave", apps / "ok", outside):
        folder.mkdir(parents=True)
    for app_file in (apps / "dash-wave" / "app.py", apps / "ok" / "app.py"):
        app_file.write_text("def server(environ, start_response):\n    return []\n")
    (outside / "evil.py").write_text(
        f"open({str(outside / 'ran')!r}, 'w').close()\ndef server(environ, start_response):\n    return []\n"
    )
    (apps / "sneaky.py").symlink_to(outside / "evil.py")
    (apps / "linked").symlink_to(outside, target_is_directory=True)
    return apps


def escapes(apps: Path) -> list[str]:
    outside = apps.parent / "outside"
    return [
        "../outside/evil.py",
        "../outside/evil.py:server",
        "ok/../../outside/evil.py",
        "ok/app.py/../../../outside/evil.py",
        "./../outside/evil.py",
        str(outside / "evil.py"),
        "/etc/passwd",
        "//etc/passwd",
        "~/evil.py",
        "sneaky.py",
        "linked/evil.py",
        "ok/app.py\x00.txt",
        "%2e%2e/outside/evil.py",
        "..%2foutside%2fevil.py",
        "..\\outside\\evil.py",
    ]


@pytest.fixture
def site(tmp_path: Path, apps_dir: Path) -> Iterator[Site]:
    with make_site(tmp_path, APPS_DIR=str(apps_dir)) as made:
        yield made


def test_sources_out_of_the_apps_folder_are_refused_at_publish(site: Site, apps_dir: Path) -> None:
    """Attack: publish an app whose source is outside APPS_DIR, by every
    spelling (dot segments, absolute paths, symlinks, NUL, encoded dots,
    backslashes). Expected: the form answers 400 with the source's error,
    the CLI fails naming the source, nothing is saved."""
    alice = site.client("alice")
    runner = site.app.test_cli_runner()
    for n, source in enumerate(escapes(apps_dir)):
        form = {"title": f"t{n}", "framework": "dash", "source": source, "cpu": "500m", "memory": "512Mi"}
        answer = alice.post("/publish", data=form)
        page = answer.get_data(as_text=True)
        assert answer.status_code == 400 and 'id="source-error"' in page, (source, answer.status_code)
        result = runner.invoke(args=["apps", "publish", "--owner", "alice", "--title", f"t{n}",
                                     "--framework", "dash", "--source", source])  # fmt: skip
        assert result.exit_code == 1 and "source:" in result.output, (source, result.output)
    assert site.titles() == {"wave"}
    assert not (apps_dir.parent / "outside" / "ran").exists()


def test_sources_out_of_the_apps_folder_are_refused_at_launch(tmp_path: Path, apps_dir: Path) -> None:
    """Attack: rows written past publish (an old or edited database) whose
    source leaves APPS_DIR, and a source that was fine when published and
    was then replaced by a symlink pointing out. A visit asks the real
    local backend to start each. Expected: every deployment fails with a
    reason, no route is written, nothing outside runs."""
    app = build_app(make_settings(tmp_path, APPS_DIR=str(apps_dir), RATE_LIMITS="0"))
    app.test_client_class = CSRFClient
    routes = tmp_path / "instance" / "traefik" / "routes"
    sources = [s.partition(":")[0] for s in escapes(apps_dir)] + ["ok/app.py"]
    with app.app_context():
        alice = make_user("alice", PASSWORD)
        for n, source in enumerate(sources):
            db.session.add(VizApp(owner=alice, title=f"t{n}", framework="dash", source=source,
                                  callable="server", port=8050, cpu="500m", memory="512Mi"))  # fmt: skip
        db.session.commit()
        for row in db.session.scalars(select(VizApp)):
            attach_default_env(row)  # it may start as far as the backend's own checks
        (apps_dir / "ok" / "app.py").unlink()  # published as a file inside; now a way out
        (apps_dir / "ok" / "app.py").symlink_to(apps_dir.parent / "outside" / "evil.py")
        db.session.remove()
        backend = app.extensions["dormouse.backend"]
        client = app.test_client()
        try:
            for n, source in enumerate(sources):
                answer = client.post(f"/alice/t{n}/viz/start", headers=JSON)
                assert answer.status_code == 200, (source, answer.status_code)
                assert answer.get_json()["status"] == "failed", (source, answer.get_json())
            rows = db.session.scalars(select(Deployment)).all()
            assert len(rows) == len(sources) and {r.status for r in rows} == {"failed"}
            assert backend.list() == {}
            assert not routes.exists() or not any(routes.iterdir())
        finally:
            for ref in backend.list().values():
                backend.stop(ref)
            db.session.remove()
            db.engine.dispose()
    assert not (apps_dir.parent / "outside" / "ran").exists()


# --- dot segments through the served product's Traefik ------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    with serve(tmp_path_factory.mktemp("traversal"), SWEEP_INTERVAL="3600", RATE_LIMITS="0") as live:
        live.flask("apps", "publish", "--owner", "demo", "--title", "other", "--framework", "dash",
                   "--source", "dash-wave/app.py:server")  # fmt: skip
        yield live


def running(server: LiveServer, path: str) -> tuple[str, str]:
    """Start ``path``'s app as a visitor does; (its prefix, an app cookie for it)."""

    viewer = visitor()
    start_app(server, viewer, path)
    data = server.wait(lambda: (d := server.status(path, viewer))["status"] != "starting" and d, 90,
                       f"{path} to start")  # fmt: skip
    assert data["status"] == "running", data
    _, session = enter(server.frame_url(path, viewer))
    prefix = "/" + data["url"].split("/", 3)[3]
    return prefix, str(session.headers["Cookie"])


def test_dot_segments_through_traefik_reach_no_other_app(server: LiveServer) -> None:
    """Attack: with one app's cookie (its path is scoped to that app's
    prefix, but a browser would send it to any path under it), request a
    path under that prefix that climbs into another app's prefix, plain and
    percent-encoded. Expected: never the other app (400, 401 or 404: Traefik
    either cleans the path, and the other route's gate refuses this cookie,
    or keeps it, and the gate refuses a dot segment)."""
    wave, cookie = running(server, "/demo/dash-wave/")
    other, _ = running(server, "/demo/other/")
    host = server.viz.split("//", 1)[1]
    assert raw_get(server, wave, host, cookie)[0] == 200  # the control: the cookie opens its own app
    climb = "../../../" + other.strip("/") + "/"
    for path in (wave + climb, wave + climb.replace("..", "%2e%2e"), wave + climb.replace("/", "%2f"),
                 wave + climb.replace("..", "%2E%2E").replace("/", "%2F"),
                 wave + "..%5c..%5c..%5c" + other[1:], wave + "/../" + climb):  # fmt: skip
        status, body = raw_get(server, path, host, cookie)
        assert status in (400, 401, 404), (path, status, body[:200])


def test_dot_segments_through_traefik_read_no_file_of_dormouse(server: LiveServer) -> None:
    """Attack: climb out of Dormouse's static folder to its instance files
    (the JWT keys, the secret key, the database) or its sources, on
    Dormouse's host and on the apps' host. Expected: not found (or refused);
    no byte of those files in any answer."""
    instance = server.tmp_path / "instance"
    secrets = [(instance / name).read_text().strip() for name in ("jwt_keys", "secret_key")]
    files = ["instance/jwt_keys", "instance/secret_key", "wsgi.py", "app/config.py"]
    for host in (server.site.split("//", 1)[1], server.viz.split("//", 1)[1]):
        for target in files:
            for path in (f"/static/../{target}", f"/static/../../{target}", f"/static/%2e%2e/{target}",
                         f"/static/..%2f{target.replace('/', '%2f')}", f"/static/..%5c{target}",
                         f"//{target}", f"/static//../{target}"):  # fmt: skip
                status, body = raw_get(server, path, host)
                assert status in (301, 302, 308, 400, 404), (host, path, status, body[:200])
                assert not any(secret and secret in body for secret in secrets), (host, path)
                assert "def create_app" not in body and "Settings" not in body, (host, path)
    assert route_files(server)  # the apps' routes are there; none was reached past the gate
