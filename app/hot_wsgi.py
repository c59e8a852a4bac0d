"""The viz page's hottest answers given before Flask: a JSON status poll or
a ping of a published app's deployment that this worker read less than a
second ago (:mod:`app.status_memo`), from a visitor whose session cookie
and CSRF token this worker already checked.

Flask's machinery (the request context, routing, the hooks, the session)
cost these answers about three times what the answer itself costs
(bench/hot_paths.py). :class:`HotAnswers` answers them itself only when
every step is one it can take exactly as Flask would, with the same
result, and otherwise passes the request, untouched, to Flask:

- the route (``GET /<owner>/<title>/viz/status?deployment=...`` or ``POST
  .../viz/ping`` with ``deployment=...`` url-encoded), ``Accept:
  application/json`` exactly and no ``HX-Request``;
- the host is one of Dormouse's own (``check_host``); anything else goes to
  Flask, which refuses it;
- the session cookie's check is remembered (``SessionsForPeople.remembered``),
  the session holds nothing Flask-Login would act on (no remember-me
  operation, not permanent), and for a ping the ``X-CSRFToken`` header's
  check is remembered (``RememberingCSRF.remembered``) and matches the
  session's token (and, over HTTPS, the referrer is this site, as
  Flask-WTF's strict check asks);
- the memo has the deployment, the app is published (nobody's identity is
  needed to show it), the deployment is neither starting nor failed (those
  answers depend on the backend or on who asks), and for a ping no write is
  due (:func:`app.status_memo.needs_write`);

and answers with the body and headers Flask would (``plain_payload``,
the security headers of :class:`app.security.SecurityHeaders`). A wrong
token, a stranger to a private app, a memo miss: Flask answers, as before.

The same for the HTMX status partial (``HX-Request``, HTTP 286) of a
running deployment of a published app, when the viewer is anonymous and
Flask-Login would leave the session as it is (no user, no remember-me
cookie, no request or header loader, session protection with nothing to
do): its text as Flask last rendered it for the same shape
(:mod:`app.running_partial`; a miss goes to Flask, which renders and
remembers it) around a fresh entry token for ``anonymous``, once the
entry-token limit has counted the client (``memory://`` only; a refusal
goes to Flask, which refuses it too, a refused hit not being counted).

Flask's app-wide hooks do not run for the answers given here: a hook added
to Flask later (a header, a check) must be mirrored here, or make these
requests go to Flask. tests/test_hot_wsgi.py compares the two answers.
"""

from __future__ import annotations

import hmac
import io
import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from flask_wtf.csrf import same_origin
from werkzeug.http import parse_cookie

from . import clients, lifecycle, metrics, rate_limits, running_partial, tokens
from .config import Settings
from .extensions import csrf, login_manager
from .idle import IdleLimits
from .security import HSTS, SecurityHeaders, host_of, is_trusted
from .status_memo import EXTENSION, Seen, StatusMemo, needs_write

PATH = re.compile(r"/([a-z0-9][a-z0-9-]*)/([a-z0-9][a-z0-9-]*)/viz/(status|ping)\Z")
# What a session may hold for Flask to do nothing with it on these answers
# but read it (Flask-Login acts on "_remember"; Flask re-signs a "_permanent" one).
PLAIN_SESSION = frozenset({"csrf_token", "_fresh", "_user_id", "_id"})
MAX_BODY = 1024
HTML = "text/html; charset=utf-8"
PARTIAL_STATUS = "286 UNKNOWN"  # Werkzeug's status line for htmx's "stop polling"
HTML_HEADERS = (
    ("Content-Type", HTML),
    ("Cache-Control", "no-store"),
    ("Vary", "HX-Request, Accept, Cookie"),
)
JSON_HEADERS = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Vary", "HX-Request, Accept, Cookie"),
)


