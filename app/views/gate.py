"""The front door's check: Traefik's forwardAuth asks here about every request
to an app, and passes it on only when this answers 200.

A request passes with the deployment's session cookie (signature and claims
only, no database query), or with a one-time entry token in its query
(``?dormouse_token=``), which is exchanged once for that cookie. Everything
else is 401 and never reaches the app. See :mod:`app.tokens`.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from flask import Blueprint, Response, request

from .. import lifecycle, slugs, tokens
from ..security import GATE_PATH, host_of
from ..traefik_config import AUTH_COOKIE

log = logging.getLogger(__name__)
bp = Blueprint("gate", __name__)

TOKEN_PARAM = "dormouse_token"
COOKIE = AUTH_COOKIE  # Traefik copies it to the browser: addAuthCookiesToResponse


def _deny(why: str) -> Response:
    log.debug("refused: %s", why)
    response = Response("Not authorized to view this app.\n", 401, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(GATE_PATH)
def check() -> Response:
    forwarded = urlsplit(request.headers.get("X-Forwarded-Uri", ""))
    found = slugs.prefix_of(forwarded.path)
    if found is None:
        return _deny("not an app path")
    prefix, public_name = found
    settings = lifecycle.settings()
    cookie = request.cookies.get(COOKIE)
    if cookie:
        try:
            tokens.verify_session(settings.jwt_keys, cookie, public_name=public_name)
            return Response(status=200)
        except tokens.TokenError:
            pass  # an old or foreign cookie: an entry token may still open the door
    entry = parse_qs(forwarded.query).get(TOKEN_PARAM, [""])[0]
    if not entry:
        return _deny("no token")
    try:
        claims = tokens.verify(settings.jwt_keys, entry, public_name=public_name, kind=tokens.ENTRY)
    except tokens.TokenError as exc:
        return _deny(str(exc))
    if not lifecycle.is_live(public_name):
        return _deny("the deployment is not live")
    if not tokens.consume(claims):
        return _deny("entry token already used")
    session = tokens.issue(settings.jwt_keys, public_name=public_name, subject=claims.subject,
                           kind=tokens.SESSION, ttl=settings.viz_session_ttl)  # fmt: skip
    response = Response(status=200)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        COOKIE, session, max_age=int(settings.viz_session_ttl), path=prefix, httponly=True,
        **cookie_policy(request.headers.get("X-Forwarded-Proto", ""),
                        request.headers.get("X-Forwarded-Host", "")),
    )  # fmt: skip
    return response


def cookie_policy(proto: str, host: str) -> dict[str, object]:
    """How the app cookie is kept by a browser that shows the app in an iframe.

    Where a ``Secure`` cookie can be set (HTTPS, or ``*.localhost``, which
    browsers treat as a secure context), it is ``SameSite=None; Secure;
    Partitioned``: kept by the iframe whether or not Dormouse's page and the
    apps' host are the same site, and only ever in the partition of the page
    that embeds it. Over plain HTTP elsewhere it can only be ``Lax``, which an
    iframe keeps when Dormouse and the apps' host are the same site
    (``example.org`` and ``viz.example.org``)."""
    name = host_of(host)
    if proto == "https" or name == "localhost" or name.endswith(".localhost"):
        return {"secure": True, "samesite": "None", "partitioned": True}
    return {"secure": False, "samesite": "Lax"}
