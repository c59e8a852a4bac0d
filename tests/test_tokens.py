"""App access tokens: issued, verified, refused, rotated, used once."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest

from app import tokens
from app.extensions import db
from app.models import UsedToken, utcnow

KEYS = (("k2", "b" * 40), ("k1", "a" * 40))
PUBLIC = "default-abc234"


def entry(keys=KEYS, public_name=PUBLIC, ttl=60.0, **kw) -> str:
    return tokens.issue(keys, public_name=public_name, subject="user:7", kind=tokens.ENTRY, ttl=ttl, **kw)


def test_a_token_carries_the_claims_and_names_its_key():
    token = entry()
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "k2", "typ": "JWT"}
    claims = tokens.verify(KEYS, token, public_name=PUBLIC, kind=tokens.ENTRY)
    assert claims.deployment == PUBLIC and claims.subject == "user:7" and claims.kind == "entry"
    raw = jwt.decode(token, options={"verify_signature": False})
    assert set(raw) == {"iss", "aud", "sub", "iat", "exp", "jti", "kind"}
    assert raw["aud"] == "viz:default-abc234" and raw["iss"] == "dormouse" and raw["exp"] - raw["iat"] == 60
    assert entry() != token  # a fresh jti each time


def test_keys_rotate_the_old_key_still_verifies_until_dropped():
    old = entry(keys=(("k1", "a" * 40),))
    assert tokens.verify(KEYS, old, public_name=PUBLIC, kind=tokens.ENTRY).subject == "user:7"
    with pytest.raises(tokens.TokenError, match="unknown key id"):
        tokens.verify((("k2", "b" * 40),), old, public_name=PUBLIC, kind=tokens.ENTRY)


def _forge(header: dict, payload: dict, signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join((part(json.dumps(header).encode()), part(json.dumps(payload).encode()), part(signature)))


def session() -> str:
    return tokens.issue(KEYS, public_name=PUBLIC, subject="x", kind=tokens.SESSION, ttl=60)


def _signed(claims: dict) -> str:
    """Claims of our choosing, signed with the real key (an insider's mistake)."""
    return jwt.encode(claims, "b" * 40, headers={"kid": "k2"})


def _claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda: entry(public_name="default-other1"), "InvalidAudience"),
        (
            lambda: tokens.issue(KEYS, public_name=PUBLIC, subject="x", kind=tokens.SESSION, ttl=60),
            "a 'session' token where",
        ),
        (lambda: entry(now=utcnow() - timedelta(seconds=120)), "ExpiredSignature"),
        (lambda: entry()[:-4] + "AAAA", "InvalidSignature"),
        (lambda: _forge({"alg": "none", "kid": "k2"}, _claims_of(entry())), "algorithm 'none'"),
        (lambda: _forge({"alg": "HS512", "kid": "k2"}, _claims_of(entry())), "algorithm 'HS512'"),
        (
            lambda: jwt.encode({**_claims_of(entry()), "iss": "evil"}, "b" * 40, headers={"kid": "k2"}),
            "Issuer",
        ),
        (
            lambda: jwt.encode({"aud": "viz:" + PUBLIC, "kind": "entry"}, "b" * 40, headers={"kid": "k2"}),
            "Missing",
        ),
        (lambda: entry(keys=(("k2", "c" * 40),)), "InvalidSignature"),
        (lambda: "not-a-token", "malformed"),
    ],
)
def test_what_is_refused(make, why):
    with pytest.raises(tokens.TokenError, match=why):
        tokens.verify(KEYS, make(), public_name=PUBLIC, kind=tokens.ENTRY)


def test_an_entry_token_is_consumed_once_and_forgotten_after_it_expires(any_app):
    claims = tokens.verify(KEYS, entry(ttl=30), public_name=PUBLIC, kind=tokens.ENTRY)
    assert tokens.consume(claims)
    assert not tokens.consume(claims)  # a replay, in this worker or any other
    assert tokens.forget_expired(utcnow()) == 0  # not expired yet: kept
    assert tokens.forget_expired(utcnow() + timedelta(seconds=60)) == 1
    assert db.session.get(UsedToken, claims.jti) is None


