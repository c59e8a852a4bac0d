"""The interface every deployment backend implements.

A backend turns an :class:`AppSpec` into something running (a child process, a
Kubernetes Deployment, ...) and answers questions about it. The lifecycle module
(:mod:`app.lifecycle`) is the only caller; it stores the opaque ``ref`` a backend
returns from :meth:`Backend.create` on the Deployment row and hands it back on
every later call, so a backend keeps no state that must survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

State = Literal["starting", "running", "failed", "gone"]


class BackendError(Exception):
    """A backend could not do what was asked; the message is safe to show a person."""


@dataclass(frozen=True)
class AppSpec:
    """Everything a backend needs to run one deployment of a published app.

    ``owner`` and ``title`` are validated slugs and ``public_name`` the run's
    public name (see :mod:`app.slugs`, which also makes ``deployment_name`` and
    ``prefix`` from them); ``prefix`` is the URL path the app must serve under,
    ``/<owner>/<title>/<public_name>/``.
    """

    owner: str
    title: str
    framework: str  # a name in app.backends.frameworks.FRAMEWORKS, e.g. "dash"
    deployment_name: str  # stable per deployment, e.g. "alice-sliders-default-x7k2p9"
    prefix: str  # "/alice/sliders/default-x7k2p9/" - always starts and ends with "/"
    source: str | None = None  # local backend: file path relative to APPS_DIR
    callable: str | None = None  # Dash only: WSGI callable in the source module
    image: str | None = None  # cluster backends: container image reference
    command: str | None = None  # cluster backends: optional command override
    port: int = 8050
    cpu: str = "500m"
    memory: str = "512Mi"
    env: dict[str, str] = field(default_factory=dict)
    deployment_id: int = 0  # the database row's id, for labels
    public_name: str = ""  # "default-x7k2p9"; cluster backends name objects after it
    python: str | None = None  # local backend: the app's environment's bin/python (app/app_envs.py)


@dataclass(frozen=True)
class BackendStatus:
    """What a backend knows about one deployment right now.

    ``state`` is ``starting`` until the app answers HTTP 200 at its prefix,
    ``running`` after, ``failed`` when it exited or cannot start (``reason`` says
    why, in words a person understands), and ``gone`` when nothing is there any
    more (stopped elsewhere, lost in a restart). ``phase`` is a short progress
    line for the viz page while starting ("Waiting for the app to answer").
    """

    state: State
    reason: str = ""
    phase: str = ""


class Backend(Protocol):
    name: str

    def create(self, spec: AppSpec) -> str:
        """Start the app; return an opaque ref (short string) for later calls.

        Must not block until the app is ready. Raises BackendError when it
        cannot even start (no free port, bad source, ...).
        """

    def status(self, ref: str) -> BackendStatus:
        """Report the deployment's state. Cheap enough to call once a second."""

    def stop(self, ref: str) -> None:
        """Stop the deployment and everything it started. Idempotent: stopping
        something already gone is success."""

    def list(self) -> dict[str, str]:
        """Everything this backend has running, as ``{spec.deployment_name: ref}``
        (for reconcile: names come from the database row, which exists before
        ``create`` is called, so a deployment being created is never mistaken
        for an orphan)."""

    def logs(self, ref: str, max_bytes: int) -> str:
        """The last ``max_bytes`` (at most) of the deployment's output, as text
        (UTF-8, undecodable bytes replaced), oldest line first; "" when there is
        none. A deployment that is gone is no error: what is left of its output
        is returned (the local log file outlives the process; a pod's log goes
        with the pod, so ""). Raises BackendError only when the backend cannot
        be asked (an unreadable ref, a cluster that is unreachable or refuses).
        The text is the app's own output: untrusted, to be shown escaped only."""

    def url(self, ref: str) -> str:
        """The URL the visitor's iframe loads: the app's path on the apps' host
        (``VIZ_HOST``), from configuration only, never from a request."""
