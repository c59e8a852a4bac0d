"""The front door's own duties (app/front_door.py), with the real Traefik:
it restarts a Traefik that died, /healthz reports a Traefik that does not
answer, and with TLS configured the static configuration is accepted by
Traefik (HTTPS on its port with Traefik's default certificate, since no ACME
server is reachable here; plain HTTP redirected to HTTPS).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import urllib3

from app.front_door import FrontDoor, without_capabilities
from app.front_door_settings import FrontDoorSettings
from tests.factories import build_app, make_settings
from tests.processes import LAUNCHED_GROUPS, stop_group
from tests.serving import REPO, free_port, serve
from tests.test_server import alive, children
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(240)


def health(base: str, **kw: object) -> dict:
    return requests.get(f"{base}/healthz", timeout=5, **kw).json()  # type: ignore[arg-type]


def traefik_pid(front_door_pid: int) -> int:
    for pid in children(front_door_pid):
        if Path(f"/proc/{pid}/exe").resolve().name == "traefik":
            return pid
    raise AssertionError("no traefik child")


def test_a_dead_traefik_is_reported_and_started_again(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        proc = server.procs[-1]
        first = traefik_pid(proc.pid)
        os.kill(first, signal.SIGKILL)
        # Traefik is the one way in: while it is down nothing answers on the port
        wait_for(lambda: not alive(first), 10, "traefik to die")
        again = server.wait(
            lambda: (h := health(server.base)).get("traefik") == "ok" and h, 60, "traefik to be back"
        )
        assert again["status"] == "ok" and traefik_pid(proc.pid) != first
        assert "traefik exited" in server.log_tail(200) and "starting it again" in server.log_tail(200)


def test_healthz_says_when_traefik_does_not_answer(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    app = build_app(make_settings(tmp_path, DORMOUSE_TRAEFIK_INTERNAL=f"http://127.0.0.1:{closed}"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "ok", "traefik": "unreachable"}
    plain = build_app(make_settings(tmp_path / "k"))  # no front door (Kubernetes): not asked
    assert plain.test_client().get("/healthz").get_json() == {"status": "ok", "database": "ok"}


class _Exited:
    """A child that has exited with ``code`` (what Popen.poll() answers)."""

    def __init__(self, code: int | None) -> None:
        self.code, self.pid = code, 0

    def poll(self) -> int | None:
        return self.code


def test_restarts_back_off_and_dormouse_exiting_ends_the_front_door(tmp_path: Path, monkeypatch) -> None:
    settings = make_settings(tmp_path)
    door = FrontDoor(settings, FrontDoorSettings.from_env({}))
    started: list[int] = []

    def start_traefik() -> None:
        started.append(1)
        door.traefik = _Exited(None)  # type: ignore[assignment]

    monkeypatch.setattr(door, "start_traefik", start_traefik)
    door.dormouse = _Exited(None)  # type: ignore[assignment]
    door.traefik = _Exited(1)  # type: ignore[assignment]
    assert door.step(now=100.0) is None and door.traefik is None  # dead: noticed, restart due at 101
    assert door.step(now=100.5) is None and not started
    assert door.step(now=101.0) is None and len(started) == 1 and door.restarts == 1
    door.traefik = _Exited(1)  # type: ignore[assignment]  # died again at once: wait twice as long
    door.step(now=101.1)
    door.step(now=102.9)
    assert len(started) == 1
    door.step(now=103.1)
    assert len(started) == 2
    door.dormouse = _Exited(3)  # type: ignore[assignment]
    assert door.step(now=104.0) == 3  # Dormouse gone: the front door stops, with its code


@pytest.fixture
def tls_door(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    http_port, https_port = free_port(), free_port()
    env = {
        **os.environ,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "PORT": str(http_port),
        "TLS_PORT": str(https_port),
        "ACME_EMAIL": "ops@example.org",
        # no ACME server is reachable here: Traefik serves its default certificate
        "ACME_CA_SERVER": f"https://127.0.0.1:{free_port()}/directory",
        "TRUSTED_HOSTS": "dormouse.localhost 127.0.0.1",
    }
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    log = tmp_path / "server.log"
    proc = None
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "app.front_door"], cwd=REPO, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        LAUNCHED_GROUPS.append((proc.pid, 0, ""))
        yield f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", proc
    finally:
        if proc is not None:
            stop_group(proc.pid, 30)
            proc.wait(10)


def test_with_tls_traefik_serves_https_and_redirects_http(tls_door) -> None:
    plain, secure, proc = tls_door
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    headers = {"Host": "dormouse.localhost"}
    answer = wait_for(
        lambda: health(secure, headers=headers, verify=False),
        90,
        "Dormouse over HTTPS",
        abort=lambda: proc.poll() is not None and pytest.fail("the front door exited"),
    )
    assert answer == {"status": "ok", "database": "ok", "traefik": "ok"}
    # Traefik's default certificate (Let's Encrypt's is issued only on a reachable domain)
    port = int(secure.rsplit(":", 1)[1])
    cert = ssl.get_server_certificate(("127.0.0.1", port))
    assert "BEGIN CERTIFICATE" in cert
    # plain HTTP is redirected to HTTPS (the ACME HTTP-01 challenge is answered there too)
    moved = requests.get(f"{plain}/demo/", headers=headers, timeout=5, allow_redirects=False)
    assert moved.status_code in (301, 308) and moved.headers["Location"] == "https://dormouse.localhost/demo/"
    # Dormouse sees the request as HTTPS: its page links and cookies follow
    page = requests.get(f"{secure}/login", headers=headers, verify=False, timeout=10)
    assert page.status_code == 200
    # the apps' host is routed over HTTPS too (no deployment yet: Dormouse's plain 404)
    viz = requests.get(
        f"{secure}/x/y/z/", headers={"Host": "viz.dormouse.localhost"}, verify=False, timeout=10
    )
    assert viz.status_code == 404 and viz.headers["Content-Type"].startswith("text/plain")


def test_traefik_gets_none_of_dormouses_capabilities() -> None:
    argv = ["/venv/bin/traefik", "--configFile=x"]
    plain = "Name:\tpython\nCapInh:\t0000000000000000\nCapAmb:\t0000000000000000\n"
    assert without_capabilities(argv, plain) == argv
    image = "Name:\tpython\nCapInh:\t00000000000000e0\nCapAmb:\t00000000000000e0\n"  # the container
    dropped = without_capabilities(argv, image)
    assert dropped[0].endswith("setpriv") and dropped[1:4] == ["--inh-caps=-all", "--ambient-caps=-all", "--"]
    assert dropped[4:] == argv


ORPHANS = r"""
import ctypes, json, os, subprocess, sys, time
from app.front_door import reap_orphans

