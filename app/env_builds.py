"""Per-app environments, the runner: resolve with uv, build, single-flight,
limits, prune. (What is resolved and how keys are made is the pure
:mod:`app.environments`; the app-facing steps, publish and the pages, are
in :mod:`app.app_envs`.)

Every uv run goes through :mod:`app.backends.env_builder`, run by file path
with Dormouse's interpreter as the apps' user (``LOCAL_RUN_AS``), in its own
process group, with a clean environment (:func:`uv_environment`). Dormouse
keeps the time limit (the group is killed), the per-key ``flock`` in
``INSTANCE_PATH/env-locks`` and the database row, and only ever *reads* a
built environment (its ``*.dist-info``), never runs code from it.

Single flight: the :class:`app.models.Environment` row is the claim. One
INSERT of ``building`` wins; a failed row, or one whose builder has been
silent longer than :func:`stale_after`, is claimed again by a conditional
UPDATE. Within the host, the key's ``flock`` serialises builders, and the
helper finds an environment someone else finished and reuses it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import environments as envs
from .backends import frameworks
from .backends.env_builder import MARKER
from .backends.local_commands import run_as_prefix
from .backends.local_groups import group_alive
from .config import Settings
from .env_settings import EnvSettings
from .extensions import db
from .models import Environment, VizApp

log = logging.getLogger(__name__)

HELPER = Path(__file__).resolve().parent / "backends" / "env_builder.py"
PASS_THROUGH = (
    "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "no_proxy",
)  # fmt: skip
KILL_GRACE = 5.0
RESOLVE_TIMEOUT = 60.0  # seconds a resolve may take at most (it runs in a publish request; ~1 s usually)
RUNS: Counter[str] = Counter()  # helper runs in this process, by command (tests count them)


class BuildError(Exception):
    """A resolve or build failed; the message is for the app's owner.
    ``kind``: ``requirements`` (the resolver says no), ``index`` (the
    package index could not be reached), ``limit`` (time or size),
    ``contract`` (the framework is missing or out of range), ``internal``."""

    def __init__(self, message: str, kind: str = "internal") -> None:
        super().__init__(message)
        self.kind = kind


def uv_binary() -> str:
    """The uv that ``requirements.txt`` pins, next to Dormouse's interpreter
    (never one found on PATH)."""
    import uv

    return uv.find_uv_bin()


def base_python() -> str:
    """The interpreter environments are built on: the one beneath Dormouse's
    virtual environment, if it runs in one."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def uv_environment(s: EnvSettings, parent: dict[str, str], timeout: float) -> dict[str, str]:
    """The helper's (and uv's) whole environment: an allowlist, never the
    operator's ``UV_*`` or ``VIRTUAL_ENV`` (which would retarget installs)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(s.cache_dir),  # LOCAL_RUN_AS replaces it with the user's own
        "LANG": "C.UTF-8",
        "UV_CACHE_DIR": str(s.cache_dir),
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        # the operating system's trust store (with any CA a TLS-inspecting proxy needs), not
        # only uv's bundled roots; SSL_CERT_FILE, when set, still names a bundle
        "UV_SYSTEM_CERTS": "1",
        "UV_HTTP_TIMEOUT": str(max(1, min(30, int(timeout)))),
    }
    env.update({k: parent[k] for k in PASS_THROUGH if parent.get(k)})
    return env


def kill_group(pgid: int) -> None:
    """TERM the process group, then KILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, KILL_GRACE)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.05)


