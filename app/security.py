"""Request checks that hold for every route, before any view runs."""

from __future__ import annotations

from flask import Flask, Response, abort, current_app, request
from flask.sessions import SecureCookieSessionInterface

from .backends.local_commands import split_host

# Asked by machines, not browsers, by whatever name reaches them: Traefik's
# forwardAuth (the internal address) and health probes (a pod's IP).
ANY_HOST_ENDPOINTS = frozenset({"gate.check", "gallery.healthz"})
GATE_PATH = "/_auth/viz"
NOT_HERE = "No app is being served at this address now. Reload the page that showed it.\n"


def host_of(header: str) -> str:
    """The host part of a Host header, lower-cased, IPv6 brackets dropped."""
    return split_host(header).strip("[]").rstrip(".").lower()


def is_trusted(host: str, trusted: tuple[str, ...]) -> bool:
    """``host`` is one of ``trusted``, or under a ``.parent`` entry of it."""
    return any(
        host == entry or (entry.startswith(".") and (host.endswith(entry) or host == entry[1:]))
        for entry in trusted
    )


def check_host() -> Response | None:
    """Dormouse's pages answer only on ``TRUSTED_HOSTS``; URLs are built from
    configuration, so a forged ``Host`` header changes nothing but gets 400.

    On ``VIZ_HOST``, only a request no app route took reaches Dormouse (a
    stopped deployment's iframe, say): it gets a plain 404, never a page of
    Dormouse's. A header that is no host at all is 400 too (Werkzeug reads it
    as an empty host)."""
    if not request.host:
        abort(400)
    if request.endpoint in ANY_HOST_ENDPOINTS:
        return None
    settings = current_app.config["DORMOUSE"]
    host = host_of(request.host)
    if host == settings.viz_host:
        response = Response(NOT_HERE, 404, mimetype="text/plain")
        response.headers["Cache-Control"] = "no-store"
        return response
    if not is_trusted(host, settings.trusted_hosts):
        abort(400)
    return None


class SessionsForPeople(SecureCookieSessionInterface):
    """Flask's cookie session, left unopened for the gate: Traefik asks it
    about every app request and it needs no session (nor the signer that
    opening one builds)."""

    def open_session(self, app: Flask, request):  # type: ignore[no-untyped-def, override]
        if request.path == GATE_PATH:
            return None  # Flask uses a null session, and saves nothing
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.before_request(check_host)
    app.session_interface = SessionsForPeople()