def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"

def until(pid, wanted):
    deadline = time.monotonic() + 30
    while state(pid) != wanted and time.monotonic() < deadline:
        time.sleep(0.02)
    return state(pid)

ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, as PID 1 is
running = subprocess.Popen(["sleep", "60"])
orphan = int(subprocess.run(["sh", "-c", "sleep 0.2 & echo $!"], capture_output=True, text=True).stdout)
seen = {"orphan_before": until(orphan, "Z")}
seen["reaped"] = reap_orphans({running.pid}) == [orphan]
seen["orphan_after"] = state(orphan)
ended = subprocess.Popen(["sh", "-c", "exit 3"])
until(ended.pid, "Z")
seen["left_alone"] = reap_orphans({running.pid, ended.pid}) == []
seen["own_code"] = ended.wait(10)
running.kill()
seen["running_code"] = running.wait(10)
print(json.dumps(seen))
"""


def test_orphans_handed_to_the_front_door_are_reaped_and_its_own_children_left_alone() -> None:
    """In the container the front door is PID 1: an app whose watchdog died is
    handed to it and must not stay a zombie; its own children's exit codes
    stay theirs to collect. Run in a child process made a subreaper (as PID 1
    is), not in pytest itself."""
    argv = [sys.executable, "-c", ORPHANS]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {
        "orphan_before": "Z",  # handed over, exited, not yet reaped
        "reaped": True,
        "orphan_after": "gone",
        "left_alone": True,
        "own_code": 3,  # the own child's status was not taken
        "running_code": -9,
    }, seen
