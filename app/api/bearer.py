"""Who calls the API: the user of a valid bearer token, and nobody else.

Every API request but the OpenAPI description must carry
``Authorization: Bearer <token>``; a session cookie is never looked at. A
missing token, or another scheme, is answered 401 with a bare ``Bearer``
challenge; any token that is not accepted (malformed, badly signed, expired,
revoked, for another audience, of a disabled user...) 401 with
``error="invalid_token"`` (RFC 6750). The reason goes to the log, never the
token.

Once the token passes, its user becomes Flask-Login's current user for this
request (``g._login_user``, which Flask-Login reads before any cookie), so
the shared helpers (:func:`app.views.gallery.visible_app`,
:func:`app.auth.may_manage`, the rate limits' per-user keys) see the token's
user, not whoever the browser's cookie names.
"""

from __future__ import annotations

import logging

from flask import Response, current_app, g, jsonify, request

from .. import api_tokens
from ..tokens import TokenError

log = logging.getLogger(__name__)

REALM = "dormouse"
PUBLIC_ENDPOINTS = frozenset({"api.openapi"})


def error(status: int, message: str, **extra: object) -> Response:
    """The API's error answer: ``{"error": ..., "status": ...}``."""
    response = jsonify({"error": message, "status": status, **extra})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def unauthorized(message: str, *, invalid: bool) -> Response:
    response = error(401, message)
    challenge = f'Bearer realm="{REALM}"'
    if invalid:
        challenge += ', error="invalid_token", error_description="The token is not valid."'
    response.headers["WWW-Authenticate"] = challenge
    return response


def authenticate() -> Response | None:
    """The blueprint's ``before_request``: None to go on, or the 401."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return unauthorized("Send an API token: Authorization: Bearer <token>.", invalid=False)
    try:
        row = api_tokens.authenticate(current_app.config["DORMOUSE"].jwt_keys, token.strip())
    except TokenError as exc:
        log.info("API token refused on %s %s: %s", request.method, request.path, exc)
        return unauthorized("The token is not valid.", invalid=True)
    g.api_token = row
    g._login_user = row.user  # Flask-Login's current user for this request; no cookie is read
    return None
