"""End to end with the real local backend behind the real front door: both
demo apps, real processes, Traefik and its forwardAuth.

visit -> running -> the iframe URL (on the apps' host, through Traefik) serves
the app only with the page's entry token (a Dash callback through the prefix;
Bokeh's autoload script and its websocket) -> ping -> sweep -> process gone,
row stopped, route gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from app import lifecycle, sweep, tokens
from app.backends.local_groups import group_alive
from app.extensions import db
from app.idle import IdleLimits
from app.models import Deployment, utcnow
from tests.appchecks import check_bokeh_app, check_dash_callback, enter
from tests.factories import CSRFClient, build_app, login, make_app, make_settings, make_user
from tests.serving import REQUEST_TIMEOUT, LiveServer, serve, start_app
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(240)
HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}
DEADLINE = 90.0


@contextmanager
def serving_app(settings) -> Iterator:
    """The Flask app with the real local backend, in an app context; every app
    process it started is stopped afterwards, whatever happened."""
    app = build_app(settings)
    app.test_client_class = CSRFClient
    with app.app_context():
        try:
            yield app
        finally:
            try:
                backend = lifecycle.backend()
                for ref in backend.list().values():  # never leave a process behind
                    backend.stop(ref)
            finally:
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def real_app(tmp_path: Path):
    with serving_app(make_settings(tmp_path, START_TIMEOUT="120")) as app:
        yield app


@pytest.fixture
def broken_app(tmp_path: Path):
    """An app whose source raises at import."""
    apps = tmp_path / "apps"
    (apps / "broken").mkdir(parents=True)
    (apps / "broken" / "app.py").write_text(
        "import dash\nserver = None\nraise RuntimeError('the data file is missing')\n"
    )
    with serving_app(make_settings(tmp_path, APPS_DIR=str(apps))) as app:
        make_app(make_user("alice"), "broken", source="broken/app.py:server")
        yield app


def wait_running(client, base: str) -> dict:
    """The status once it is no longer ``starting``."""
    return wait_for(
        lambda: (
            (d := client.get(f"{base}/viz/status", headers=JSON).get_json())["status"] != "starting" and d
        ),
        DEADLINE,
        f"{base} to finish starting",
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LiveServer]:
    """The product behind its front door; the sweep is left to the test."""
    with serve(tmp_path, SWEEP_INTERVAL="3600", START_TIMEOUT="120") as live:
        yield live


@contextmanager
def beside(server: LiveServer) -> Iterator:
    """Dormouse in this process on the served product's instance (its
    database, run dir and keys), to read rows and run a sweep at a chosen
    time; it leaves the server's apps alone (the server's teardown stops them)."""
    instance = server.tmp_path / "instance"
    settings = make_settings(server.tmp_path, database_url=f"sqlite:///{instance / 'dormouse.db'}",
                             INSTANCE_PATH=str(instance))  # fmt: skip
    app = build_app(settings)
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


@pytest.mark.parametrize("path", ["/demo/dash-wave/", "/demo/bokeh-sliders/"])
def test_whole_lifecycle_through_the_front_door(served: LiveServer, path: str) -> None:
    visitor = requests.Session()
    started = start_app(served, visitor, path)
    assert started["status"] in ("starting", "running")  # running: the app beat the start's own read
    data = served.wait(lambda: (d := served.status(path, visitor))["status"] != "starting" and d, DEADLINE,
                       f"{path} to finish starting")  # fmt: skip
    assert data["status"] == "running", data
    url = data["url"]
    assert url.startswith(f"{served.viz}{path}")  # the apps' host, on the one port

    # only with the page's entry token: none, a forged one, an expired one -> 401
    assert requests.get(url, timeout=REQUEST_TIMEOUT).status_code == 401
    forged = url + "?dormouse_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
    assert requests.get(forged, timeout=REQUEST_TIMEOUT).status_code == 401
    entry = served.frame_url(path, visitor)
    with beside(served) as app:
        keys = app.config["DORMOUSE"].jwt_keys
        stale = tokens.issue(keys, public_name=data["public_name"], subject="anonymous", kind=tokens.ENTRY,
                             ttl=60, now=utcnow() - timedelta(minutes=5))  # fmt: skip
    assert requests.get(f"{url}?dormouse_token={stale}", timeout=REQUEST_TIMEOUT).status_code == 401

    # the app really works through Traefik, with the cookie the entry token got
    app_url, app_session = enter(entry)
    if "dash" in path:
        check_dash_callback(app_url, app_session)
    else:
        check_bokeh_app(app_url, origin=served.viz, session=app_session)  # websocket through Traefik
    assert requests.get(entry, timeout=REQUEST_TIMEOUT).status_code == 401  # the entry URL, replayed

    # a second visitor shares the deployment
    other = requests.Session()
    assert start_app(served, other, path)["public_name"] == data["public_name"]
    pinged = visitor.post(f"{served.base}{path}viz/ping", data={"deployment": data["public_name"]},
                          headers=JSON, timeout=REQUEST_TIMEOUT)  # fmt: skip
    assert pinged.json()["latest_ping_at"] is not None

    # the sweep, later: stopped, process gone, route gone
    with beside(served) as app:
        dep = db.session.scalar(db.select(Deployment).where(Deployment.public_name == data["public_name"]))
        pgid = json.loads(dep.backend_ref)["pid"]
        assert group_alive(pgid)
        limits = IdleLimits(load_timeout=1, ping_timeout=1, start_timeout=120)
        report = sweep.sweep(now=utcnow() + timedelta(seconds=5), lim=limits)
        assert [d.id for d, _ in report.stopped] == [dep.id]
        db.session.refresh(dep)
        assert dep.status == "stopped" and dep.stop_reason == "idle"
    assert not group_alive(pgid)
    assert served.status(path, visitor)["status"] == "stopped"
    # the app's route goes with it: even its cookie now reaches no app
    wait_for(lambda: app_session.get(app_url, timeout=REQUEST_TIMEOUT).status_code == 404, 30,
             "Traefik to drop the stopped app's route")  # fmt: skip
    assert served.frame_url_or_none(path, visitor) is None


def test_a_crashing_app_shows_its_error_to_its_owner(broken_app):
    client = broken_app.test_client()
    login(client)
    client.post("/alice/broken/viz/start", headers=HX)
    data = wait_running(client, "/alice/broken")
    assert data["status"] == "failed"
    assert "RuntimeError: the data file is missing" in data["reason"]
    html = client.get("/alice/broken/viz/status", headers=HX).get_data(as_text=True)
    assert "could not start" in html and "the data file is missing" in html
    assert not lifecycle.backend().list()
