"""The product as `make run` serves it: gunicorn, the scheduler, real apps.

Starts `gunicorn -c gunicorn.conf.py wsgi:app` with tiny idle limits, visits a
demo over real HTTP (session cookie and CSRF token as a browser has them),
lets the in-process scheduler spin it down, then kills the server and checks
no app process outlives it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.backends.local import group_alive

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "SWEEP_INTERVAL": "1",
        "IDLE_LOAD_TIMEOUT": "4",
        "IDLE_PING_TIMEOUT": "2",
        "PING_INTERVAL": "1",
        "LOCAL_PORT_MIN": "18100",
        "LOCAL_PORT_MAX": "18199",
    }
    env.pop("DATABASE_URL", None)
    for args in (["db", "upgrade"], ["demo", "load"]):
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=REPO, env=env,
                       check=True, capture_output=True, timeout=120)
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []

    def launch() -> subprocess.Popen:
        with open(tmp_path / "gunicorn.log", "ab") as log:
            proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)

        def healthy():
            try:
                return requests.get(f"{base}/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return proc.poll() is not None and pytest.fail("gunicorn exited")

        wait_for(healthy, 60, "gunicorn to serve /healthz")
        return proc

    try:
        yield base, launch, tmp_path
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)


def start(session: requests.Session, base: str, path: str) -> dict:
    page = session.get(f"{base}{path}viz/")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    session.headers["X-CSRFToken"] = token
    response = session.post(f"{base}{path}viz/start", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    return response.json()


def status(session: requests.Session, base: str, path: str) -> dict:
    return session.get(f"{base}{path}viz/status", headers={"Accept": "application/json"}).json()


def test_served_product_spins_apps_up_and_down_and_leaves_no_orphans(server):
    base, launch, tmp_path = server
    proc = launch()
    browser = requests.Session()
    gallery = browser.get(f"{base}/").text
    assert "dash-wave" in gallery and "bokeh-sliders" in gallery
    assert "Disallow: /*/*/viz/" in browser.get(f"{base}/robots.txt").text

    # a visit starts the Dash demo; it becomes ready and serves under its prefix
    start(browser, base, "/demo/dash-wave/")
    running = wait_for(lambda: (s := status(browser, base, "/demo/dash-wave/"))["status"] == "running" and s,
                       90, "dash-wave to run")
    assert requests.get(running["url"], timeout=5).status_code == 200
    run_dir = tmp_path / "instance" / "deployments"
    first_pgid = json.loads(next(run_dir.glob("*.json")).read_text())["pid"]

    # nobody pings: the in-process scheduler stops it within a few sweeps
    stopped = wait_for(lambda: (s := status(browser, base, "/demo/dash-wave/"))["status"] == "stopped" and s,
                       60, "the scheduler to stop the idle app")
    assert stopped["stop_reason"] == "idle"
    wait_for(lambda: not group_alive(first_pgid), 15, "the app process to exit")

    # pings keep it alive past the idle limits
    start(browser, base, "/demo/bokeh-sliders/")
    wait_for(lambda: status(browser, base, "/demo/bokeh-sliders/")["status"] == "running", 90,
             "bokeh-sliders to run")
    public_name = status(browser, base, "/demo/bokeh-sliders/")["public_name"]
    for _ in range(8):  # 8 s: past IDLE_LOAD_TIMEOUT and IDLE_PING_TIMEOUT
        answer = browser.post(f"{base}/demo/bokeh-sliders/viz/ping", data={"deployment": public_name},
                              headers={"Accept": "application/json"}).json()
        assert answer["status"] == "running"
        time.sleep(1)
    second_pgid = json.loads(next(run_dir.glob("*.json")).read_text())["pid"]
    assert group_alive(second_pgid)

    # the server dies hard: its apps follow
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    wait_for(lambda: not group_alive(second_pgid), 15, "the app to exit after the server died")

    # after a restart, the deployment whose process is gone is marked stopped
    launch()
    gone = wait_for(lambda: (s := status(browser, base, "/demo/bokeh-sliders/"))["status"] == "stopped" and s,
                    30, "the restarted server to mark the lost deployment stopped")
    assert gone["stop_reason"] == "gone"
