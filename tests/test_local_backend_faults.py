"""Faults of the local backend, with real processes and real sockets (no mocks):

* every port of the range is taken (by sockets this test holds, or by a real
  running app) -> create() refuses with "No free port between ...", and
  nothing is started or recorded;
* an app that answers HTTP 500 while starting -> status() says failed, with
  the tail of the app's log;
* the pid-reuse guard: a ref whose pid is alive but started at another time
  (the pid now belongs to someone else) is gone for status(), dropped by
  list(), and stop() leaves that process alone.

Waits are on conditions with deadlines; everything started is stopped in a
``finally``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.backends.base import AppSpec, BackendError, BackendStatus
from app.backends.local import LocalBackend
from tests.factories import EXAMPLES, make_spec
from tests.processes import Started, processes_mentioning

DEADLINE = 120.0  # generous: a loaded machine starts gunicorn slowly

pytestmark = pytest.mark.timeout(300)


def spec(name: str, source: str, framework: str = "dash", **kw: object) -> AppSpec:
    owner, title, public = name.split("-", 2)
    return make_spec(framework, owner=owner, title=title, public_name=public, source=source, **kw)


@pytest.fixture
def started() -> Iterator[Started]:
    s = Started()
    try:
        yield s
    finally:
        s.stop_all()


def proc_start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat: the process's start time in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def wait_state(backend: LocalBackend, ref: str, timeout: float = DEADLINE) -> BackendStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = backend.status(ref)
        if st.state != "starting" or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


def hold_ports(count: int) -> list[socket.socket]:
    """``count`` consecutive ports on 127.0.0.1, each bound and listening by a
    socket the caller holds (and must close)."""
    for _ in range(100):
        held: list[socket.socket] = []
        try:
            first = socket.socket()
            held.append(first)
            first.bind(("127.0.0.1", 0))
            base = first.getsockname()[1]
            if base + count > 65535:
                raise OSError("too high")
            for port in range(base + 1, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            for s in held:
                s.listen()
            return held
        except OSError:
            for s in held:
                s.close()
    raise RuntimeError(f"could not find {count} consecutive free ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------- port exhaustion
def test_no_free_port_when_sockets_hold_the_whole_range(tmp_path: Path, started: Started) -> None:
    run_dir = tmp_path / "run"
    held = hold_ports(2)
    try:
        low, high = (s.getsockname()[1] for s in held)
        backend = LocalBackend(EXAMPLES, run_dir, port_min=low, port_max=high)
        with pytest.raises(BackendError, match=f"^No free port between {low} and {high}"):
            started.create(backend, spec("zed-ports-default-p1", "dash-wave/app.py", callable="server"))
        # nothing started, nothing recorded
        assert not run_dir.exists() or list(run_dir.iterdir()) == []
        assert backend.list() == {}
        assert processes_mentioning(str(run_dir)) == []

        # the ports were the only reason: free one and the same create goes through on it
        freed = held.pop()
        freed.close()
        ref = started.create(backend, spec("zed-ports-default-p1", "dash-wave/app.py", callable="server"))
        assert json.loads(ref)["port"] == high
    finally:
        for s in held:
            s.close()


def test_no_free_port_when_a_running_app_holds_it(tmp_path: Path, started: Started) -> None:
    """A second Dormouse (another run directory, so it has no record of the
    first one's app) finds the app's port busy by binding it."""
    port = free_port()
    first = LocalBackend(EXAMPLES, tmp_path / "run-a", port_min=port, port_max=port)
    ref = started.create(first, spec("zed-held-default-p2", "dash-wave/app.py", callable="server"))
    assert json.loads(ref)["port"] == port
    assert wait_state(first, ref).state == "running"

    second_run = tmp_path / "run-b"
    second = LocalBackend(EXAMPLES, second_run, port_min=port, port_max=port)
    with pytest.raises(BackendError, match=f"^No free port between {port} and {port}"):
        started.create(second, spec("zed-other-default-p3", "dash-wave/app.py", callable="server"))
    assert not second_run.exists() or list(second_run.iterdir()) == []
    assert second.list() == {} and processes_mentioning(str(second_run)) == []
    # the first one's own bookkeeping refuses it too, without touching the app
    with pytest.raises(BackendError, match="No free port"):
        started.create(first, spec("zed-again-default-p4", "dash-wave/app.py", callable="server"))
    assert first.list() == {"zed-held-default-p2": ref}
    assert wait_state(first, ref).state == "running"


# ------------------------------------------------------------ HTTP 500 at start
BROKEN_APP = """\
import sys

print("broken-app: imported; every request will fail", flush=True)


def server(environ, start_response):
    print("broken-app: answering 500 to " + environ.get("PATH_INFO", "?"), file=sys.stderr, flush=True)
    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
    return [b"broken on purpose\\n"]
"""


def test_an_app_answering_500_while_starting_is_failed_with_its_log(tmp_path: Path, started: Started) -> None:
    apps = tmp_path / "apps"
    (apps / "broken").mkdir(parents=True)
    (apps / "broken" / "broken.py").write_text(BROKEN_APP)
    run_dir = tmp_path / "run"
    backend = LocalBackend(apps, run_dir)
    name = "zed-broken-default-h5"
    ref = started.create(backend, spec(name, "broken/broken.py", callable="server"))
    log_file = run_dir / f"{name}.log"

    def answers() -> int:  # the app logs every request before it answers 500
        return log_file.read_text(errors="replace").count("answering 500") if log_file.exists() else 0

    # Poll until status() leaves "starting". Should the 500 be missed, status()
    # would keep saying "starting" while the app answers probe after probe: stop
    # after a few answers rather than at the deadline (a probe that merely timed
    # out on a loaded machine is retried, as the lifecycle would).
    deadline = time.monotonic() + DEADLINE
    while True:
        st = backend.status(ref)
        if st.state != "starting" or answers() >= 5:
            break
        assert time.monotonic() < deadline, f"the app never answered: {st}"
        time.sleep(0.2)
    assert st.state == "failed", st
    assert "HTTP 500" in st.reason, st.reason
    assert "broken-app: imported; every request will fail" in st.reason  # the log's tail
    assert "dormouse watchdog:" not in st.reason
    assert wait_state(backend, ref).state == "failed"  # and it stays so


# ---------------------------------------------------------------- pid reuse
def test_a_reused_pid_is_gone_dropped_and_never_signalled(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    name = "zed-reuse-default-r6"
    # an unrelated process in its own session: what the kernel may hand our
    # old watchdog's pid to after it died
    stranger = subprocess.Popen(
        ["sleep", "600"], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        pid = stranger.pid
        wait_until(lambda: proc_state(pid) in ("S", "R"), 30, "the sleeper to run")
        start = proc_start_time(pid)

        def ref_with(start_time: int) -> str:
            ref = json.dumps(
                {
                    "v": 1,
                    "name": name,
                    "fw": "dash",
                    "pid": pid,
                    "start": start_time,
                    "port": free_port(),
                    "path": "/zed/reuse/default-r6/",
                },
                separators=(",", ":"),
            )
            (run_dir / f"{name}.json").write_text(ref)
            return ref

        backend = LocalBackend(EXAMPLES, run_dir)
        # control: with its true start time the process counts as ours
        ours = ref_with(start)
        assert backend.list() == {name: ours}
        assert backend.status(ours).state == "starting"  # alive, its port not answering

        # the same pid with another start time: a reused pid, not ours
        reused = ref_with(start + 1)
        st = backend.status(reused)
        assert st.state == "gone", st
        assert backend.list() == {}
        assert not (run_dir / f"{name}.json").exists()  # its record dropped
        (run_dir / f"{name}.json").write_text(reused)
        backend.stop(reused)
        assert stranger.poll() is None and proc_state(pid) in ("S", "R"), "stop() signalled a stranger"
        assert not (run_dir / f"{name}.json").exists()
        assert backend.status(reused).state == "gone"
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(timeout=30)
