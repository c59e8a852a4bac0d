"""The served product killed outright while an app is starting, then started
again on the same instance (database, run dir, Traefik's route files):

* the whole front door's process group (itself, Traefik, gunicorn's master
  and workers) gets SIGKILL while a deployment of a slow-starting app is
  ``starting`` (tests/fixture_apps/plain with ``START_DELAY``): nothing runs
  the shutdown code, so the run dir's record, the app's route file and the
  ``starting`` row are left as the crash left them;
* the app's watchdog sees the server gone and stops the app's whole process
  group;
* after the restart, the scheduler's first sweep (soon after start) marks the
  row failed and drops the record and the route file: no live row without a
  process, no process or route file without a live row
  (:func:`tests.live_instance.leaks`); the viewer is told it could not start;
* a new visit starts the app again, cleanly, to running.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.backends.local_groups import group_alive
from app.views.viz import NOT_STARTED
from tests.live_instance import PLAIN_SOURCE, apps_dir, leaks, rows
from tests.serving import LiveServer, start_app
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(240)
SLOW = "/demo/slow/"
START_DELAY = 3  # seconds the app sleeps before it serves: the window the server is killed in


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path, APPS_DIR=str(apps_dir(tmp_path)), SWEEP_INTERVAL="3600", START_TIMEOUT="120")
    try:
        live.flask("db", "upgrade")
        live.flask("users", "create", "demo", "--password-stdin", stdin="correct-horse\n")
        live.flask("apps", "publish", "--owner", "demo", "--title", "slow", "--framework", "dash",
                   "--source", PLAIN_SOURCE, "--env", f"START_DELAY={START_DELAY}")  # fmt: skip
        yield live
    finally:
        live.close()


def test_a_server_killed_mid_start_leaves_nothing_behind_after_a_restart(server: LiveServer) -> None:
    database = f"sqlite:///{server.tmp_path / 'instance' / 'dormouse.db'}"
    routes = server.tmp_path / "instance" / "traefik" / "routes"
    proc = server.launch()
    viewer = requests.Session()
    started = start_app(server, viewer, SLOW)
    assert started["status"] == "starting"
    name = f"demo-slow-{started['public_name']}"
    record, route = server.run_dir / f"{name}.json", routes / f"{name}.yml"
    assert record.exists() and route.exists()  # created before the start's answer
    pgid = json.loads(record.read_text())["pid"]
    assert group_alive(pgid)

    # the crash: every process of the front door at once, mid-start
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    (row,) = rows(database)
    assert row.status == "starting" and row.backend_ref  # nothing could record anything after
    wait_for(lambda: not group_alive(pgid), 30, "the app's watchdog to stop the app")
    assert record.exists() and route.exists()  # left as the crash left them
    assert leaks(rows(database), server.run_dir, routes) == [
        f"a starting row {name} whose app is not running"
    ]

    # the restart: its first sweep (soon after start) reconciles
    server.launch()
    server.wait(lambda: leaks(rows(database), server.run_dir, routes) == [], 60,
                "the restarted server's first sweep to clean up")  # fmt: skip
    assert not record.exists() and not route.exists()
    (row,) = rows(database)
    assert row.status == "failed"
    told = server.status(SLOW, viewer)
    assert told["status"] == "failed" and told["reason"] == NOT_STARTED  # a viewer is no owner

    # a new visit starts it again, cleanly
    again = start_app(server, requests.Session(), SLOW)
    assert again["status"] == "starting" and again["public_name"] != started["public_name"]
    running = server.wait(lambda: (s := server.status(SLOW))["status"] != "starting" and s, 90,
                          "the new deployment to finish starting")  # fmt: skip
    assert running["status"] == "running", running
    assert [r.status for r in rows(database)] == ["failed", "running"]
    assert leaks(rows(database), server.run_dir, routes) == []
