"""The API end to end, on the product behind its front door with the real
local backend: a token from ``flask tokens issue`` (a real subprocess), then
over HTTP through Traefik: publish an app from examples/ -> start -> poll
until running (a real Dash process; its page really serves it) -> stats ->
stop (the process group is gone) -> delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from app.backends.local_groups import group_alive
from app.extensions import db
from app.models import Deployment
from tests.appchecks import check_dash_callback, enter
from tests.serving import REQUEST_TIMEOUT, LiveServer, serve
from tests.test_e2e_local import DEADLINE, beside

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def served(tmp_path: Path):
    with serve(tmp_path, SWEEP_INTERVAL="3600", START_TIMEOUT="120") as live:
        yield live


def test_publish_start_poll_stats_stop_delete_through_the_api(served: LiveServer) -> None:
    served.flask("users", "create", "alice", "--password-stdin", stdin="correct-horse\n")
    issued = served.flask("tokens", "issue", "alice", "--ttl", "600", "--label", "e2e")
    token = issued.stdout.strip()
    api = requests.Session()
    api.trust_env = False
    api.headers["Authorization"] = f"Bearer {token}"
    base = f"{served.base}/api/v1"

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return api.request(method, f"{base}{path}", timeout=REQUEST_TIMEOUT, **kwargs)

    # publish from examples/
    body = {"title": "api-wave", "framework": "dash", "source": "dash-wave/app.py:server", "cpu": "250m"}
    published = call("POST", "/apps", json=body)
    assert published.status_code == 201, published.text
    assert published.headers["Location"] == "/api/v1/apps/alice/api-wave"
    assert published.json()["state"]["label"] == "asleep"

    # start, then poll until running
    started = call("POST", "/apps/alice/api-wave/deployment")
    # (running already, when the app answered before the start's own read of it)
    assert started.status_code == 202 and started.json()["status"] in ("starting", "running"), started.text
    public_name = started.json()["public_name"]
    data = served.wait(
        lambda: (d := call("GET", "/apps/alice/api-wave/deployment").json())["status"] != "starting" and d,
        DEADLINE,
        "the app to finish starting",
    )
    assert data["status"] == "running" and data["public_name"] == public_name, data
    assert data["url"].startswith(f"{served.viz}/alice/api-wave/")
    # the API hands out no entry token: the app itself is closed to the token alone...
    assert (
        requests.get(
            data["url"], headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT
        ).status_code
        == 401
    )
    # ...and a viewer of the viz page gets in: the app really runs
    app_url, app_session = enter(served.frame_url("/alice/api-wave/"))
    check_dash_callback(app_url, app_session)
    assert call("GET", "/apps").json()["apps"][0]["state"]["label"] == "running"

    stats = call("GET", "/apps/alice/api-wave/stats?days=1")
    assert stats.status_code == 200
    assert stats.json()["deployments"] == 1 and stats.json()["cold_starts"] == 1
    assert stats.json()["running_seconds"] > 0 and stats.json()["month_cost"]["dollars"] >= 0

    # stop: the process group is gone
    with beside(served):
        dep = db.session.scalar(db.select(Deployment).where(Deployment.public_name == public_name))
        pgid = json.loads(dep.backend_ref)["pid"]
    assert group_alive(pgid)
    stopped = call("DELETE", "/apps/alice/api-wave/deployment")
    assert stopped.status_code == 200 and stopped.json()["stopped"] is True
    assert stopped.json()["deployment"]["status"] == "stopped"
    served.wait(lambda: not group_alive(pgid), 30, "the app's processes to exit")
    assert call("GET", "/apps/alice/api-wave/deployment").json()["stop_reason"] == "owner"

    # delete: gone from the API, its history kept
    assert call("DELETE", "/apps/alice/api-wave").status_code == 204
    missing = call("GET", "/apps/alice/api-wave")
    assert missing.status_code == 404 and missing.json() == {"error": "There is nothing here.", "status": 404}
    with beside(served):
        assert (
            db.session.scalar(db.select(Deployment).where(Deployment.public_name == public_name)) is not None
        )

    # the token, revoked from the command line, stops working at once
    jti = served.flask("tokens", "list", "alice").stdout.splitlines()[1].split()[0]
    served.flask("tokens", "revoke", jti)
    refused = call("GET", "/apps")
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
