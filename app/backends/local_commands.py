"""How the local backend launches each framework: pure functions from an app
spec to a command line, a working directory, the app's URL path and its
environment. No processes are started here.

* Dash: gunicorn serves ``module:callable`` with ``DASH_ROUTES_PATHNAME_PREFIX``
  and ``DASH_REQUESTS_PATHNAME_PREFIX`` set to the prefix, so the app lives at
  exactly ``prefix``. gunicorn only accepts a module-level *name* (or a call
  ``name(literals)``) after the colon - ``app:app.server`` is refused - so the
  callable must be a plain identifier (default ``server``).
* Bokeh: ``bokeh serve --prefix PREFIX`` serves the app at ``PREFIX + name``,
  where ``name`` is the directory of a directory app or the stem of a script;
  the bare prefix only redirects there. A directory, or a file called
  ``main.py`` (not at the top of ``apps_dir``), is served as a directory-format
  app: ``bokeh-sliders/main.py`` -> ``/owner/title/name/bokeh-sliders``.
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from app.backends.base import AppSpec, BackendError
from app.backends.frameworks import DEFAULT_DASH_CALLABLE, bokeh_app, dash_prefix_env

log = logging.getLogger(__name__)

APP_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
ENV_KEEP = {
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "VIRTUAL_ENV", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "no_proxy",
}  # fmt: skip


@dataclass(frozen=True)
class Launch:
    """What to run for one deployment."""

    argv: list[str]
    cwd: Path
    app_path: str  # the URL path the app answers at (prefix, or prefix + Bokeh app name)


def split_host(request_host: str) -> str:
    """The host part of a Host header value, IPv6 literals kept in brackets."""
    host = request_host.strip()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    if host.count(":") > 1:  # bare IPv6 literal, no port
        return f"[{host}]"
    return host.split(":", 1)[0]


def bind_literal(bind_host: str) -> str:
    return f"[{bind_host}]" if ":" in bind_host else bind_host


def resolve_source(apps_dir: Path, source: str | None) -> Path:
    """The app's file or directory; it must exist inside ``apps_dir`` (symlinks resolved)."""
    if not source or "\0" in source:
        raise BackendError("The app has no source path.")
    if os.path.isabs(source):
        raise BackendError(f"Source path {source!r} must be relative to the apps directory.")
    try:
        target = (apps_dir / source).resolve(strict=True)
    except (OSError, RuntimeError):
        raise BackendError(f"Source {source!r} does not exist in the apps directory.") from None
    if apps_dir not in target.parents:
        raise BackendError(f"Source {source!r} is outside the apps directory.")
    return target


def dash_launch(spec: AppSpec, target: Path, *, python: str, bind_host: str, port: int,
                stop_grace: float) -> Launch:
    if not target.is_file() or target.suffix != ".py":
        raise BackendError(f"A Dash source must be a .py file, not {spec.source!r}.")
    module = target.stem
    if not module.isidentifier():
        raise BackendError(f"{target.name!r} cannot be imported as a Python module.")
    attr = spec.callable or DEFAULT_DASH_CALLABLE
    if not attr.isidentifier():
        raise BackendError(
            f"The WSGI callable must be a module-level name such as 'server', not {attr!r}."
        )
    argv = [
        python, "-m", "gunicorn", "--bind", f"{bind_literal(bind_host)}:{port}",
        "--workers", "1", "--threads", "4", "--chdir", str(target.parent),
        "--graceful-timeout", str(max(1, math.ceil(stop_grace))), "--no-control-socket",
        f"{module}:{attr}",
    ]  # fmt: skip
    return Launch(argv, target.parent, spec.prefix)


def bokeh_launch(spec: AppSpec, target: Path, *, python: str, apps_dir: Path, bind_host: str,
                 public_host: str, port: int) -> Launch:
    serve_path, app_name = bokeh_app(spec.source or "")
    if serve_path != posixpath.normpath(spec.source or ""):
        target = target.parent  # directory-format app (dir/main.py): serve its directory
    if target.is_dir():
        if not (target / "main.py").is_file():
            raise BackendError(f"Bokeh app directory {spec.source!r} has no main.py.")
        cwd = target
    elif target.suffix == ".py":
        cwd = target.parent
    else:
        raise BackendError(f"A Bokeh source must be a directory or a .py file, not {spec.source!r}.")
    if not APP_NAME_RE.match(app_name):
        raise BackendError(f"Bokeh app name {app_name!r} cannot be used in a URL.")
    # The iframe document's origin is the app's own host:port, so those are
    # the websocket origins to allow.
    hosts = ["127.0.0.1", "localhost"]
    if public_host:
        hosts.append(split_host(public_host))
    elif bind_host in WILDCARD_HOSTS:
        log.warning("no public host set: browsers reaching %s by another name than "
                    "localhost will be refused its websocket", spec.deployment_name)
    if bind_host not in (*WILDCARD_HOSTS, "127.0.0.1", "localhost"):
        hosts.append(split_host(bind_host))
    argv = [
        python, "-m", "bokeh", "serve", str(target), "--address", bind_host,
        "--port", str(port), "--prefix", spec.prefix, "--num-procs", "1",
    ]  # fmt: skip
    for host in dict.fromkeys(hosts):
        argv += ["--allow-websocket-origin", f"{host}:{port}"]
    return Launch(argv, cwd, spec.prefix + app_name)


def child_env(spec: AppSpec, parent: dict[str, str]) -> dict[str, str]:
    """An allowlist of the server's environment, then the app's own, then the
    Dash prefix variables; Dormouse's secrets are never passed on."""
    env = {k: v for k, v in parent.items() if k in ENV_KEEP or k.startswith("LC_")}
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(spec.env)
    if spec.framework == "dash":
        env.update(dash_prefix_env(spec.prefix))
        env.pop("DASH_URL_BASE_PATHNAME", None)
    return env
