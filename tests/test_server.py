"""The product as `make run` serves it: the front door (Traefik on one port,
gunicorn behind it), the scheduler, real apps.

Starts the server with tiny idle limits, visits the demos over real HTTP
(session cookie and CSRF token as a browser has them), opens an app through
Traefik with its entry token, lets the in-process scheduler spin one down,
keeps another alive with pings, kills the server's main process outright and
checks that neither Traefik nor gunicorn nor any app outlives it, then
restarts it and sees the lost deployment marked.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime
from pathlib import Path

import pytest
import requests

from app.backends.local_groups import group_alive
from app.backends.local_watchdog import proc_stat
from tests.appchecks import enter
from tests.serving import JSON, REQUEST_TIMEOUT, LiveServer, serve, start_app
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(240)
LOAD_LIMIT, PING_LIMIT, SWEEP_EVERY = 4, 5, 1  # seconds: IDLE_LOAD_TIMEOUT, IDLE_PING_TIMEOUT, SWEEP_INTERVAL


@pytest.fixture
def server(tmp_path):
    with serve(
        tmp_path,
        launch=False,
        SWEEP_INTERVAL=str(SWEEP_EVERY),
        IDLE_LOAD_TIMEOUT=str(LOAD_LIMIT),
        IDLE_PING_TIMEOUT=str(PING_LIMIT),
        PING_INTERVAL="1",
    ) as live:
        yield live


def only_pgid(server: LiveServer) -> int:
    (record,) = server.run_dir.glob("*.json")
    return json.loads(record.read_text())["pid"]


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (st := proc_stat(int(entry.name))) and st[0] not in "ZX":
            try:
                ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] not in "ZX"


def when(answer: dict, *keys: str) -> datetime:
    """The latest of the status answer's timestamps ``keys`` that are set."""
    return max(datetime.fromisoformat(answer[key]) for key in keys if answer[key])


def test_served_product_spins_apps_up_and_down_and_leaves_no_orphans(server):
    proc = server.launch()
    base = server.base
    browser = requests.Session()
    gallery = browser.get(f"{base}/", timeout=REQUEST_TIMEOUT).text
    assert "dash-wave" in gallery and "bokeh-sliders" in gallery
    assert "Disallow: /*/*/viz/" in browser.get(f"{base}/robots.txt", timeout=REQUEST_TIMEOUT).text

    # a visit starts the Dash demo; it becomes ready and serves under its prefix
    start_app(server, browser, "/demo/dash-wave/")
    running = server.wait(
        lambda: (s := server.status("/demo/dash-wave/"))["status"] == "running" and s, 90, "dash-wave to run"
    )
    assert running["url"].startswith(f"{server.viz}/demo/dash-wave/")  # the apps' host, one port
    # through Traefik only with a token: none is 401, and the app never sees the request
    assert requests.get(running["url"], timeout=REQUEST_TIMEOUT).status_code == 401
    app_url, app_session = enter(server.frame_url("/demo/dash-wave/", browser))
    assert app_session.get(f"{app_url}_dash-layout", timeout=REQUEST_TIMEOUT).status_code == 200
    first_pgid = only_pgid(server)

    # nobody pings: the in-process scheduler stops it within a few sweeps
    stopped = server.wait(
        lambda: (s := server.status("/demo/dash-wave/"))["status"] == "stopped" and s,
        60,
        "the scheduler to stop the idle app",
    )
    assert stopped["stop_reason"] == "idle"
    wait_for(lambda: not group_alive(first_pgid), 15, "the app process to exit")

    # pings keep it alive past the idle limits: ping as a focused page does,
    # until the server's own record shows the latest ping more than both limits
    # (and two sweeps) after the latest page load, the app running throughout
    start_app(server, browser, "/demo/bokeh-sliders/")
    server.wait(
        lambda: server.status("/demo/bokeh-sliders/")["status"] == "running", 90, "bokeh-sliders to run"
    )
    public_name = server.status("/demo/bokeh-sliders/")["public_name"]

    def pinged_past_the_limits() -> bool:
        response = browser.post(
            f"{base}/demo/bokeh-sliders/viz/ping",
            data={"deployment": public_name},
            headers=JSON,
            timeout=REQUEST_TIMEOUT,
        )
        response.raise_for_status()
        answer = response.json()
        if answer["status"] != "running":
            pytest.fail(f"stopped although pinged: {answer}")
        if answer["latest_ping_at"] is None:
            return False
        loaded = when(answer, "latest_load_at", "ready_at", "created_at")  # as the idle rule reads it
        pinged_for = (when(answer, "latest_ping_at") - loaded).total_seconds()
        return pinged_for > LOAD_LIMIT + PING_LIMIT + 2 * SWEEP_EVERY

    wait_for(
        pinged_past_the_limits,
        60,
        "pings to keep the app past the idle limits",
        interval=1.0,
        abort=server.check_running,
    )
    second_pgid = only_pgid(server)
    assert group_alive(second_pgid)

    # the server's main process dies hard: Traefik, gunicorn and the apps follow
    helpers = children(proc.pid)
    assert len(helpers) == 2, helpers  # Traefik and gunicorn's master
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in helpers), 30, "Traefik and gunicorn to exit")
    wait_for(lambda: not group_alive(second_pgid), 15, "the app to exit after the server died")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base}/healthz", timeout=5)  # nothing listens on the port

    # after a restart, the deployment whose process is gone is marked stopped
    server.launch()
    gone = server.wait(
        lambda: (s := server.status("/demo/bokeh-sliders/"))["status"] == "stopped" and s,
        30,
        "the restarted server to mark the lost deployment stopped",
    )
    assert gone["stop_reason"] == "gone"
