"""The product as `make run` serves it: gunicorn, the scheduler, real apps.

Starts gunicorn with tiny idle limits, visits the demos over real HTTP (session
cookie and CSRF token as a browser has them), lets the in-process scheduler
spin one down, keeps another alive with pings, kills the server and checks no
app outlives it, then restarts it and sees the lost deployment marked.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import requests

from app.backends.local import group_alive
from tests.serving import LiveServer, start_app, wait_for

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def server(tmp_path):
    live = LiveServer(tmp_path, SWEEP_INTERVAL="1", IDLE_LOAD_TIMEOUT="4", IDLE_PING_TIMEOUT="3",
                      PING_INTERVAL="1")
    try:
        yield live
    finally:
        live.close()


def only_pgid(server: LiveServer) -> int:
    (record,) = server.run_dir.glob("*.json")
    return json.loads(record.read_text())["pid"]


def test_served_product_spins_apps_up_and_down_and_leaves_no_orphans(server):
    proc = server.launch()
    base = server.base
    browser = requests.Session()
    gallery = browser.get(f"{base}/").text
    assert "dash-wave" in gallery and "bokeh-sliders" in gallery
    assert "Disallow: /*/*/viz/" in browser.get(f"{base}/robots.txt").text

    # a visit starts the Dash demo; it becomes ready and serves under its prefix
    start_app(server, browser, "/demo/dash-wave/")
    running = wait_for(lambda: (s := server.status("/demo/dash-wave/"))["status"] == "running" and s,
                       90, "dash-wave to run")
    assert requests.get(running["url"], timeout=5).status_code == 200
    first_pgid = only_pgid(server)

    # nobody pings: the in-process scheduler stops it within a few sweeps
    stopped = wait_for(lambda: (s := server.status("/demo/dash-wave/"))["status"] == "stopped" and s,
                       60, "the scheduler to stop the idle app")
    assert stopped["stop_reason"] == "idle"
    wait_for(lambda: not group_alive(first_pgid), 15, "the app process to exit")

    # pings keep it alive past the idle limits
    start_app(server, browser, "/demo/bokeh-sliders/")
    wait_for(lambda: server.status("/demo/bokeh-sliders/")["status"] == "running", 90,
             "bokeh-sliders to run")
    public_name = server.status("/demo/bokeh-sliders/")["public_name"]
    for _ in range(8):  # 8 s: past IDLE_LOAD_TIMEOUT and IDLE_PING_TIMEOUT
        answer = browser.post(f"{base}/demo/bokeh-sliders/viz/ping", data={"deployment": public_name},
                              headers={"Accept": "application/json"}).json()
        assert answer["status"] == "running"
        time.sleep(1)
    second_pgid = only_pgid(server)
    assert group_alive(second_pgid)

    # the server dies hard: its apps follow
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_for(lambda: not group_alive(second_pgid), 15, "the app to exit after the server died")

    # after a restart, the deployment whose process is gone is marked stopped
    server.launch()
    gone = wait_for(lambda: (s := server.status("/demo/bokeh-sliders/"))["status"] == "stopped" and s,
                    30, "the restarted server to mark the lost deployment stopped")
    assert gone["stop_reason"] == "gone"
