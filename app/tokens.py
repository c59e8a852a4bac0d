"""Access tokens for app traffic (PyJWT): what Traefik's forwardAuth asks
Dormouse about every request to an app.

Two kinds, both HS256 JWTs signed with ``JWT_KEYS`` (separate from
``SECRET_KEY``; the header's ``kid`` names the key, so keys can rotate):

* an **entry** token, issued to a viewer allowed to see the app when the viz
  page shows its iframe; short-lived (``VIZ_TOKEN_TTL``), bound to one
  deployment (``aud``), and accepted **once**: its ``jti`` is recorded when it
  is exchanged, so a copied or replayed entry URL is refused afterwards;
* a **session** token, what the entry token is exchanged for: set as a cookie
  scoped to the deployment's prefix on the apps' host, it lets every later
  request of that iframe pass (assets, Dash callbacks, Bokeh's websocket) with
  a signature and claims check only - no database query.

Claims: ``iss`` (``dormouse``), ``aud`` (``viz:<public_name>``), ``sub``
(``user:<id>`` or ``anonymous``), ``iat``, ``exp``, ``jti`` and ``kind``. The
algorithm is pinned, so ``alg: none`` or a key-confusion token never passes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import UsedToken, utcnow

ALGORITHM = "HS256"
ISSUER = "dormouse"
ENTRY, SESSION = "entry", "session"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti"]
LEEWAY = 5  # seconds of clock skew tolerated between replicas
SESSION_CACHE_SIZE = 4096  # app cookies remembered as checked, per worker

Keys = tuple[tuple[str, str], ...]  # (key id, secret); the first signs


class TokenError(Exception):
    """The token cannot be accepted; the message says why (for logs, not people)."""


@dataclass(frozen=True)
class Claims:
    deployment: str  # the public name the token is bound to
    subject: str
    kind: str
    jti: str
    expires_at: datetime


def audience(public_name: str) -> str:
    return f"viz:{public_name}"


def issue(
    keys: Keys, *, public_name: str, subject: str, kind: str, ttl: float, now: datetime | None = None
) -> str:
    """A signed token of ``kind`` for deployment ``public_name``."""
    now = now or utcnow()
    kid, secret = keys[0]
    claims = {
        "iss": ISSUER,
        "aud": audience(public_name),
        "sub": subject,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": secrets.token_urlsafe(16),
        "kind": kind,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})


def decode(keys: Keys, token: str, *, audience: str, issuer: str = ISSUER) -> dict[str, object]:
    """The claims of ``token`` if its header names one of ``keys`` (``kid``),
    it is HS256 (pinned: ``alg: none`` or a key-confusion token never passes),
    its signature holds and its ``aud``, ``iss``, ``exp`` (``LEEWAY`` of skew)
    and required claims are right; :class:`TokenError` otherwise. Shared by
    these app tokens and the API's bearer tokens (:mod:`app.api_tokens`)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"malformed token: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError(f"algorithm {header.get('alg')!r} is not accepted")
    secret = dict(keys).get(str(header.get("kid")))
    if secret is None:
        raise TokenError(f"unknown key id {header.get('kid')!r}")
    try:
        return jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=audience, issuer=issuer,
            leeway=LEEWAY, options={"require": REQUIRED_CLAIMS},
        )  # fmt: skip
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"{type(exc).__name__}: {exc}") from None


def purpose_keys(keys: Keys, purpose: str) -> Keys:
    """``keys`` with each secret replaced by one derived for ``purpose``
    (HMAC-SHA256 of the purpose under the secret), under the same key ids: one
    ``JWT_KEYS`` setting, rotated as one, but a token signed for one purpose
    never verifies for another."""
    return tuple(
        (kid, hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()) for kid, secret in keys
    )


def verify(keys: Keys, token: str, *, public_name: str, kind: str) -> Claims:
    """The token's claims if it is ours, unexpired, of ``kind`` and bound to
    deployment ``public_name``; :class:`TokenError` otherwise."""
    claims = decode(keys, token, audience=audience(public_name))
    if claims.get("kind") != kind:
        raise TokenError(f"a {claims.get('kind')!r} token where a {kind!r} one is needed")
    return Claims(
        deployment=public_name, subject=str(claims["sub"]), kind=kind, jti=str(claims["jti"]),
        expires_at=datetime.fromtimestamp(float(claims["exp"]), tz=UTC),  # type: ignore[arg-type]
    )  # fmt: skip


@functools.lru_cache(maxsize=SESSION_CACHE_SIZE)
def _checked_session(keys: Keys, token: str, public_name: str) -> Claims:
    return verify(keys, token, public_name=public_name, kind=SESSION)


def verify_session(keys: Keys, token: str, *, public_name: str, now: datetime | None = None) -> Claims:
    """:func:`verify` for the app cookie on every request of an iframe, with
    an in-memory memo of the cookies already checked in full: a cookie seen
    before costs a dict lookup and an expiry check. Only tokens that passed
    are remembered (a failure raises, and is not cached), so forged cookies
    cannot fill the memo; the keys are part of its key, so a rotated-out key
    stops verifying at once."""
    claims = _checked_session(keys, token, public_name)
    if (now or utcnow()) > claims.expires_at + timedelta(seconds=LEEWAY):
        raise TokenError("ExpiredSignatureError: Signature has expired")
    return claims


def consume(claims: Claims) -> bool:
    """Record an entry token's ``jti`` as used; False if it was used before
    (in any worker or replica: the primary key decides)."""
    db.session.add(UsedToken(jti=claims.jti, expires_at=claims.expires_at))
    try:
        db.session.commit()
        return True
    except IntegrityError:
        db.session.rollback()
        return False


def forget_expired(now: datetime | None = None) -> int:
    """Drop the records of entry tokens that have expired (they are refused
    on their ``exp`` alone now); return how many."""
    cutoff = (now or utcnow()) - timedelta(seconds=LEEWAY)
    result = db.session.execute(delete(UsedToken).where(UsedToken.expires_at < cutoff))
    db.session.commit()
    return result.rowcount or 0
