"""Run the product as `make run` does (migrate, load demos, then the front
door: Traefik in front of gunicorn) for the tests that talk to it over real
HTTP, and make sure nothing it started outlives the test.

    @pytest.fixture
    def server(tmp_path):
        with serve(tmp_path, PING_INTERVAL="1") as live:  # migrated, loaded, serving
            yield live                                     # stopped, whatever happened

The process-group helpers it stops things with, and the session's check for
leftover processes, are in tests/processes.py.
"""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from app.backends.local_watchdog import proc_stat
from tests.envs_cache import env_settings_vars
from tests.factories import CSRF_META
from tests.processes import LAUNCHED_GROUPS, group_is, recorded_groups, stop_group
from tests.waiting import wait_for

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JSON = {"Accept": "application/json"}
FRAME_SRC = re.compile(r'<iframe class="viz-frame" src="([^"]+)"')
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROUTINE = re.compile(r'"(GET|HEAD) /(_auth/|static/)')  # the gate's and static files' access lines
REQUEST_TIMEOUT = 30  # seconds, for every request the helpers make
STOP_GRACE = 30  # seconds a server gets to stop on SIGTERM (gunicorn's graceful_timeout is 20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the served product ------------------------------------------------------


MADE: list[LiveServer] = []  # this test's servers: a failing test's report shows their logs (conftest)


class LiveServer:
    """Dormouse behind its front door (``python -m app.front_door``: Traefik on
    one port, gunicorn on loopback), its instance (SQLite, run dir, Traefik's
    files) in ``tmp_path``. Dormouse's pages are at :attr:`base`; apps at
    :attr:`viz` (``viz.dormouse.localhost``, which resolves to loopback).

    Construction has no side effects; :meth:`prepare` migrates and loads the
    demos, :meth:`launch` starts the front door, :meth:`close` stops every
    process this server started (Traefik, gunicorn and any app left behind)."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.site = f"http://dormouse.localhost:{self.port}"  # what a browser on this machine opens
        self.viz = f"http://viz.dormouse.localhost:{self.port}"
        self.log_path = tmp_path / "server.log"
        self.env = {
            **os.environ,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "LOCAL_PORT_MIN": "18100",
            "LOCAL_PORT_MAX": "18199",
            **env_settings_vars(),  # the default environments, shared (tests/envs_cache.py)
            "ENV_KEEP_UNUSED": str(10 * 365 * 86400),
            **env,
        }
        self.env.pop("DATABASE_URL", None)
        self.procs: list[subprocess.Popen[bytes]] = []
        MADE.append(self)

    @property
    def run_dir(self) -> Path:
        return self.tmp_path / "instance" / "deployments"

    def prepare(self) -> None:
        for args in (["db", "upgrade"], ["demo", "load"]):
            self.flask(*args)

    def flask(self, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [str(BIN / "flask"), "--app", "wsgi", *args],
                cwd=REPO,
                env={**self.env, **env},
                check=True,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            raise AssertionError(
                f"flask {' '.join(args)} failed ({exc.returncode}):\n{exc.stdout}\n{exc.stderr}"
            ) from exc

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the front door and wait until /healthz says Dormouse and
        Traefik both answer."""
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.front_door"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        st = proc_stat(proc.pid)
        LAUNCHED_GROUPS.append((proc.pid, st[2] if st else 0, ""))

        def healthy() -> bool:
            response = requests.get(f"{self.base}/healthz", timeout=5)
            response.raise_for_status()
            return response.json().get("traefik") == "ok"

        self.wait(healthy, 90, "the front door to serve /healthz")
        return proc

    def log_tail(self, lines: int = 40, *, notable: bool = False) -> str:
        """The log's last ``lines``; ``notable``: without the gate's and the
        static files' access lines, and without colour codes."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        kept = text.splitlines()
        if notable:
            kept = [ANSI.sub("", line) for line in kept if not ROUTINE.search(line)]
        return "\n".join(kept[-lines:])

    def check_running(self) -> None:
        """Fail the test at once if the server launched last has exited."""
        if self.procs and (code := self.procs[-1].poll()) is not None:
            pytest.fail(
                f"the server exited (code {code}); the end of its log:\n{self.log_tail()}", pytrace=False
            )

    def wait(self, predicate: Callable[[], T], timeout: float, what: str) -> T:
        """:func:`wait_for`, failing at once if the server dies meanwhile."""
        return wait_for(predicate, timeout, what, abort=self.check_running)

    def close(self) -> None:
        """Stop the front door (TERM, then KILL, its whole process group:
        Traefik and gunicorn too) and every app process group the server left
        in its run dir."""
        failures = []
        for proc in self.procs:
            try:
                stop_group(proc.pid, STOP_GRACE)
            except AssertionError as exc:
                failures.append(str(exc))
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                failures.append(f"the server {proc.pid} did not exit")
        for pgid, start, _ in recorded_groups(self.run_dir):
            if group_is(pgid, start):
                try:
                    stop_group(pgid, grace=10)
                except AssertionError as exc:
                    failures.append(str(exc))
        assert not failures, failures

    def frame_url_or_none(self, path: str, session: requests.Session | None = None) -> str | None:
        """The iframe's URL (with its one-time entry token) in the status
        partial the viz page swaps in, if it shows one."""
        response = (session or requests).get(
            f"{self.base}{path}viz/status", headers={"HX-Request": "true"}, timeout=REQUEST_TIMEOUT
        )
        found = FRAME_SRC.search(response.text)
        return html.unescape(found.group(1)) if found else None

    def frame_url(self, path: str, session: requests.Session | None = None) -> str:
        url = self.frame_url_or_none(path, session)
        assert url, f"no iframe in the status partial of {path}"
        return url

    def status(self, path: str, session: requests.Session | None = None) -> dict[str, Any]:
        response = (session or requests).get(
            f"{self.base}{path}viz/status", headers=JSON, timeout=REQUEST_TIMEOUT
        )
        response.raise_for_status()
        return response.json()


@contextmanager
def serve(tmp_path: Path, *, launch: bool = True, **env: str) -> Iterator[LiveServer]:
    """A prepared (and, with ``launch``, serving) LiveServer, closed on exit
    however the set-up or the test went."""
    live = LiveServer(tmp_path, **env)
    try:
        live.prepare()
        if launch:
            live.launch()
        yield live
    finally:
        live.close()


def start_app(server: LiveServer, session: requests.Session, path: str) -> dict[str, Any]:
    """What the viz page does on load: get the page (and its CSRF token), POST start."""
    page = session.get(f"{server.base}{path}viz/", timeout=REQUEST_TIMEOUT)
    page.raise_for_status()
    token = CSRF_META.search(page.text)
    assert token, f"no CSRF token on {path}viz/"
    session.headers["X-CSRFToken"] = token.group(1)
    response = session.post(f"{server.base}{path}viz/start", headers=JSON, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()
