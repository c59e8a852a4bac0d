"""Run the product as `make run` does (migrate, load demos, gunicorn) for the
tests that talk to it over real HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class LiveServer:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "LOCAL_PORT_MIN": "18100",
            "LOCAL_PORT_MAX": "18199",
            **env,
        }
        self.env.pop("DATABASE_URL", None)
        self.procs: list[subprocess.Popen[bytes]] = []
        for args in (["db", "upgrade"], ["demo", "load"]):
            self.flask(*args)

    @property
    def run_dir(self) -> Path:
        return self.tmp_path / "instance" / "deployments"

    def flask(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=REPO,
                              env={**self.env, **env}, check=True, capture_output=True,
                              text=True, timeout=120)

    def launch(self) -> subprocess.Popen[bytes]:
        with open(self.tmp_path / "gunicorn.log", "ab") as log:
            proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.procs.append(proc)

        def healthy() -> bool:
            try:
                return requests.get(f"{self.base}/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                if proc.poll() is not None:
                    pytest.fail("gunicorn exited; see gunicorn.log")
                return False

        wait_for(healthy, 60, "gunicorn to serve /healthz")
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)

    def status(self, path: str, session: requests.Session | None = None) -> dict[str, Any]:
        getter = session or requests
        return getter.get(f"{self.base}{path}viz/status",
                          headers={"Accept": "application/json"}, timeout=10).json()


def start_app(server: LiveServer, session: requests.Session, path: str) -> dict[str, Any]:
    """What the viz page does on load: get the page (and its CSRF token), POST start."""
    page = session.get(f"{server.base}{path}viz/")
    session.headers["X-CSRFToken"] = CSRF_META.search(page.text).group(1)  # type: ignore[union-attr]
    response = session.post(f"{server.base}{path}viz/start", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    return response.json()
