"""What every benchmark here shares: servers started in their own process
groups and always stopped, and rounds of a baseline and a candidate
interleaved in one run (the load itself is :mod:`bench.load`).

A benchmark's figure is a ratio against the baseline of the same run: absolute
requests per second depend on the machine and on what else it is doing, the
ratio much less (both sides see the same noise, round by round).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.backends.local_groups import group_alive
from bench.errors import BenchError
from bench.load import Load, Result

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # run with the project's venv: .venv/bin/python
STOP_GRACE = 25.0  # seconds a server gets after SIGTERM (gunicorn's graceful_timeout is 20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C does, so every ``finally`` stops what it started."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(name: str, measure: Callable[[], int | None]) -> int:
    """A benchmark's exit status: ``measure()``'s (None is 0); 1, saying why,
    when it could not measure (:class:`BenchError`); 130 on Ctrl-C."""
    try:
        return measure() or 0
    except BenchError as exc:
        print(f"\n{name}: could not measure: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


@contextmanager
def running(*servers: Server) -> Iterator[None]:
    """Start ``servers`` in turn; stop every one on the way out, whatever happened."""
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in servers:
            server.stop()


@contextmanager
def migrated_app(env: dict[str, str]) -> Iterator:
    """Dormouse built from ``env`` (its settings as the served product reads
    them), its database migrated by the real migrations (alembic's lines
    shown only if that fails), inside its app context; the session and the
    engine are released afterwards."""
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Settings
    from app.extensions import db

    flask_app = create_app(settings=Settings.from_env(env))
    with flask_app.app_context():
        migration_log = io.StringIO()
        try:
            with contextlib.redirect_stderr(migration_log):
                upgrade()
        except BaseException:
            print(migration_log.getvalue(), file=sys.stderr)
            raise
        try:
            yield flask_app
        finally:
            db.session.remove()
            db.engine.dispose()


# --- servers -------------------------------------------------------------------


@dataclass
class Server:
    """One gunicorn in its own process group (its own session: Ctrl-C in the
    terminal reaches only this script, which then stops it)."""

    name: str
    args: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check_running(self) -> None:
        if self.proc is not None and (code := self.proc.poll()) is not None:
            raise BenchError(f"{self.name} exited (code {code}); the end of its log:\n{self.log_tail()}")

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        """Until ``path`` answers 200 (any answer, while the server lives, is retried)."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            self.check_running()
            try:
                status, _ = request(self.base + path)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise BenchError(f"{self.name} did not answer 200 on {path} in {timeout:.0f} s ({last})")

    def stop(self) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after the grace."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and group_alive(pgid):
                self.proc.poll()  # reap the leader, or it stays a zombie member
                time.sleep(0.1)
            if not group_alive(pgid):
                break
        self.proc.poll()


def gunicorn(
    name: str, target: str, conf: str, env: dict[str, str], workdir: Path, port: int | None = None
) -> Server:
    """A gunicorn serving ``target`` (``module:callable``) with config file
    ``conf`` (relative to the repo), on a free loopback port; not started."""
    port = port or free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    args = [str(BIN / "gunicorn"), "--config", conf, target]
    return Server(name, args, env, port, workdir / f"{name}.log")


def dormouse_and_bare(env: dict[str, str], workdir: Path) -> tuple[Server, Server]:
    """Dormouse (``wsgi:app``, production's gunicorn config) and the bare Flask
    baseline (``bench/bare_app.py``, the same config but the app), both from
    ``env``; not started."""
    return (
        gunicorn("dormouse", "wsgi:app", "gunicorn.conf.py", env, workdir),
        gunicorn("bare", "bench.bare_app:app", "bench/gunicorn_bare.conf.py", env, workdir),
    )


def request(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- rounds --------------------------------------------------------------------


@dataclass
class Side:
    """One side of a comparison: what to load and how to tell its answers are right."""

    label: str
    url: str
    headers: dict[str, str]
    server: Server


def interleaved(
    run: Callable[[str, dict[str, str], Load], Result],
    baseline: Side,
    candidate: Side,
    load: Load,
    rounds: int,
    warmup: float,
    report: Callable[[int, Result, Result], None],
) -> list[tuple[Result, Result]]:
    """Warm both up, then ``rounds`` × (baseline, candidate). Any answer
    other than 2xx/3xx, or a server that died, stops the benchmark: a figure
    of refusals or errors measures nothing."""
    if warmup > 0:
        for side in (baseline, candidate):
            checked(side, run(side.url, side.headers, Load(warmup, load.connections, load.client_threads)))
    pairs = []
    for i in range(1, rounds + 1):
        base = checked(baseline, run(baseline.url, baseline.headers, load))
        cand = checked(candidate, run(candidate.url, candidate.headers, load))
        pairs.append((base, cand))
        report(i, base, cand)
    return pairs


def checked(side: Side, result: Result) -> Result:
    side.server.check_running()
    if result.bad_status:
        raise BenchError(
            f"{side.label}: {result.bad_status} of {result.requests} answers were not 2xx/3xx "
            f"{result.statuses or ''}; the end of its log:\n{side.server.log_tail(10)}"
        )
    if result.requests == 0:
        raise BenchError(f"{side.label}: no request completed ({result.socket_errors} socket errors)")
    return result


def median(values: list[float]) -> float:
    return statistics.median(values)
