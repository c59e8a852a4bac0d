"""The framework registry: everything Dormouse knows about Dash, Bokeh and any
framework added later, one :class:`Framework` entry each.

Nothing else in the code spells a framework's name: the database constraint,
the publish form and the CLI list :data:`FRAMEWORKS`; publishing asks an entry
for its default port and callable; both backends ask it how to launch the app,
where it answers and when it is ready; the pages show its labels. Adding a
framework is adding an entry here (and a migration widening the database's
check constraint).

The launch builders are pure functions, like the rest of the backends'
builders: a spec in, a command line out, no I/O beyond looking at the source.

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
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..slugs import is_app_segment, is_hostname
from .base import AppSpec, BackendError

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}\Z")  # fits VizApp.framework and SQL without quoting


class UnknownFramework(BackendError):
    """A framework name that is not in the registry."""


@dataclass(frozen=True)
class Launch:
    """What the local backend runs for one deployment."""

    argv: list[str]
    cwd: Path
    app_path: str  # the URL path the app answers at (prefix, or prefix + Bokeh app name)


@dataclass(frozen=True)
class LocalHost:
    """Where the local backend runs one app (made by ``local_commands.local_host``)."""

    python: str  # the interpreter that runs the app's server
    bind_host: str  # the address to listen on, as configured
    bind: str  # "host:port" for a --bind option, an IPv6 literal in brackets
    port: int
    origins: tuple[str, ...]  # "host[:port]" the app's page may be loaded from
    stop_grace: float

    @property
    def interpreter(self) -> list[str]:
        """The app's Python, isolated (``-I``: no ``PYTHON*`` variables, no user
        site-packages, nothing implicit on ``sys.path``), with unbuffered output
        (``-u``) and no ``.pyc`` files written beside the app (``-B``)."""
        return [self.python, "-I", "-u", "-B"]


LocalLauncher = Callable[[AppSpec, Path, LocalHost], Launch]
# (spec, source in the image, checked prefix, checked viz host) -> container args
ContainerArgs = Callable[[AppSpec, str, str, str], list[str]]


def _no_app_name(source: str) -> str:
    return ""


def _no_env(prefix: str) -> dict[str, str]:
    return {}


def _at_prefix(prefix: str, app_path: str) -> str:
    return prefix


@dataclass(frozen=True)
class Framework:
    """One framework Dormouse can run, and everything that differs between them."""

    name: str  # stored on VizApp.framework: "dash"
    label: str  # the app page and the publish form: "Dash / Plotly"
    badge: str  # the gallery card and status lines: "Dash"
    default_port: int  # where it listens in its container
    launch: LocalLauncher  # the local backend's command line
    container_args: ContainerArgs  # a container's command line
    default_source: str = "app.py"  # the app's file inside an image when none is given
    default_callable: str | None = None  # None: a script, its source takes no ":callable"
    # source -> the path under the prefix where the app answers ("" = the prefix)
    app_name: Callable[[str], str] = _no_app_name
    # prefix -> environment variables that tell the app its prefix
    prefix_env: Callable[[str], dict[str, str]] = _no_env
    env_drop: tuple[str, ...] = ()  # variables that would fight the prefix ones
    # (prefix, app path) -> what a cluster's readiness probe GETs; it must
    # answer 2xx/3xx without starting a session
    readiness_path: Callable[[str, str], str] = _at_prefix
    # a log line that means the app failed although it answered 200
    log_error: str = ""
    # What Dormouse's launch needs inside the app's own environment (the local
    # backend), as PEP 508 requirements: the packages and the versions Dormouse
    # can drive. An app's requirements.txt must name the first (the framework);
    # the rest are added for it. See app/environments.py.
    env_requires: tuple[str, ...] = ()

    @property
    def takes_callable(self) -> bool:
        return self.default_callable is not None

    def app_path(self, prefix: str, source: str) -> str:
        """The URL path the app answers at."""
        return prefix + self.app_name(source)


# --- Dash --------------------------------------------------------------------

DASH_CALLABLE = "server"


def dash_prefix_env(prefix: str) -> dict[str, str]:
    """Dash reads these itself: where its routes live and what the browser puts
    in front of its requests. Both are the deployment's prefix."""
    return {"DASH_ROUTES_PATHNAME_PREFIX": prefix, "DASH_REQUESTS_PATHNAME_PREFIX": prefix}


