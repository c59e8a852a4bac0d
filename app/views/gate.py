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

log = logging.getLogger(__name__)
bp = Blueprint("gate", __name__)

TOKEN_PARAM = "dormouse_token"
COOKIE = "dormouse_viz"  # Traefik: addAuthCookiesToResponse: [dormouse_viz]


def _deny(why: str) -> Response:
    log.debug("refused: %s", why)
    response = Response("Not authorized to view this app.\n", 401, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/_auth/viz")
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
            tokens.verify(settings.jwt_keys, cookie, public_name=public_name, kind=tokens.SESSION)
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
        samesite="Lax", secure=request.headers.get("X-Forwarded-Proto") == "https",
    )  # fmt: skip
    return response
