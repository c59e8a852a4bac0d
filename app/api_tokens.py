"""Bearer tokens for the REST API (``/api/v1/``): made on the tokens page or
with ``flask tokens issue``, sent as ``Authorization: Bearer <token>``.

A token is an HS256 JWT. Its keys are :mod:`app.tokens`' ``JWT_KEYS``, each
secret derived for this one purpose (:func:`app.tokens.purpose_keys`), under
the same key ids: the header's ``kid`` names the key, the first key signs and
every key verifies, so rotating ``JWT_KEYS`` rotates these too (add the new
key first; an old key's API tokens stop working when it is removed, so keep
it until they expire, at most ``API_TOKEN_MAX_TTL``). An app's entry or
session token is signed with other keys and for another audience, so it can
never pass as an API token, nor the other way round.

Claims: ``iss`` (``dormouse``), ``aud`` (``dormouse-api``), ``sub`` (the
user's id: stable, and checked against the token's row), ``iat``, ``nbf``,
``exp`` and ``jti`` (random). Each token has a row (:class:`ApiToken`) under
its ``jti``: who, a label, created, expires, revoked, last used. A token is
accepted when its signature and claims hold (``LEEWAY`` seconds of skew) **and**
its row exists, is not revoked and belongs to ``sub`` **and** that user exists
and is not disabled. The token string is shown once and never stored or logged.
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from datetime import datetime, timedelta

import jwt
from sqlalchemy import or_, select, update

from . import tokens
from .extensions import db
from .models import ApiToken, User, utcnow
from .tokens import ALGORITHM, ISSUER, Keys, TokenError

log = logging.getLogger(__name__)

AUDIENCE = "dormouse-api"
KEY_PURPOSE = "dormouse-api-token"
MAX_LABEL = 80
#: ``last_used_at`` is written only when the stored one is older than this:
#: a script calling the API many times a second costs one write a minute.
USE_RESOLUTION = timedelta(seconds=60)


class ApiTokenError(ValueError):
    """A token cannot be made as asked; the message is for the person asking."""


def api_keys(jwt_keys: Keys) -> Keys:
    return tokens.purpose_keys(jwt_keys, KEY_PURPOSE)


def ttl_error(ttl: float, max_ttl: float) -> str | None:
    """Why ``ttl`` seconds is no lifetime for a token, or None."""
    if ttl <= 0:
        return "A token must live for a positive number of seconds."
    if ttl > max_ttl:
        return f"A token may live at most {int(max_ttl)} seconds ({max_ttl / 86400:g} days)."
    return None


def label_error(label: str) -> str | None:
    if len(label) > MAX_LABEL:
        return f"Keep the label under {MAX_LABEL} characters."
    if any(unicodedata.category(c).startswith("C") for c in label):
        return "The label must not contain control characters."
    return None


def issue(
    user: User, *, ttl: float, label: str, jwt_keys: Keys, max_ttl: float, now: datetime | None = None
) -> tuple[str, ApiToken]:
    """Make a token for ``user``: its row, and the signed token (to show once).
    :class:`ApiTokenError` when the lifetime or the label is refused, or the
    account is disabled."""
    now = now or utcnow()
    label = label.strip()
    if (err := ttl_error(ttl, max_ttl) or label_error(label)) is not None:
        raise ApiTokenError(err)
    if not user.is_active:
        raise ApiTokenError(f"The account {user.username!r} is disabled.")
    # whole seconds: the JWT's exp and the row's expires_at say the same
    now = now.replace(microsecond=0)
    row = ApiToken(
        jti=secrets.token_urlsafe(24),
        user_id=user.id,
        label=label,
        created_at=now,
        expires_at=now + timedelta(seconds=int(ttl)),
    )
    db.session.add(row)
    db.session.commit()
    kid, secret = api_keys(jwt_keys)[0]
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user.id),
        "iat": now,
        "nbf": now,
        "exp": row.expires_at,
        "jti": row.jti,
    }
    token = jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})
    log.info("API token %s issued to %s, expires %s", row.jti, user.username, row.expires_at.isoformat())
    return token, row


def authenticate(jwt_keys: Keys, token: str, *, now: datetime | None = None) -> ApiToken:
    """The token's row if the token may be used now (see the module's
    docstring); :class:`app.tokens.TokenError` saying why not (for logs)."""
    now = now or utcnow()
    claims = tokens.decode(api_keys(jwt_keys), token, audience=AUDIENCE)
    row = db.session.scalar(select(ApiToken).where(ApiToken.jti == str(claims["jti"])))
    if row is None:
        raise TokenError("no such token (jti)")
    if str(row.user_id) != str(claims["sub"]):
        raise TokenError("the token's subject is not its row's user")
    if row.revoked_at is not None:
        raise TokenError(f"token {row.jti} was revoked")
    user = db.session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise TokenError(f"the account of token {row.jti} is disabled")
    touch(row, now)
    return row


def touch(row: ApiToken, now: datetime) -> bool:
    """Record a use, at most once per ``USE_RESOLUTION`` (a conditional
    UPDATE, so workers racing write once)."""
    if row.last_used_at is not None and now - row.last_used_at < USE_RESOLUTION:
        return False
    result = db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == row.id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - USE_RESOLUTION),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(row)
    return bool(result.rowcount)


def revoke(row: ApiToken, *, now: datetime | None = None) -> bool:
    """Revoke the token; False if it was revoked already."""
    result = db.session.execute(
        update(ApiToken)
        .where(ApiToken.id == row.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(row)
    if result.rowcount:
        log.info("API token %s of user %s revoked", row.jti, row.user_id)
    return bool(result.rowcount)


def find(jti: str) -> ApiToken | None:
    return db.session.scalar(select(ApiToken).where(ApiToken.jti == jti))


def tokens_of(user: User) -> list[ApiToken]:
    """The user's tokens, newest first (revoked and expired ones too)."""
    query = select(ApiToken).where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query.order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def state(row: ApiToken, now: datetime) -> str:
    """ "active", "expired" or "revoked", as the tokens page and the CLI say it."""
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= now else "active"
