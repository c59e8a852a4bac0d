"""Per-app environments, the app's side: reading an app's requirements file
at publish, resolving it (so a package that does not exist is a form
error), attaching the environment to the app and building it (in the
foreground for the CLI, in a small per-process background executor for the
web), what the pages say about it, and the gate the lifecycle asks before a
local deployment is made (:func:`python_for`: no ready environment, no
deployment; a viewer sees "being prepared", never a crash or a build).

The runner is :mod:`app.env_builds`; the pure rules :mod:`app.environments`.
The Kubernetes backend ignores all this: an app's image carries its packages.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import and_, func, select, update

from . import env_builds
from . import environments as envs
from .backends import frameworks
from .caps import Busy
from .config import Settings
from .env_builds import Builder, BuildError
from .extensions import db
from .models import Environment, VizApp, utcnow

log = logging.getLogger(__name__)

RESOLVE_MEMO_SECONDS = 600.0  # a resolution is reused this long for the same input in a process


class EnvNotReady(Busy):
    """The app's environment is being prepared (or failed): no deployment is
    made. ``failed``: it cannot be built; the message says why (for the owner)."""

    def __init__(self, message: str, *, failed: bool = False) -> None:
        super().__init__(message)
        self.failed = failed


# --- the requirements file -------------------------------------------------------


def requirements_path(apps_dir: Path, source: str, named: str) -> tuple[Path | None, str | None]:
    """Which requirements file an app has: ``named`` (relative to the apps
    folder, and inside it), else ``requirements.txt`` beside its source if
    there is one, else none; or why ``named`` cannot be used."""
    root = apps_dir.resolve()
    if named.strip():
        candidate = Path(named.strip())
        if candidate.is_absolute() or ".." in candidate.parts or "\0" in named:
            return None, "Give the requirements file as a relative path inside the apps folder."
        full = (root / candidate).resolve()
        if not full.is_relative_to(root) or not full.is_file():
            return None, f"No file {named.strip()!r} in the apps folder."
        return full, None
    beside = (root / source).parent / envs.REQUIREMENTS_FILE
    if not beside.is_file():
        return None, None
    if not beside.resolve().is_relative_to(root):
        return None, f"{envs.REQUIREMENTS_FILE} beside the source leads out of the apps folder."
    return beside.resolve(), None


def read_requirements(apps_dir: Path, source: str, named: str) -> tuple[str | None, str | None]:
    """The app's requirements as Dormouse stores them (accepted lines, one
    each), None when it has no file; or a message listing every refused line."""
    path, error = requirements_path(apps_dir, source, named)
    if error or path is None:
        return None, error
    try:
        with open(path, "rb") as fh:
            raw = fh.read(envs.MAX_FILE_BYTES + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8 text."
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror})."
    reqs, errors = envs.parse_requirements(text)
    if errors:
        return None, f"{path.name}: " + " ".join(errors)
    return envs.canonical_text(reqs), None


def requirements_in(framework: str, requirements_text: str | None) -> str:
    """What uv resolves for the app; ValueError when the framework is missing."""
    fw = frameworks.get(framework)
    if requirements_text is None:
        return envs.build_input(fw, None)
    reqs, errors = envs.parse_requirements(requirements_text)
    if errors:  # stored text is always clean; this is a guard
        raise ValueError(" ".join(errors))
    return envs.build_input(fw, reqs)


# --- resolving -------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    key: str
    lock: str
    requirements_hash: str


_memo: dict[str, tuple[float, str]] = {}
_memo_lock = threading.Lock()


def resolve(builder: Builder, framework: str, requirements_text: str | None) -> Resolved:
    """The environment for these requirements: an environment another app
    with the same input already has, else uv's resolution (kept
    :data:`RESOLVE_MEMO_SECONDS` in this process). BuildError when the
    requirements cannot be satisfied or break the framework contract."""
    try:
        wanted = requirements_in(framework, requirements_text)
    except ValueError as exc:
        raise BuildError(str(exc), "contract") from None
    digest = envs.input_hash(f"{wanted}\0{builder.s.index_url}", builder.identity)
    shared = db.session.execute(
        select(Environment.key, Environment.lock_text)
        # an app's requirements_hash is its pending environment's while it has one
        .join(VizApp, func.coalesce(VizApp.pending_env_key, VizApp.env_key) == Environment.key)
        .where(VizApp.requirements_hash == digest, Environment.status.in_(("ready", "building")))
        .limit(1)
    ).first()
    if shared is not None:
        return Resolved(shared.key, shared.lock_text, digest)
    with _memo_lock:
        hit = _memo.get(digest)
    if hit and time.monotonic() - hit[0] < RESOLVE_MEMO_SECONDS:
        lock = hit[1]
    else:
        lock = builder.resolve(wanted)
        with _memo_lock:
            _memo[digest] = (time.monotonic(), lock)
    problem = envs.contract_error(frameworks.get(framework), envs.parse_lock(lock))
    if problem:
        raise BuildError(problem, "contract")
    return Resolved(envs.env_key(builder.identity, lock), lock, digest)


def attach(
    app: VizApp,
    resolved: Resolved,
    builder: Builder,
    *,
    now: datetime,
    at_once: bool = False,
    commit: bool = True,
) -> bool:
    """Give ``app`` its environment (claiming the build when nobody has it);
    True if this process must build it now. A ready one is used at once (so
    is any when the app's own is not ready: nothing to keep running);
    otherwise it is the app's pending environment, and the app keeps the one
    it has (none, for a new app: its owner's and admins' only meanwhile)
    until :func:`promote` switches it. ``at_once``: the app's environment
    straight away (an app from before environments: it stays listed).
    ``commit=False``: a new app, not yet saved (publish saves it with its
    pending key, so it is never listed before its environment is ready)."""
    mine = env_builds.claim(builder, resolved.key, resolved.lock, app.framework, now=now)
    row = db.session.get(Environment, resolved.key)
    current = db.session.get(Environment, app.env_key) if app.env_key else None
    working = current is not None and current.status == "ready"  # else nothing to keep running
    if (
        at_once
        or resolved.key == app.env_key
        or (row is not None and row.status == "ready")
        or (app.env_key is not None and not working)
    ):
        app.env_key, app.pending_env_key = resolved.key, None
    else:
        app.pending_env_key = resolved.key
    app.requirements_hash = resolved.requirements_hash
    if commit:
        db.session.commit()
    return mine


def promote(key: str) -> int:
    """Switch the apps waiting for ``key`` to it, if it is ready (the end
    of a build, in whichever process ran it; and :func:`python_for`, for a
    build finished just before an app named it). A running deployment keeps
    its interpreter; the next one uses this. The number of apps switched."""
    ready = select(Environment.key).where(Environment.key == key, Environment.status == "ready")
    switched = db.session.execute(
        update(VizApp)
        .where(VizApp.pending_env_key == key, VizApp.pending_env_key.in_(ready))
        .values(env_key=key, pending_env_key=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if switched:
        log.info("environment %s: %d app(s) switched to it", key[:12], switched)
    return switched


def prepare(app: VizApp, resolved: Resolved | None, settings: Settings, *, foreground: bool) -> None:
    """After a publish or an edit: attach the resolved environment and build
    it, here (``foreground``: the CLI) or in the background (the web)."""
    if resolved is None:
        return
    builder = Builder.from_settings(settings)
    if attach(app, resolved, builder, now=utcnow()):
        build(app, resolved.key, settings, foreground=foreground)


def build(app: VizApp, key: str, settings: Settings, *, foreground: bool) -> None:
    """Build a claimed environment for ``app``, here or in the background;
    the app switches to it once it is ready (:func:`promote`)."""
    if foreground:
        env_builds.run_build(Builder.from_settings(settings), key, now=utcnow())
        promote(key)
        db.session.refresh(app)
    else:
        build_in_background(key)


# --- the background executor ----------------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="env-build")
        return _executor


def build_in_background(key: str) -> None:
    """Queue the build of a claimed environment in this process (one at a time)."""
    flask_app = current_app._get_current_object()  # type: ignore[attr-defined]
    _pool().submit(_background_build, flask_app, key)


def _background_build(flask_app: Flask, key: str) -> None:
    with flask_app.app_context():
        try:
            env_builds.run_build(Builder.from_settings(flask_app.config["DORMOUSE"]), key, now=utcnow())
            promote(key)  # in whichever process built it: the apps waiting for it switch
        except Exception:
            log.exception("environment %s: background build failed", key[:12])
        finally:
            db.session.remove()


_preparing: set[int] = set()  # app ids queued for preparation in this process


def prepare_in_background(app_id: int) -> None:
    """Resolve and build the environment of an app that has none yet (one
    published before environments existed, or written past publish), in this
    process's executor; once per app at a time."""
    with _executor_lock:
        if app_id in _preparing:
            return
        _preparing.add(app_id)
    flask_app = current_app._get_current_object()  # type: ignore[attr-defined]
    _pool().submit(_background_prepare, flask_app, app_id)


def _background_prepare(flask_app: Flask, app_id: int) -> None:
    with flask_app.app_context():
        try:
            app = db.session.get(VizApp, app_id)
            if app is None or app.env_key is not None or app.pending_env_key is not None:
                return
            builder = Builder.from_settings(flask_app.config["DORMOUSE"])
            resolved = resolve(builder, app.framework, app.requirements_text)
            if attach(app, resolved, builder, now=utcnow(), at_once=True):
                env_builds.run_build(builder, resolved.key, now=utcnow())
        except BuildError as exc:  # e.g. the index is unreachable: the next start asks again
            log.warning("app %s: could not prepare its environment: %s", app_id, exc)
        except Exception:
            log.exception("app %s: preparing its environment failed", app_id)
        finally:
            with _executor_lock:
                _preparing.discard(app_id)
            db.session.remove()


def retry_stale(settings: Settings, *, now: datetime) -> list[str]:
    """Take over builds whose builder died (claimed longer ago than a build
    may take) and run them in the background; the keys taken (the sweep)."""
    builder = Builder.from_settings(settings)
    cutoff = now - env_builds.stale_after(settings.envs)
    stale = db.session.scalars(
        select(Environment).where(and_(Environment.status == "building", Environment.claimed_at < cutoff))
    ).all()
    taken = []
    for row in stale:
        if env_builds.claim(builder, row.key, row.lock_text, row.framework, now=now):
            taken.append(row.key)
            build_in_background(row.key)
    return taken


# --- what the pages and the lifecycle ask ---------------------------------------------


@dataclass(frozen=True)
class EnvState:
    label: str  # "none" (not resolved), "building", "ready", "failed"
    error: str = ""  # uv's message: for the owner and admins only
    size_bytes: int | None = None
    key: str = ""
    pending: bool = False  # a new environment for an edit: the app runs in its previous one meanwhile

    @property
    def words(self) -> str:
        return {
            "none": "environment not prepared",
            "building": "environment being prepared",
            "ready": "environment ready",
            "failed": "environment failed",
        }[self.label]


def state_of(app: VizApp) -> EnvState:
    """What the owner sees: the pending environment while there is one
    (being prepared, or failed), else the app's own."""
    if app.pending_env_key:
        row = db.session.get(Environment, app.pending_env_key)
        if row is not None and row.status != "ready":
            return EnvState(row.status, row.error or "", row.size_bytes, row.key, app.env_key is not None)
    row = db.session.get(Environment, app.env_key) if app.env_key else None
    if row is None:
        return EnvState("none")
    return EnvState(row.status, row.error or "", row.size_bytes, row.key)


def python_for(app: VizApp, settings: Settings, *, now: datetime) -> str:
    """The interpreter of the app's ready environment, for its next local
    deployment; :class:`EnvNotReady` otherwise. Marks the environment used.
    A pending environment that is ready is switched to first."""
    if app.pending_env_key and promote(app.pending_env_key):
        db.session.refresh(app)
    if app.env_key is None and app.pending_env_key is None:  # from before environments existed
        prepare_in_background(app.id)
    key = app.env_key or app.pending_env_key  # pending: the first one, not ready yet
    row = db.session.get(Environment, key) if key else None
    if row is None or row.status == "building":
        raise EnvNotReady(f"{app.title} is being prepared: its Python environment is being built.")
    if row.status == "failed":
        raise EnvNotReady(
            f"The environment of {app.title} could not be built:\n{row.error or ''}", failed=True
        )
    python = settings.envs.envs_dir / row.key / "bin" / "python"
    if not python.exists():  # removed behind Dormouse's back: build it again
        builder = Builder.from_settings(settings)
        if env_builds.claim(builder, row.key, row.lock_text, row.framework, now=now):
            build_in_background(row.key)
        raise EnvNotReady(f"{app.title} is being prepared: its Python environment is being built.")
    row.last_used_at = now
    db.session.commit()
    return str(python)
