"""API tokens: made, refused for every reason a token can be wrong (each a
401 JSON answer from the API), revoked, rotated, coalesced last use, and
kept apart from the apps' entry and session tokens and from cookies."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from flask import Flask
from sqlalchemy import select

from app import api_tokens, tokens
from app.auth import disable_user
from app.extensions import db
from app.models import ApiToken, User, utcnow
from tests.factories import CSRFClient, bearer, login, make_app, make_token, make_user

INVALID = 'Bearer realm="dormouse", error="invalid_token", error_description="The token is not valid."'
BARE = 'Bearer realm="dormouse"'


def settings(app: Flask):
    return app.config["DORMOUSE"]


def claims(user: User, **changes) -> dict:
    """Claims like a real token's, for ``user``, with a row of their own."""
    now = utcnow().replace(microsecond=0)
    row = ApiToken(
        jti=f"j-{now.timestamp()}-{len(changes)}",
        user_id=user.id,
        label="",
        expires_at=now + timedelta(hours=1),
    )
    db.session.add(row)
    db.session.commit()
    base = {
        "iss": "dormouse", "aud": "dormouse-api", "sub": str(user.id), "iat": now, "nbf": now,
        "exp": now + timedelta(hours=1), "jti": row.jti,
    }  # fmt: skip
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def sign(app: Flask, payload: dict, *, kid: str | None = None, key: str | None = None, alg="HS256") -> str:
    our_kid, our_key = api_tokens.api_keys(settings(app).jwt_keys)[0]
    return jwt.encode(payload, key or our_key, algorithm=alg, headers={"kid": kid or our_kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(app: Flask, payload: dict) -> str:
    kid = api_tokens.api_keys(settings(app).jwt_keys)[0][0]
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    body = json.loads(json.dumps(payload, default=lambda d: int(d.timestamp())))
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}."


def ask(client: CSRFClient, headers: dict[str, str]):
    return client.get("/api/v1/apps", headers=headers)


def assert_refused(response, challenge: str = INVALID) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.is_json and response.get_json()["status"] == 401 and response.get_json()["error"]
    assert response.headers["WWW-Authenticate"] == challenge


# --------------------------------------------------------------- a good token
def test_a_token_carries_the_claims_and_works(app, client, alice):
    make_app(alice, "secret", is_public=False)
    token = make_token(alice, ttl=600, label="ci")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"] == settings(app).jwt_keys[0][0]
    raw = jwt.decode(token, options={"verify_signature": False})
    assert set(raw) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti"}
    assert raw["aud"] == "dormouse-api" and raw["iss"] == "dormouse" and raw["sub"] == str(alice.id)
    assert raw["exp"] - raw["iat"] == 600
    row = db.session.scalar(select(ApiToken).where(ApiToken.jti == raw["jti"]))
    assert row.label == "ci" and row.user_id == alice.id and row.revoked_at is None
    assert int(row.expires_at.timestamp()) == raw["exp"]
    response = ask(client, bearer(token))
    assert response.status_code == 200
    assert [a["title"] for a in response.get_json()["apps"]] == ["secret"]  # alice's own private app


def test_the_token_string_is_never_stored_nor_logged(app, alice, caplog):
    caplog.set_level("DEBUG")
    token = make_token(alice)
    app.test_client().get("/api/v1/apps", headers=bearer(token))
    app.test_client().get("/api/v1/apps", headers=bearer(token + "x"))
    assert token not in caplog.text and token.split(".")[2] not in caplog.text
    row = db.session.scalar(select(ApiToken))
    assert token not in repr(vars(row))


@pytest.mark.parametrize(
    ("ttl", "message"),
    [(0, "positive"), (-5, "positive"), (90 * 86400 + 1, "at most 7776000 seconds")],
)
def test_a_lifetime_out_of_bounds_is_refused(app, alice, ttl, message):
    with pytest.raises(api_tokens.ApiTokenError, match=message):
        make_token(alice, ttl=ttl)
    assert db.session.scalar(select(ApiToken)) is None


def test_a_label_must_be_short_and_plain(app, alice):
    for label in ("x" * 81, "line\nbreak"):
        with pytest.raises(api_tokens.ApiTokenError):
            make_token(alice, label=label)


def test_a_disabled_account_gets_no_token(app, alice):
    disable_user(alice)
    with pytest.raises(api_tokens.ApiTokenError, match="disabled"):
        make_token(alice)


# ------------------------------------------------------- every bad token: 401
def test_no_token_or_another_scheme_gets_a_bare_challenge(app, client, alice):
    token = make_token(alice)
    for headers in ({}, {"Authorization": f"Basic {token}"}, {"Authorization": token}):
        assert_refused(ask(client, headers), BARE)


BAD_TOKENS = {
    "empty": lambda app, user: "",
    "malformed": lambda app, user: "not.a.jwt",
    "garbage": lambda app, user: "x" * 300,
    "bad signature": lambda app, user: make_token(user)[:-4] + "AAAA",
    "other key": lambda app, user: sign(app, claims(user), key="z" * 64),
    "alg none": lambda app, user: unsigned(app, claims(user)),
    "HS512 with our key": lambda app, user: sign(
        app, claims(user), alg="HS512", key=api_tokens.api_keys(settings(app).jwt_keys)[0][1]
    ),
    "expired": lambda app, user: sign(
        app, claims(user, iat=utcnow() - timedelta(hours=2), nbf=None, exp=utcnow() - timedelta(minutes=1))
    ),
    "not yet valid": lambda app, user: sign(app, claims(user, nbf=utcnow() + timedelta(minutes=5))),
    "wrong audience": lambda app, user: sign(app, claims(user, aud="viz:default-abc234")),
    "wrong issuer": lambda app, user: sign(app, claims(user, iss="elsewhere")),
    "no jti": lambda app, user: sign(app, claims(user, jti=None)),
    "no exp": lambda app, user: sign(app, claims(user, exp=None)),
    "unknown kid": lambda app, user: sign(app, claims(user), kid="nope"),
    "unknown jti": lambda app, user: sign(app, {**claims(user), "jti": "signed-but-no-row"}),
    "another user's jti": lambda app, user: sign(app, {**claims(user), "sub": "999"}),
    "gate entry token": lambda app, user: tokens.issue(
        settings(app).jwt_keys,
        public_name="default-abc234",
        subject=f"user:{user.id}",
        kind=tokens.ENTRY,
        ttl=60,
    ),
    "gate session token": lambda app, user: tokens.issue(
        settings(app).jwt_keys,
        public_name="default-abc234",
        subject=f"user:{user.id}",
        kind=tokens.SESSION,
        ttl=60,
    ),
    "gate key, API claims": lambda app, user: jwt.encode(
        claims(user),
        settings(app).jwt_keys[0][1],
        algorithm="HS256",
        headers={"kid": settings(app).jwt_keys[0][0]},
    ),
}


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_every_bad_token_is_a_401_json(app, client, alice, case):
    token = BAD_TOKENS[case](app, alice)
    assert ask(client, bearer(make_token(alice))).status_code == 200  # the user's real token works
    assert_refused(ask(client, bearer(token)))
    assert_refused(client.post("/api/v1/apps/alice/wave/deployment", headers=bearer(token), csrf=False))


def test_a_revoked_token_is_refused_at_once(app, client, alice):
    token = make_token(alice)
    assert ask(client, bearer(token)).status_code == 200
    row = api_tokens.find(jwt.decode(token, options={"verify_signature": False})["jti"])
    assert api_tokens.revoke(row) and row.revoked_at is not None
    assert not api_tokens.revoke(row)  # once
    assert_refused(ask(client, bearer(token)))


def test_a_disabled_users_tokens_stop_working(app, client, alice):
    token = make_token(alice)
    assert ask(client, bearer(token)).status_code == 200
    disable_user(alice)
    assert_refused(ask(client, bearer(token)))


def test_an_api_token_opens_no_app(app, alice):
    """The other way round: an API token is no entry or session token."""
    token = make_token(alice)
    for kind in (tokens.ENTRY, tokens.SESSION):
        with pytest.raises(tokens.TokenError):
            tokens.verify(settings(app).jwt_keys, token, public_name="default-abc234", kind=kind)


def test_keys_rotate_an_old_kid_verifies_until_removed(tmp_path):
    from tests.factories import build_app, make_settings

    old = "old1:" + "o" * 40
    new = "new1:" + "n" * 40
    before = build_app(make_settings(tmp_path, JWT_KEYS=old))
    with before.app_context():
        token = make_token(make_user("alice"))
        assert jwt.get_unverified_header(token)["kid"] == "old1"
    for keys, works in ((f"{new} {old}", True), (new, False)):
        after = build_app(make_settings(tmp_path, JWT_KEYS=keys))
        with after.app_context():
            response = after.test_client().get("/api/v1/apps", headers=bearer(token))
            assert response.status_code == (200 if works else 401), keys
            fresh = make_token(db.session.scalar(select(User)))
            assert jwt.get_unverified_header(fresh)["kid"] == "new1"  # the first key signs
            db.session.remove()
            db.engine.dispose()
    with before.app_context():
        db.session.remove()
        db.engine.dispose()


# ------------------------------------------------------------- cookies ignored
def test_a_logged_in_cookie_session_alone_gets_401(app, client, alice):
    make_user("root", admin=True)
    assert login(client, "root").status_code == 302
    assert client.get("/account").status_code == 200  # the cookie works on the site
    assert_refused(ask(client, {}), BARE)
    assert_refused(
        client.post("/api/v1/apps/alice/wave/deployment", headers={"Accept": "application/json"}), BARE
    )


def test_with_a_cookie_and_a_token_the_token_decides(app, client, alice):
    make_app(alice, "secret", is_public=False)
    make_user("root", admin=True)
    bob = make_user("bob")
    assert login(client, "root").status_code == 302  # an admin's cookie...
    response = ask(client, bearer(make_token(bob)))  # ...and bob's token: bob
    assert response.status_code == 200 and response.get_json()["apps"] == []
    assert client.get("/api/v1/apps/alice/secret", headers=bearer(make_token(bob))).status_code == 404


# --------------------------------------------------------------- last use
def test_last_use_is_written_once_a_minute(any_app):
    alice = make_user("alice")
    token = make_token(alice)
    keys = any_app.config["DORMOUSE"].jwt_keys
    now = utcnow()
    row = api_tokens.authenticate(keys, token, now=now)
    assert row.last_used_at == now
    first = row.last_used_at
    assert not api_tokens.touch(row, now + timedelta(seconds=30))
    assert api_tokens.authenticate(keys, token, now=now + timedelta(seconds=30)).last_used_at == first
    later = now + timedelta(seconds=61)
    assert api_tokens.touch(row, later) and row.last_used_at == later


def test_revoking_races_once(any_app):
    alice = make_user("alice")
    make_token(alice)
    row = db.session.scalar(select(ApiToken))
    assert api_tokens.revoke(row) is True
    assert api_tokens.revoke(row) is False
    assert api_tokens.state(row, utcnow()) == "revoked"


def test_the_longest_lifetime_is_configured(tmp_path):
    from app.config_env import ConfigError
    from tests.factories import make_settings

    assert make_settings(tmp_path).api_token_max_ttl == 90 * 86400
    assert make_settings(tmp_path, API_TOKEN_MAX_TTL="3600").api_token_max_ttl == 3600
    for bad in ("30", "soon"):
        with pytest.raises(ConfigError, match="API_TOKEN_MAX_TTL"):
            make_settings(tmp_path, API_TOKEN_MAX_TTL=bad)