def test_app_cookies_are_remembered_once_checked_but_still_expire_and_rotate_out():
    now = utcnow()
    session = tokens.issue(
        KEYS, public_name=PUBLIC, subject="anonymous", kind=tokens.SESSION, ttl=60, now=now
    )
    before = tokens._checked_session.cache_info().hits
    for _ in range(3):
        assert tokens.verify_session(KEYS, session, public_name=PUBLIC, now=now).subject == "anonymous"
    assert tokens._checked_session.cache_info().hits == before + 2  # checked in full once
    with pytest.raises(tokens.TokenError, match="expired"):  # remembered, yet expired
        tokens.verify_session(KEYS, session, public_name=PUBLIC, now=now + timedelta(seconds=60 + 6))
    with pytest.raises(tokens.TokenError):  # its key rotated out: refused at once
        tokens.verify_session((("k9", "c" * 40),), session, public_name=PUBLIC, now=now)
    with pytest.raises(tokens.TokenError):  # bound to its deployment
        tokens.verify_session(KEYS, session, public_name="default-other1", now=now)
    entry = tokens.issue(KEYS, public_name=PUBLIC, subject="anonymous", kind=tokens.ENTRY, ttl=60, now=now)
    for _ in range(2):  # refused every time: failures are never remembered
        with pytest.raises(tokens.TokenError, match="entry"):
            tokens.verify_session(KEYS, entry, public_name=PUBLIC, now=now)


@pytest.mark.parametrize(
    "keys, public_name, subject, kind, ttl, now",
    [
        (KEYS, PUBLIC, "user:7", tokens.ENTRY, 60.0, None),
        (KEYS, PUBLIC, "anonymous", tokens.SESSION, 3600, None),
        ((("ké", "sécret ☃" * 5),), "default-zz9", "user:12", tokens.ENTRY, 0.75, None),
        (KEYS, PUBLIC, "user:1", tokens.ENTRY, 90.5, "2026-11-27T17:30:59.999999+00:00"),
        (KEYS, PUBLIC, "user:1", tokens.ENTRY, 30, "2026-11-27T18:30:01.5+01:00"),  # not UTC
    ],
)
def test_the_token_is_what_pyjwt_makes_of_its_claims(monkeypatch, keys, public_name, subject, kind, ttl, now):
    from datetime import datetime

    moment = datetime.fromisoformat(now) if now else utcnow()
    monkeypatch.setattr(tokens.secrets, "token_urlsafe", lambda n: "fixed-jti-" + "x" * n)
    ours = tokens.issue(keys, public_name=public_name, subject=subject, kind=kind, ttl=ttl, now=moment)
    kid, secret = keys[0]
    claims = {
        "iss": "dormouse", "aud": f"viz:{public_name}", "sub": subject, "iat": moment,
        "exp": moment + timedelta(seconds=ttl), "jti": "fixed-jti-" + "x" * 16, "kind": kind,
    }  # fmt: skip
    assert ours == jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})
    decoded = jwt.decode(
        ours, secret, algorithms=["HS256"], audience=f"viz:{public_name}", issuer="dormouse",
        options={"verify_exp": False, "verify_iat": False},
    )  # fmt: skip
    assert decoded["sub"] == subject and decoded["kind"] == kind
    assert decoded["iat"] == int(moment.timestamp()) and decoded["exp"] == int(
        (moment + timedelta(seconds=ttl)).timestamp()
    )


def test_each_token_has_its_own_jti_and_signature():
    made = {entry() for _ in range(50)}
    assert len(made) == 50
    assert len({_claims_of(t)["jti"] for t in made}) == 50
