"""End to end with the real local backend: both demo apps, real processes.

visit -> running -> the iframe URL serves the app (a Dash callback through the
prefix; Bokeh's autoload script and a websocket handshake under the prefix) ->
ping -> sweep with tiny timeouts -> process gone, row stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from app import lifecycle, sweep
from app.backends.local import group_alive
from app.extensions import db
from app.idle import IdleLimits
from app.models import Deployment, utcnow
from tests.appchecks import check_bokeh_app, check_dash_callback
from tests.factories import CSRFClient, build_app, login, make_app, make_settings, make_user
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


@pytest.mark.parametrize("framework, title", [("dash", "wave"), ("bokeh", "sliders")])
def test_whole_lifecycle(real_app, framework, title):
    client = real_app.test_client()
    owner = make_user("alice")
    make_app(owner, title, framework=framework)
    base = f"/alice/{title}"

    page = client.get(f"{base}/viz/")
    assert page.status_code == 200 and not lifecycle.backend().list()  # no side effects

    started = client.post(f"{base}/viz/start", headers=HX)
    assert started.status_code == 200 and 'data-status="starting"' in started.get_data(as_text=True)
    data = wait_running(client, base)
    assert data["status"] == "running", data
    url = data["url"]
    dep = db.session.scalar(db.select(Deployment))
    assert url.startswith("http://localhost:") and dep.prefix in url

    # the partial carries the iframe and ends the poll
    partial = client.get(f"{base}/viz/status", headers=HX)
    assert partial.status_code == 286 and f'src="{url}"' in partial.get_data(as_text=True)

    # the app really works through the prefix
    if framework == "dash":
        check_dash_callback(url)
    else:
        port = url.split(":")[2].split("/")[0]
        check_bokeh_app(url, origin=f"http://localhost:{port}")

    # a second visitor shares it
    assert client.post(f"{base}/viz/start", headers=JSON).get_json()["url"] == url
    assert db.session.scalar(db.select(db.func.count(Deployment.id))) == 1

    pinged = client.post(f"{base}/viz/ping", data={"deployment": dep.public_name}, headers=JSON)
    assert pinged.get_json()["latest_ping_at"] is not None

    pgid = json.loads(dep.backend_ref)["pid"]
    assert group_alive(pgid)
    report = sweep.sweep(
        now=utcnow() + timedelta(seconds=5), lim=IdleLimits(load_timeout=1, ping_timeout=1, start_timeout=120)
    )
    assert [d.id for d, _ in report.stopped] == [dep.id]
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "idle"
    assert not group_alive(pgid)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=3)
    stopped = client.post(f"{base}/viz/ping", data={"deployment": dep.public_name}, headers=JSON)
    assert stopped.get_json()["status"] == "stopped"


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
