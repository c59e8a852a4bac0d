"""Request checks that hold for every route, before any view runs, and the
headers every answer of Dormouse's carries (see :class:`SecurityHeaders`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import Flask, Response, abort, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

from .backends.local_commands import split_host
from .checked_signatures import CheckedSignatures
from .config import Settings

# Asked by machines, not browsers, by whatever name reaches them: Traefik's
# forwardAuth (the internal address), health probes and Prometheus (a pod's IP).
ANY_HOST_ENDPOINTS = frozenset({"gate.check", "gallery.healthz", "metrics.scrape"})
GATE_PATH = "/_auth/viz"
EMBEDDERS = "embed_origins"  # g's key: the viz page's app's embed allow-list
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
        # shown inside Dormouse's own page (a stopped app's iframe), so framing
        # it must stay allowed; a plain text needs nothing else
        response.headers["Content-Security-Policy"] = "default-src 'none'"
        return response
    if not is_trusted(host, settings.trusted_hosts):
        abort(400)
    return None


SCALARS = (str, int, float, bool, type(None))


class SessionsForPeople(SecureCookieSessionInterface):
    """Flask's cookie session, left unopened for the gate: Traefik asks it
    about every app request and it needs no session (nor the signer that
    opening one builds).

    A cookie whose signature was checked is remembered (per worker, bounded,
    least recently used first): a viz page sends the same cookie with every
    ping and poll, and checking it (building the signer, the HMAC, decoding)
    cost those hot paths about a sixth of their time (bench/hot_paths.py).
    Only cookies that passed are kept, only if every value is a plain
    scalar (a list such as the flashed messages is changed in place, so it
    must come fresh from the cookie), and the age is checked on every hit as
    itsdangerous checks it. The key is the cookie and the secret keys."""

    def __init__(self) -> None:
        # (cookie, keys...) -> the session's items, and when it was signed
        self._checked: CheckedSignatures[tuple[tuple[str, object], ...]] = CheckedSignatures()

    def remembered(self, app: Flask, value: str) -> dict[str, object] | None:
        """The session in cookie ``value`` if its check passed before and it
        has not expired since; None if it must be checked (again)."""
        key = (value, app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        items = self._checked.get(key, app.permanent_session_lifetime.total_seconds())
        return None if items is None else dict(items)

    def open_session(self, app: Flask, request):  # type: ignore[no-untyped-def, override]
        if request.path == GATE_PATH:
            return None  # Flask uses a null session, and saves nothing
        value = request.cookies.get(self.get_cookie_name(app))
        if not value or not app.secret_key:
            return super().open_session(app, request)
        found = self.remembered(app, value)
        if found is not None:
            return self.session_class(found)
        key = (value, app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        max_age = int(app.permanent_session_lifetime.total_seconds())
        serializer = self.get_signing_serializer(app)
        try:
            data, when = serializer.loads(value, max_age=max_age, return_timestamp=True)  # type: ignore[union-attr]
        except BadSignature:
            return self.session_class()
        if isinstance(data, dict) and all(isinstance(v, SCALARS) for v in data.values()):
            self._checked.put(key, tuple(data.items()), int(when.timestamp()))
        return self.session_class(data)


# --- response headers -----------------------------------------------------------

# An origin a publisher may let embed an app's viz page: scheme://host[:port],
# lowercase, nothing else (no path, wildcard, quote, space or semicolon), so
# it can go into the CSP header as it is.
ORIGIN_RE = re.compile(
    r"^https?://(?=[^:]{1,253}(?::|\Z))[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*(?::([1-9][0-9]{0,4}))?\Z"
)
MAX_EMBED_ORIGINS = 20
HSTS = "max-age=31536000"  # a year; no includeSubDomains, no preload: see README


def normal_origin(value: str) -> str | None:
    """``value`` as an origin for ``frame-ancestors`` (lower-cased, one
    trailing ``/`` dropped), or None if it is anything else."""
    origin = value.strip().lower()
    origin = origin[:-1] if origin.endswith("/") else origin
    found = ORIGIN_RE.match(origin)
    if found is None or (found.group(1) and int(found.group(1)) > 65535):
        return None
    return origin


def parse_embed_origins(text: str) -> tuple[list[str], str | None]:
    """The origins in ``text`` (separated by spaces, commas or lines), or an
    error for a person."""
    origins: list[str] = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        origin = normal_origin(item)
        if origin is None:
            shown = item if len(item) <= 80 else item[:77] + "..."
            return [], (
                f"{shown!r} is not a site's origin: write scheme://host[:port], "
                "e.g. https://blog.example.org (no path, no wildcard)."
            )
        if origin not in origins:
            origins.append(origin)
    if len(origins) > MAX_EMBED_ORIGINS:
        return [], f"At most {MAX_EMBED_ORIGINS} sites."
    return origins, None


def content_security_policy(viz_origin: str, embedders: Iterable[str] = ()) -> str:
    """Scripts, styles and everything else from our own static files only (no
    inline code anywhere, htmx's indicator style off, no eval); frames from
    the apps' host only; framed by Dormouse's own pages and ``embedders``."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            f"frame-src {viz_origin}",
            " ".join(("frame-ancestors 'self'", *embedders)),
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
        )
    )


def embed_origins(stored: Iterable[object]) -> list[str]:
    """The sites an app lets embed its viz page, each checked again (whatever
    is stored, only origins reach the header)."""
    return [o for o in (normal_origin(v) for v in stored if isinstance(v, str)) if o is not None]


class SecurityHeaders:
    """The ``after_request`` hook that gives every answer of Dormouse's its
    security headers, built once from the settings. The gate's answers are
    skipped first thing: Traefik asks it about every app request, and only
    reads its status.

    A response that already has a CSP keeps it (and gets no X-Frame-Options).
    A viz page whose app names sites that may embed it lets them frame it (the
    page's view hands them over in ``g``, from the app it loaded); every other page may be framed only by
    Dormouse's own pages. HSTS goes with every answer over HTTPS, and with
    every answer when cookies are secure-only (an HTTPS-only site: behind a
    proxy gunicorn does not trust, the scheme is not known; browsers ignore
    HSTS over plain HTTP)."""

    def __init__(self, settings: Settings) -> None:
        self.viz_origin = settings.viz_origin
        self.csp = content_security_policy(settings.viz_origin)
        self.hsts_always = settings.secure_cookies

    def __call__(self, response: Response) -> Response:
        if request.path == GATE_PATH:
            return response
        headers = response.headers
        if "Content-Security-Policy" not in headers:
            embedders = self.embedders(response)
            if embedders:
                headers["Content-Security-Policy"] = content_security_policy(self.viz_origin, embedders)
            else:
                headers["Content-Security-Policy"] = self.csp
                headers["X-Frame-Options"] = "SAMEORIGIN"  # for browsers without frame-ancestors
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        if self.hsts_always or request.is_secure:
            headers["Strict-Transport-Security"] = HSTS
        if request.blueprint == "viz":
            headers["X-Robots-Tag"] = "noindex, nofollow"
        return response

    @staticmethod
    def embedders(response: Response) -> list[str]:
        if request.endpoint != "viz.page" or response.status_code != 200:
            return []
        return embed_origins(g.get(EMBEDDERS, ()))


def init_app(app: Flask) -> None:
    app.before_request(check_host)
    app.session_interface = SessionsForPeople()
    app.after_request(SecurityHeaders(app.config["DORMOUSE"]))