class HotAnswers:
    """WSGI middleware in front of Flask (see the module's docstring)."""

    def __init__(self, flask_app: Flask, wsgi_app: Callable[..., Any]) -> None:
        self.flask_app = flask_app
        self.next = wsgi_app
        config = flask_app.config
        settings: Settings = config["DORMOUSE"]
        self.settings = settings
        self.limits: IdleLimits = lifecycle.limits(settings)  # the same as Flask's answers use
        self.memo: StatusMemo = flask_app.extensions[EXTENSION]
        self.cookie_name = config["SESSION_COOKIE_NAME"]
        self.remember_cookie = config.get("REMEMBER_COOKIE_NAME", "remember_token")
        # only when Flask would check every POST's token, and never touch the remember cookie here
        self.enabled = bool(
            config.get("WTF_CSRF_ENABLED", True)
            and config.get("WTF_CSRF_CHECK_DEFAULT", True)
            and not config.get("REMEMBER_COOKIE_REFRESH_EACH_REQUEST")
            and "POST" in config.get("WTF_CSRF_METHODS", ("POST",))
        )
        secure = SecurityHeaders(settings)
        self.security = (
            ("Content-Security-Policy", secure.csp),
            ("X-Frame-Options", "SAMEORIGIN"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
        )
        self.hsts_always = secure.hsts_always
        self.answered = 0  # for tests and curiosity: answers given here

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = self.answer(environ) if self.enabled else None
        if found is None:
            return self.next(environ, start_response)
        self.answered += 1
        body, headers = found
        start_response(PARTIAL_STATUS if ("Content-Type", HTML) in headers else "200 OK", headers)
        return [body]

    def answer(self, environ: dict[str, Any]) -> tuple[bytes, list[tuple[str, str]]] | None:
        matched = PATH.match(environ.get("PATH_INFO", ""))
        if matched is None:
            return None
        owner, title, kind = matched.groups()
        method = environ.get("REQUEST_METHOD")
        if (kind, method) not in (("status", "GET"), ("ping", "POST")):
            return None
        if "HTTP_HX_REQUEST" in environ:  # the running partial of a status poll, HTTP 286
            if kind != "status" or not environ["HTTP_HX_REQUEST"]:
                return None
            kind = "partial"
        elif environ.get("HTTP_ACCEPT") != "application/json":
            return None
        host_header = environ.get("HTTP_HOST", "")
        host = host_of(host_header) if host_header else ""
        if not host or host == self.settings.viz_host or not is_trusted(host, self.settings.trusted_hosts):
            return None
        session = self._session(environ)
        if session is None or (kind == "partial" and not self._anonymous(environ, session)):
            return None
        https = environ.get("wsgi.url_scheme") == "https"
        if kind == "ping":
            if not self._csrf_passes(environ, session, host_header, https):
                return None
            public_name = self._ping_body(environ)
        else:
            public_name = _first(environ.get("QUERY_STRING", ""), "deployment")
        if not public_name:
            return None
        return self._status(environ, (owner, title, public_name), kind, https)

    def _session(self, environ: dict[str, Any]) -> dict[str, object] | None:
        value = parse_cookie(environ).get(self.cookie_name)
        if not value:
            return {}  # Flask's empty session: nothing to save
        session = self.flask_app.session_interface.remembered(self.flask_app, value)  # type: ignore[attr-defined]
        if session is None or not PLAIN_SESSION.issuperset(session):
            return None
        return session

    def _csrf_passes(
        self, environ: dict[str, Any], session: dict[str, object], host: str, https: bool
    ) -> bool:
        data = environ.get("HTTP_X_CSRFTOKEN")
        expected = session.get(self.flask_app.config.get("WTF_CSRF_FIELD_NAME") or "csrf_token")
        if not data or not isinstance(expected, str):
            return False
        config = self.flask_app.config
        secret_key = config.get("WTF_CSRF_SECRET_KEY") or self.flask_app.secret_key
        token = csrf.remembered(data, secret_key, config.get("WTF_CSRF_TIME_LIMIT", 3600))
        if token is None or not hmac.compare_digest(expected, token):
            return False
        if https and config.get("WTF_CSRF_SSL_STRICT", True):
            referrer = environ.get("HTTP_REFERER")
            return bool(referrer) and same_origin(referrer, f"https://{host}/")
        return True

    def _ping_body(self, environ: dict[str, Any]) -> str:
        """The ping's ``deployment`` field; the body is put back for Flask
        should this answer not be given here."""
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if mimetype != "application/x-www-form-urlencoded":  # a browser adds ;charset=UTF-8
            return ""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return ""
        if not 0 < length <= MAX_BODY:
            return ""
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return _first(body.decode("utf-8", "replace"), "deployment")

    def _status(
        self, environ: dict[str, Any], key: tuple[str, str, str], kind: str, https: bool
    ) -> tuple[bytes, list[tuple[str, str]]] | None:
        from .views import viz  # the views' clock and payload (imported once the app is built)

        now = viz.utcnow()
        seen = self.memo.seen(key, now=now)
        if seen is None or not seen.app.published:
            return None
        dep = seen.deployment
        if dep.status in ("starting", "failed"):
            return None
        if kind == "partial":
            return self._partial(environ, seen, now, https)
        if kind == "ping":
            due = needs_write(
                self.memo.known_ping(dep.id), now=now, resolution=self.settings.activity_resolution
            )
            if dep.is_live and due:
                return None  # Flask writes it
            metrics.record_ping()
        payload = viz.plain_payload(dep, now=now, limits=self.limits, url=dep.url, reason=dep.status_reason)
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = [*JSON_HEADERS, ("Content-Length", str(len(body))), *self.security]
        if self.hsts_always or https:
            headers.append(("Strict-Transport-Security", HSTS))
        headers.append(("X-Robots-Tag", "noindex, nofollow"))
        return body, headers

    def _anonymous(self, environ: dict[str, Any], session: dict[str, object]) -> bool:
        """Whether Flask-Login would find an anonymous viewer and leave the
        session as it is: no user in it, no remember-me cookie or request
        or header loader to find one by, and session protection with nothing to do (an
        empty session, or one "basic" protection already marked not fresh)."""
        if "_user_id" in session or self.remember_cookie in parse_cookie(environ):
            return False
        if login_manager._request_callback is not None or login_manager._header_callback is not None:
            return False
        mode = self.flask_app.config.get("SESSION_PROTECTION", login_manager.session_protection)
        if mode not in ("basic", "strong") or not session:
            return True
        return mode == "basic" and session.get("_fresh") is False

    def _partial(
        self, environ: dict[str, Any], seen: Seen, now: datetime, https: bool
    ) -> tuple[bytes, list[tuple[str, str]]] | None:
        """A running app's status partial (app/running_partial.py) for an
        anonymous viewer: its remembered text around a fresh entry token,
        after the entry-token limit (last: a request passed on to Flask must
        not have been counted here)."""
        from .views import viz

        dep = seen.deployment
        if dep.status != "running" or not dep.url:
            return None
        payload = viz.plain_payload(dep, now=now, limits=self.limits, url=dep.url, reason=dep.status_reason)
        parts = running_partial.for_app(self.flask_app).parts(
            running_partial.shape(seen.app, payload, dep.url)
        )
        if parts is None:
            return None  # Flask renders it and remembers the text
        limiter = self.flask_app.extensions.get(rate_limits.EXTENSION)
        if limiter is not None and limiter.enabled:
            limit = self.flask_app.extensions.get(rate_limits.ENTRY_TOKENS)
            if limit is None or limit.windows is None:
                return None  # counted in Redis: Flask's path
            client = clients.client_key_of(environ, self.settings.backend)
            if limit.windows.hit(client, now=limit.clock()) is not None:
                return None  # refused: Flask refuses it too (a refusal is not counted)
        token = tokens.issue(
            self.settings.jwt_keys, public_name=dep.public_name, subject="anonymous", kind=tokens.ENTRY,
            ttl=self.settings.viz_token_ttl,
        )  # fmt: skip
        body = (parts[0] + token + parts[1]).encode()
        headers = [*HTML_HEADERS, ("Content-Length", str(len(body))), *self.security]
        if self.hsts_always or https:
            headers.append(("Strict-Transport-Security", HSTS))
        headers.append(("X-Robots-Tag", "noindex, nofollow"))
        return body, headers


def _first(query: str, name: str) -> str:
    for key, value in parse_qsl(query):
        if key == name:
            return value
    return ""


def init_app(app: Flask) -> None:
    """Outermost: before ForwardedFor and Flask (the one answer here that
    depends on the client's address, the partial's limit, reads it as
    ForwardedFor does: ``clients.client_key_of``)."""
    app.wsgi_app = HotAnswers(app, app.wsgi_app)  # type: ignore[method-assign]
