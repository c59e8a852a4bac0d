"""Local process backend: runs each deployment as a process group on this host.

Every deployment is a small process tree in its own process group, listening
on a loopback port only::

    local_watchdog.py  (group leader; its pid is the group id)
      `- gunicorn --bind 127.0.0.1:PORT ... module:callable   (Dash)
         `- gunicorn worker
      or
      `- bokeh serve <app> --prefix PREFIX --port PORT ... (Bokeh)

The watchdog (:mod:`local_watchdog`, run by file path) kills the group when
the Dormouse server (``watch_pid``) disappears, and records the app's exit
code in ``run_dir/<deployment_name>.exit`` when the app dies by itself. The
app's output goes to ``run_dir/<deployment_name>.log``; the ref is also kept in
``run_dir/<deployment_name>.json`` so :meth:`LocalBackend.list` finds groups
started by an earlier Dormouse process.

Browsers reach an app only through Traefik (see :mod:`app.front_door`): for
every deployment this backend writes ``routes_dir/<deployment_name>.yml``
(:mod:`app.backends.local_routes`), a file-provider router on
``Host(VIZ_HOST) && PathPrefix(prefix)`` to the app's loopback port behind
Dormouse's forwardAuth check, and removes it on stop.

How each framework is launched and where its app answers is asked of its
entry in :mod:`app.backends.frameworks`, through
:mod:`app.backends.local_commands`.

The ref is a short JSON object: ``{"v", "name", "fw", "pid", "start", "port",
"path"}`` - the watchdog's pid (= the process group id), its start time in
clock ticks from ``/proc/<pid>/stat`` (guards against pid reuse), the port and
the app's URL path.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from app.backends import frameworks, local_logs
from app.backends.base import AppSpec, BackendError, BackendStatus
from app.backends.local_commands import bind_literal, child_env, launch, locate_source, run_as_prefix
from app.backends.local_groups import group_alive, stop_group
from app.backends.local_routes import LocalRoutes
from app.backends.local_watchdog import proc_stat
from app.slugs import is_file_name, is_hostname, is_prefix

log = logging.getLogger(__name__)

WATCHDOG = Path(__file__).resolve().with_name("local_watchdog.py")
LOG_TAIL_LINES = 15
LOG_TAIL_CHARS = 1500
PORT_HOLD = 60.0  # seconds a handed-out port is not offered again in-process
ROUTE_PRUNE_GRACE = 60.0  # seconds a route without a record is left alone (a create in progress)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to the same host:port (the probe is no open fetcher)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_PROBE = urllib.request.build_opener(urllib.request.ProxyHandler({}), _SameOriginRedirects())


def _env_pid(var: str) -> int | None:
    value = os.environ.get(var, "")
    return int(value) if value.isdigit() and int(value) > 1 else None


class LocalBackend:
    """Run the apps in ``apps_dir`` (any registered framework) as local process groups."""

    name = "local"

    def __init__(
        self,
        apps_dir: Path,
        run_dir: Path,
        bind_host: str = "127.0.0.1",
        viz_origin: str = "http://viz.dormouse.localhost:8000",
        routes_dir: Path | None = None,
        traefik_url: str = "",
        port_min: int = 8100,
        port_max: int = 8299,
        watch_pid: int | None = None,
        stop_grace: float = 5.0,
        python: str = sys.executable,  # runs the watchdog (Dormouse's code), never an app
        run_as: str = "",
    ) -> None:
        if not 0 < port_min <= port_max < 65536:
            raise ValueError(f"bad port range {port_min}-{port_max}")
        viz = urllib.parse.urlsplit(viz_origin)
        if viz.scheme not in ("http", "https") or not is_hostname(viz.hostname or "") or viz.path:
            raise ValueError(f"bad apps origin {viz_origin!r}")
        self.apps_dir = Path(apps_dir).resolve()
        self.run_dir = Path(run_dir)
        self.bind_host = bind_host
        self.viz_origin = viz_origin
        self.viz_host = viz.hostname or ""
        self.viz_authority = viz.netloc
        self.routes = LocalRoutes(routes_dir, viz_host=self.viz_host, traefik_url=traefik_url)
        self.port_min, self.port_max = port_min, port_max
        self.watch_pid = watch_pid
        self.stop_grace = stop_grace
        self.python = python
        self.run_as = run_as  # LOCAL_RUN_AS: the user apps run as ("" = ours)
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._held_ports: dict[int, float] = {}

    # ------------------------------------------------------------------ create
    def create(self, spec: AppSpec) -> str:
        """Start ``spec`` under a watchdog; return the ref. Does not wait."""
        if not is_file_name(spec.deployment_name):
            raise BackendError(f"Invalid deployment name {spec.deployment_name!r}.")
        if not is_prefix(spec.prefix):
            raise BackendError(f"Invalid URL prefix {spec.prefix!r}.")
        frameworks.get(spec.framework)  # UnknownFramework before anything is made
        if not spec.python or not os.path.isabs(spec.python):  # the lifecycle checks it first
            raise BackendError("The app's Python environment is not ready.")
        target = locate_source(self.apps_dir, spec.source)
        name = spec.deployment_name
        self._reap()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        record = self.run_dir / f"{name}.json"
        if record.exists() and self._group_of(self._read_ref(record)):
            raise BackendError(f"Deployment {name} is already running.")

        port = self._pick_port()
        run = launch(
            spec,
            target,
            python=spec.python,  # the app's own environment; the watchdog stays on ours
            bind_host=self.bind_host,
            port=port,
            viz_authority=self.viz_authority,
            stop_grace=self.stop_grace,
        )
        cmd, cwd, app_path = run.argv, run.cwd, run.app_path
        env = child_env(spec, dict(os.environ))

        exit_file = self.run_dir / f"{name}.exit"
        exit_file.unlink(missing_ok=True)
        log_file = self.run_dir / f"{name}.log"
        if log_file.exists():
            log_file.replace(log_file.with_suffix(".log.1"))
        watch = self.watch_pid or _env_pid("DORMOUSE_SUPERVISOR_PID") or os.getpid()
        argv = [
            self.python, "-I", str(WATCHDOG), "--watch-pid", str(watch),
            "--exit-file", str(exit_file), "--grace", str(self.stop_grace),
            "--", *run_as_prefix(self.run_as), *cmd,
        ]  # fmt: skip
        self.routes.write(spec, f"http://{bind_literal(self.bind_host)}:{port}")
        try:
            with open(log_file, "wb") as out:
                proc = subprocess.Popen(
                    argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
        except (OSError, ValueError) as exc:
            self.routes.remove(name)
            raise BackendError(f"Could not start the app: {exc}") from exc
        st = proc_stat(proc.pid)
        ref = json.dumps(
            {"v": 1, "name": name, "fw": spec.framework, "pid": proc.pid,
             "start": st[2] if st else 0, "port": port, "path": app_path},
            separators=(",", ":"),
        )  # fmt: skip
        with self._lock:
            self._children[proc.pid] = proc
        tmp = record.with_suffix(".json.tmp")
        tmp.write_text(ref, encoding="utf-8")
        tmp.replace(record)
        log.info("started %s (%s) pid %d on port %d: %s", name, spec.framework, proc.pid, port, cmd)
        return ref

    def _pick_port(self) -> int:
        """A port in [port_min, port_max] that binds now and was not handed out lately."""
        now = time.monotonic()
        with self._lock:
            self._held_ports = {p: t for p, t in self._held_ports.items() if now - t < PORT_HOLD}
            taken = set(self._held_ports)
        for record in self.run_dir.glob("*.json"):
            ref = self._read_ref(record)
            if ref:
                taken.add(int(ref.get("port", 0)))
        span = self.port_max - self.port_min + 1
        first = random.randrange(span)
        family = socket.AF_INET6 if ":" in self.bind_host else socket.AF_INET
        for i in range(span):
            port = self.port_min + (first + i) % span
            if port in taken:
                continue
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((self.bind_host, port))
                except OSError:
                    continue
            with self._lock:
                self._held_ports[port] = now
            return port
        raise BackendError(f"No free port between {self.port_min} and {self.port_max}.")

    # ------------------------------------------------------------------ status
    def status(self, ref: str) -> BackendStatus:
        """``failed`` (exit recorded), ``gone``, ``running`` (HTTP 200) or ``starting``."""
        r = self._parse(ref)
        if r is None:
            return BackendStatus("gone", reason="Unreadable deployment reference.")
        self._reap()
        alive = self._leader_alive(r)
        code = self._exit_code(r)  # read after the liveness check: no race
        if code is not None:
            what = f"exit code {code}" if code >= 0 else f"signal {-code}"
            return BackendStatus(
                "failed", reason=f"The app stopped ({what}). End of its log:\n{self._log_tail(r)}"
            )
        if not alive:
            return BackendStatus("gone", reason="The app's process is not running.")
        fw = frameworks.FRAMEWORKS.get(r["fw"])
        server = fw.badge if fw else "app"
        check_host = bind_literal(self.bind_host)
        try:
            with _PROBE.open(f"http://{check_host}:{r['port']}{r['path']}", timeout=1.0) as resp:
                http_code = resp.status
        except urllib.error.HTTPError as exc:
            http_code = exc.code
        except (OSError, ValueError) as exc:
            if isinstance(getattr(exc, "reason", exc), ConnectionRefusedError):
                return BackendStatus("starting", phase=f"Starting the {server} server")
            return BackendStatus("starting", phase="Waiting for the app to answer")
        if http_code == 200:
            if fw and fw.log_error:
                # e.g. bokeh serve answers 200 with an empty page when main.py
                # raises and only logs the error; the probe above ran it once.
                error = self._log_tail(r, fw.log_error)
                if error:
                    return BackendStatus("failed", reason=f"The app raised an error:\n{error}")
            if not self.routes.is_live(r["path"]):
                return BackendStatus("starting", phase="Opening the app's route")
            return BackendStatus("running")
        if http_code == 500:
            return BackendStatus(
                "failed", reason=f"The app answered HTTP 500. End of its log:\n{self._log_tail(r)}"
            )
        return BackendStatus("starting", phase=f"Waiting for the app to answer (HTTP {http_code})")

    def _exit_code(self, r: dict[str, Any]) -> int | None:
        try:
            data = json.loads((self.run_dir / f"{r['name']}.exit").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return int(data["code"]) if data.get("pid") == r["pid"] else None

    def _log_tail(self, r: dict[str, Any], since: str = "") -> str:
        """The last lines of the app's log (watchdog lines left out), capped.

        With ``since``, only from the last line containing it ("" if none)."""
        lines = local_logs.tail(self.run_dir / f"{r['name']}.log", 64 * 1024).splitlines()
        if since:
            starts = [i for i, ln in enumerate(lines) if since in ln]
            if not starts:
                return ""
            lines = lines[starts[-1] : starts[-1] + LOG_TAIL_LINES]
            return "\n".join(lines)[:LOG_TAIL_CHARS]
        tail = "\n".join(lines[-LOG_TAIL_LINES:])
        return tail[-LOG_TAIL_CHARS:]

    # -------------------------------------------------------------------- logs
    def logs(self, ref: str, max_bytes: int) -> str:
        """The app's output: the tail of ``run_dir/<name>.log``, which outlives the
        process (so a stopped deployment's output stays readable). The ``.log.1``
        an earlier create of the same name left is another run's, not read."""
        r = self._parse(ref)
        if r is None:
            raise BackendError("Unreadable deployment reference.")
        return local_logs.tail(self.run_dir / f"{r['name']}.log", max_bytes)

    # -------------------------------------------------------------------- stop
    def stop(self, ref: str) -> None:
        """TERM the group, let its watchdog finish (it KILLs what is left after
        ``stop_grace`` s), KILL the group only if the watchdog cannot
        (:func:`local_groups.stop_group`); forget the records.

        The log is kept (the previous run's log is rotated to ``.log.1`` by the
        next :meth:`create` of the same deployment)."""
        r = self._parse(ref)
        if r is None:
            log.warning("stop: ignoring unreadable ref %r", ref)
            return
        self._reap()
        pgid = r["pid"]
        if self._group_of(r):
            log.info("stopping %s (process group %d)", r["name"], pgid)
            ended = stop_group(
                pgid, grace=self.stop_grace, watchdog_alive=lambda: self._leader_alive(r), reap=self._reap
            )
            if ended != "stopped":
                log.warning("%s did not stop when asked; it was killed", r["name"])
            if ended == "stuck":
                raise BackendError(f"Could not stop process group {pgid}.")
        for suffix in (".json", ".exit"):
            path = self.run_dir / f"{r['name']}{suffix}"
            if suffix == ".exit" or self._read_ref(path).get("pid") == pgid:
                path.unlink(missing_ok=True)
        self.routes.remove(r["name"])

    # -------------------------------------------------------------------- list
    def list(self) -> dict[str, str]:
        """``{deployment_name: ref}`` of live groups recorded in ``run_dir``;
        records of dead ones are dropped, and so are routes to nothing older
        than :data:`ROUTE_PRUNE_GRACE` (a create writes its route before its
        record: a younger route may be a create in progress in another
        worker)."""
        routes_before = time.time() - ROUTE_PRUNE_GRACE
        self._reap()
        refs: dict[str, str] = {}
        for record in sorted(self.run_dir.glob("*.json")):
            r = self._read_ref(record)
            if r and self._group_of(r):
                refs[r["name"]] = record.read_text(encoding="utf-8")
            else:
                record.unlink(missing_ok=True)
        self.routes.prune(keep=refs, written_before=routes_before)  # left by a crash or a reboot
        return refs

    # --------------------------------------------------------------------- url
    def url(self, ref: str) -> str:
        """The iframe's URL: the app's path on the apps' host, through Traefik."""
        r = self._parse(ref)
        if r is None:
            raise BackendError("Unreadable deployment reference.")
        return f"{self.viz_origin}{r['path']}"

    # ----------------------------------------------------------------- helpers
    def _parse(self, ref: str) -> dict[str, Any] | None:
        try:
            r = json.loads(ref)
            ok = (
                is_file_name(r["name"]) and isinstance(r["pid"], int) and r["pid"] > 1
                and isinstance(r["port"], int) and str(r["path"]).startswith("/")
            )  # fmt: skip
        except (ValueError, TypeError, KeyError):
            return None
        return r if ok else None

    def _read_ref(self, record: Path) -> dict[str, Any]:
        try:
            return self._parse(record.read_text(encoding="utf-8")) or {}
        except OSError:
            return {}

    def _leader_alive(self, r: dict[str, Any]) -> bool:
        st = proc_stat(r["pid"])
        return st is not None and st[0] not in ("Z", "X") and st[2] == r["start"]

    def _group_of(self, r: dict[str, Any]) -> bool:
        """True if the group of ``r`` still has live processes (and is ours)."""
        if not r:
            return False
        if self._leader_alive(r):
            return True
        st = proc_stat(r["pid"])
        if st is not None and st[2] != r["start"]:
            return False  # pid reused: while our group existed it could not be
        return group_alive(r["pid"])

    def _reap(self) -> None:
        """Collect exit statuses of watchdogs this process started (no zombies)."""
        with self._lock:
            for pid, proc in list(self._children.items()):
                if proc.poll() is not None:
                    del self._children[pid]