@dataclass(frozen=True)
class Builder:
    """How this Dormouse runs uv: its settings, the uv binary, the base
    interpreter and the apps' user."""

    s: EnvSettings
    uv: str
    python: str
    run_as: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Builder:
        return cls(settings.envs, uv_binary(), base_python(), settings.local_run_as)

    @property
    def identity(self) -> str:
        return envs.python_identity(self.python)

    def env_dir(self, key: str) -> Path:
        return self.s.envs_dir / key

    def env_python(self, key: str) -> Path:
        return self.env_dir(key) / "bin" / "python"

    def is_built(self, key: str) -> bool:
        return (self.env_dir(key) / MARKER).is_file()

    def helper(self, command: str, args: list[str], stdin: str = "", timeout: float | None = None) -> dict:
        """Run the helper; its JSON answer. Killed (group and all) after
        ``timeout`` (ENV_BUILD_TIMEOUT): BuildError of kind ``limit``."""
        timeout = timeout or self.s.build_timeout
        argv = [*run_as_prefix(self.run_as), sys.executable, "-I", str(HELPER), command, *args]
        RUNS[command] += 1
        if not self.run_as:  # as another user, uv makes it (its owner must be that user)
            self.s.cache_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=uv_environment(self.s, dict(os.environ), timeout), cwd="/", start_new_session=True,
        )  # fmt: skip
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.communicate()
            raise BuildError(
                f"Preparing the environment took longer than {timeout:.0f} s and was stopped "
                "(ENV_BUILD_TIMEOUT; a resolve at most 60 s).",
                "limit",
            ) from None
        finally:
            if proc.poll() is None:
                kill_group(proc.pid)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            log.error("env_builder %s failed (exit %s): %s", command, proc.returncode, err[-2000:])
            raise BuildError("The environment builder failed (internal error; see the server log).") from None

    def _common(self) -> list[str]:
        args = ["--uv", self.uv, "--python", self.python]
        return args + (["--index", self.s.index_url] if self.s.index_url else [])

    def resolve(self, requirements_in: str) -> str:
        """The lock (sorted ``name==version`` lines) for ``requirements_in``."""
        timeout = min(RESOLVE_TIMEOUT, self.s.build_timeout)
        answer = self.helper("compile", self._common(), requirements_in, timeout=timeout)
        if not answer.get("ok"):
            code = answer.get("code")
            kind = "requirements" if code == 1 else "index"
            raise BuildError(envs.summarize_uv_error(str(answer.get("stderr", "")), code), kind)
        try:
            return envs.lock_text(envs.parse_lock(str(answer["lock"])))
        except ValueError as exc:
            raise BuildError(f"uv gave an unexpected lock: {exc}") from None

    def build(self, key: str, lock: str) -> dict[str, Any]:
        """Make ``ENVS_DIR/key`` from ``lock`` (or find it made); the helper's
        answer (``size``, ``reused``, ``seconds``). One builder per key on
        this host at a time (``flock``); a killed build's leftovers are swept."""
        if not envs.is_key(key):
            raise ValueError(f"bad key {key!r}")
        self.s.locks_dir.mkdir(parents=True, exist_ok=True)
        with open(self.s.locks_dir / f"{key}.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            args = [*self._common(), "--envs-dir", str(self.s.envs_dir), "--key", key]
            args += ["--max-bytes", str(self.s.max_bytes)]
            if self.s.compile_bytecode:
                args.append("--bytecode")
            try:
                answer = self.helper("build", args, lock)
            except BuildError:
                self.sweep_tmp(key)
                raise
        if answer.get("ok"):
            return answer
        if answer.get("step") == "size":
            mb = int(answer.get("size", 0)) / 1024 / 1024
            raise BuildError(
                f"The environment takes {mb:.0f} MB; the limit is {self.s.max_bytes // 1024 // 1024} MB "
                "(ENV_MAX_MB).",
                "limit",
            )
        raise BuildError(envs.summarize_uv_error(str(answer.get("stderr", "")), answer.get("code")))

    def remove(self, key: str) -> None:
        self.helper("remove", ["--envs-dir", str(self.s.envs_dir), "--key", key])

    def sweep_tmp(self, key: str = "", older_than: float = 0.0) -> list[str]:
        args = ["--envs-dir", str(self.s.envs_dir), "--older-than", str(older_than)]
        return list(self.helper("sweep-tmp", args + (["--key", key] if key else []))["removed"])


# --- the database: claim, build, record -----------------------------------------


def stale_after(s: EnvSettings) -> timedelta:
    """How long a ``building`` row may stay claimed before another process
    takes the build over (its builder died): a resolve and a build, and then some."""
    return timedelta(seconds=2 * s.build_timeout + 60)


def claimant() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def claim(builder: Builder, key: str, lock: str, framework: str, *, now: datetime) -> bool:
    """Claim the build of ``key``; True if this process must build it. A new
    key is inserted as ``building`` (``ready`` if its directory is complete:
    a restored database, a shared directory); an existing one is taken over only when
    it failed, when its builder went silent, or when it is ``ready`` but its
    directory is gone."""
    me = claimant()
    if db.session.get(Environment, key) is None:
        built = builder.is_built(key)  # complete on disk (a restored database, a shared directory)
        db.session.add(
            Environment(
                key=key, status="ready" if built else "building", framework=framework,
                python=builder.identity, lock_text=lock, claimed_by=None if built else me,
                claimed_at=now, created_at=now, built_at=now if built else None,
            )
        )  # fmt: skip
        try:
            db.session.commit()
            return not built
        except IntegrityError:
            db.session.rollback()
    takeover = [
        Environment.status == "failed",
        and_(Environment.status == "building", Environment.claimed_at < now - stale_after(builder.s)),
    ]
    if not builder.is_built(key):
        takeover.append(Environment.status == "ready")
    result = db.session.execute(
        update(Environment)
        .where(Environment.key == key, or_(*takeover))
        .values(status="building", claimed_by=me, claimed_at=now, error=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _record(key: str, **values: object) -> None:
    """Write the outcome, only if this process still holds the claim."""
    db.session.execute(
        update(Environment)
        .where(Environment.key == key, Environment.claimed_by == claimant(), Environment.status == "building")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def run_build(builder: Builder, key: str, *, now: datetime) -> Environment:
    """Build a claimed environment and record the outcome (ready, or failed
    with a message for the owner). A built environment whose framework
    packages are missing or out of range is removed and failed."""
    row = db.session.get(Environment, key)
    assert row is not None
    started = time.monotonic()
    fw = frameworks.get(row.framework)
    try:
        answer = builder.build(key, row.lock_text)
        problem = envs.contract_error(fw, envs.installed(builder.env_dir(key)))
        if problem:
            builder.remove(key)
            raise BuildError(problem, "contract")
    except BuildError as exc:
        log.warning("environment %s: build failed (%s): %s", key[:12], exc.kind, exc)
        _record(
            key, status="failed", error=str(exc), claimed_at=now, build_seconds=time.monotonic() - started
        )
    except Exception:
        log.exception("environment %s: build failed", key[:12])
        _record(key, status="failed", error="The build failed (internal error; see the server log).")
    else:
        built = not answer.get("reused")
        log.info(
            "environment %s: %s (%.1fs)",
            key[:12],
            "built" if built else "found built",
            answer.get("seconds", 0),
        )
        _record(
            key, status="ready", error=None, size_bytes=int(answer.get("size", 0)),
            built_at=now, build_seconds=time.monotonic() - started,
            builds=Environment.builds + (1 if built else 0),
        )  # fmt: skip
    db.session.expire_all()
    row = db.session.get(Environment, key)
    assert row is not None
    return row


def ensure(builder: Builder, key: str, lock: str, framework: str, *, now: datetime) -> Environment:
    """Make sure ``key`` is built or being built; build it here if this
    process wins the claim (in the foreground: the CLI, the background
    executor). The row as it is after."""
    row = db.session.get(Environment, key)
    if row is not None and row.status == "ready" and builder.is_built(key):
        return row
    if claim(builder, key, lock, framework, now=now):
        return run_build(builder, key, now=now)
    db.session.expire_all()
    row = db.session.get(Environment, key)
    assert row is not None
    return row


# --- pruning ---------------------------------------------------------------------


def unused(s: EnvSettings, *, now: datetime) -> list[Environment]:
    """Environments no app (not deleted) names, as its own or its pending
    one, idle longer than ENV_KEEP_UNUSED."""
    live = VizApp.deleted_at.is_(None)
    in_use = select(VizApp.env_key).where(live, VizApp.env_key.is_not(None))
    pending = select(VizApp.pending_env_key).where(live, VizApp.pending_env_key.is_not(None))
    cutoff = now - timedelta(seconds=s.keep_unused)
    rows = db.session.scalars(
        select(Environment).where(
            Environment.key.not_in(in_use), Environment.key.not_in(pending), Environment.status != "building"
        )
    )
    return [r for r in rows if max(filter(None, (r.last_used_at, r.built_at, r.created_at))) <= cutoff]


def prune(builder: Builder, *, now: datetime, dry_run: bool = False) -> list[str]:
    """Remove environments no app uses (directory and row) and build
    leftovers older than a build may take; the keys removed."""
    removed = []
    for row in unused(builder.s, now=now):
        removed.append(row.key)
        if dry_run:
            continue
        builder.remove(row.key)
        db.session.execute(
            update(VizApp).where(VizApp.env_key == row.key).values(env_key=None)
        )  # deleted apps only
        db.session.execute(
            update(VizApp).where(VizApp.pending_env_key == row.key).values(pending_env_key=None)
        )
        db.session.delete(row)
        db.session.commit()
        log.info("environment %s: pruned", row.key[:12])
    if not dry_run and builder.s.envs_dir.is_dir():
        builder.sweep_tmp(older_than=stale_after(builder.s).total_seconds())
    return removed
