"""How the local backend launches an app: pure functions from an app spec to
a command line, a working directory, the app's URL path and its environment.
No processes are started here.

What differs between frameworks (the command line, prefix variables, where
the app answers) is asked of its entry in :mod:`app.backends.frameworks`;
this module supplies what is the same for all: where the source is, which
host and port the app listens on and is reached by, and the environment.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Callable
from pathlib import Path

from app import app_environment
from app.backends import frameworks
from app.backends.base import AppSpec, BackendError
from app.backends.frameworks import Launch, LocalHost

ENV_KEEP = {
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "VIRTUAL_ENV", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "no_proxy",
}  # fmt: skip


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


def locate_source(apps_dir: Path, source: str | None) -> Path:
    """Find a stored app's source at launch: its file or directory, which must
    exist inside ``apps_dir`` (symlinks resolved). Raises BackendError.

    (What a publisher types is checked earlier, by
    :func:`app.publishing.check_source_input`; the file may have moved since.)"""
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


def local_host(*, python: str, bind_host: str, viz_authority: str, port: int, stop_grace: float) -> LocalHost:
    """Where an app listens (a loopback address: Traefik is the way in), and
    the ``host[:port]`` its page may be loaded from: the apps' host as the
    browser writes it, and the loopback address Dormouse probes."""
    loopback = bind_literal(bind_host)
    return LocalHost(
        python=python,
        bind_host=bind_host,
        bind=f"{loopback}:{port}",
        port=port,
        origins=tuple(dict.fromkeys((viz_authority, f"{loopback}:{port}"))),
        stop_grace=stop_grace,
    )


def launch(
    spec: AppSpec,
    target: Path,
    *,
    python: str,
    bind_host: str,
    port: int,
    viz_authority: str,
    stop_grace: float = 5.0,
) -> Launch:
    """The command line for ``spec``, whose source was found at ``target``."""
    host = local_host(
        python=python, bind_host=bind_host, viz_authority=viz_authority, port=port, stop_grace=stop_grace
    )
    return frameworks.get(spec.framework).launch(spec, target, host)


def child_env(spec: AppSpec, parent: dict[str, str]) -> dict[str, str]:
    """An allowlist of the server's environment, then the app's own, then the
    framework's prefix variables; Dormouse's secrets are never passed on."""
    fw = frameworks.get(spec.framework)
    reserved = app_environment.refused(spec.env)
    if reserved:  # the lifecycle refuses these first; this backend runs on Dormouse's host
        raise BackendError(f"Reserved environment variables: {', '.join(reserved)}.")
    env = {k: v for k, v in parent.items() if k in ENV_KEEP or k.startswith("LC_")}
    env.update(spec.env)
    env.update(fw.prefix_env(spec.prefix))
    for name in fw.env_drop:
        env.pop(name, None)
    return env


USER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")


def run_as_prefix(user: str, lookup: Callable[[str], pwd.struct_passwd] = pwd.getpwnam) -> list[str]:
    """The argv prefix that runs an app as ``user`` (``LOCAL_RUN_AS``; "" = as
    Dormouse's own user, no prefix).

    ``setpriv`` (util-linux) switches to the user and its primary group, leaves no
    supplementary groups, clears every capability (inheritable and ambient, so
    the app's exec keeps none) and sets no_new_privs (no setuid program or file
    capability can give any back); ``env`` then gives the app the user's own
    home. Dormouse needs CAP_SETUID and CAP_SETGID for this (the container's
    entry point leaves it those, ambient), and CAP_KILL to stop the app."""
    if not user:
        return []
    if not USER_NAME_RE.match(user):
        raise BackendError(f"LOCAL_RUN_AS must be a user name, got {user!r}.")
    try:
        entry = lookup(user)
    except KeyError:
        raise BackendError(f"LOCAL_RUN_AS: there is no user {user!r} on this host.") from None
    return [
        "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
        "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", "--",
        "env", f"HOME={entry.pw_dir}", f"USER={user}", f"LOGNAME={user}",
    ]  # fmt: skip