def dash_launch(spec: AppSpec, target: Path, host: LocalHost) -> Launch:
    if not target.is_file() or target.suffix != ".py":
        raise BackendError(f"A Dash source must be a .py file, not {spec.source!r}.")
    module = target.stem
    if not module.isidentifier():
        raise BackendError(f"{target.name!r} cannot be imported as a Python module.")
    attr = spec.callable or DASH_CALLABLE
    if not attr.isidentifier():
        raise BackendError(f"The WSGI callable must be a module-level name such as 'server', not {attr!r}.")
    argv = [
        *host.interpreter, "-m", "gunicorn", "--bind", host.bind,
        "--workers", "1", "--threads", "4", "--chdir", str(target.parent),
        "--graceful-timeout", str(max(1, math.ceil(host.stop_grace))), "--no-control-socket",
        f"{module}:{attr}",
    ]  # fmt: skip
    return Launch(argv, target.parent, spec.prefix)


def dash_container_args(spec: AppSpec, source: str, prefix: str, viz_host: str) -> list[str]:
    directory, filename = posixpath.split(posixpath.normpath(source))
    module = filename[:-3] if filename.endswith(".py") else filename
    args = [
        "gunicorn", "--bind", f"0.0.0.0:{spec.port}", "--workers", "2", "--threads", "4",
        "--access-logfile", "-",
    ]  # fmt: skip
    if directory:
        args += ["--chdir", directory]
    return args + [f"{module}:{spec.callable or DASH_CALLABLE}"]


# --- Bokeh -------------------------------------------------------------------


def bokeh_app(source: str) -> tuple[str, str]:
    """What ``bokeh serve`` is given for ``source``, and the app name it serves
    it under (the app answers at ``prefix + name``).

    ``dir/main.py`` is a directory-format app: serve ``dir``, named ``dir``.
    ``x.py`` (a ``main.py`` at the top level too) is a script named ``x``. A
    directory is named after itself."""
    path = posixpath.normpath(source)
    if path.endswith("/main.py"):
        directory = posixpath.dirname(path)
        return directory, posixpath.basename(directory)
    if path.endswith(".py"):
        return path, posixpath.basename(path)[:-3]
    return path, posixpath.basename(path)


def bokeh_launch(spec: AppSpec, target: Path, host: LocalHost) -> Launch:
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
    if not is_app_segment(app_name):
        raise BackendError(f"Bokeh app name {app_name!r} cannot be used in a URL.")
    argv = [
        *host.interpreter, "-m", "bokeh", "serve", str(target), "--address", host.bind_host,
        "--port", str(host.port), "--prefix", spec.prefix, "--num-procs", "1",
    ]  # fmt: skip
    for origin in host.origins:
        argv += ["--allow-websocket-origin", origin]
    return Launch(argv, cwd, spec.prefix + app_name)


def bokeh_container_args(spec: AppSpec, source: str, prefix: str, viz_host: str) -> list[str]:
    target, _ = bokeh_app(source)
    if not is_hostname(viz_host):
        raise ValueError(f"unsafe host {viz_host!r}")
    return [
        "bokeh", "serve", target, "--address", "0.0.0.0", "--port", str(spec.port),
        "--prefix", prefix, "--allow-websocket-origin", viz_host, "--use-xheaders",
        "--num-procs", "1",
    ]  # fmt: skip


# --- the registry ------------------------------------------------------------

DASH = Framework(
    name="dash", label="Dash / Plotly", badge="Dash", default_port=8050,
    default_callable=DASH_CALLABLE, launch=dash_launch, container_args=dash_container_args,
    prefix_env=dash_prefix_env, env_drop=("DASH_URL_BASE_PATHNAME",),
    # gunicorn >= 27: the launch passes --no-control-socket
    env_requires=("dash>=4,<5", "gunicorn>=27,<28"),
)  # fmt: skip
BOKEH = Framework(
    name="bokeh", label="Bokeh", badge="Bokeh", default_port=5006,
    launch=bokeh_launch, container_args=bokeh_container_args,
    app_name=lambda source: bokeh_app(source)[1],
    # bokeh serve answers 200 with an empty page when main.py raises, and only logs it
    log_error="Error running application handler",
    env_requires=("bokeh>=3.4,<4",),
)  # fmt: skip


def registry(*entries: Framework) -> dict[str, Framework]:
    """``{name: entry}``; a name must be short lowercase letters and digits,
    so it fits the database column and its check constraint as it is."""
    for fw in entries:
        if not NAME_RE.match(fw.name):
            raise ValueError(f"bad framework name {fw.name!r}")
    return {fw.name: fw for fw in entries}


FRAMEWORKS: dict[str, Framework] = registry(DASH, BOKEH)


def get(name: str) -> Framework:
    """The registry entry for ``name``; :class:`UnknownFramework` if there is none."""
    try:
        return FRAMEWORKS[name]
    except KeyError:
        raise UnknownFramework(f"Unknown framework {name!r}.") from None


def names_text() -> str:
    """``dash or bokeh`` (``dash, bokeh or panel``): for messages to a person."""
    *rest, last = FRAMEWORKS
    return f"{', '.join(rest)} or {last}" if rest else last
