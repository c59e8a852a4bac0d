"""``flask tokens issue|list|revoke``, with real tokens then used against the API."""

from __future__ import annotations

import jwt

from app import api_tokens
from tests.factories import bearer, make_user


def test_issue_prints_only_the_token_and_it_works(app, client, runner, alice, wave):
    result = runner.invoke(args=["tokens", "issue", "alice", "--ttl", "600", "--label", "ci deploys"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token and token.count(".") == 2  # only the token on stdout
    assert "Issued token" in result.stderr and token not in result.stderr
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600
    row = api_tokens.find(claims["jti"])
    assert row.label == "ci deploys" and row.user_id == alice.id
    response = client.get("/api/v1/apps/alice/wave", headers=bearer(token))
    assert response.status_code == 200 and response.get_json()["title"] == "wave"


def test_issue_refuses_a_bad_lifetime_or_user(app, runner, alice):
    for args, message in (
        (["alice", "--ttl", "0"], "positive"),
        (["alice", "--ttl", "-10"], "positive"),
        (["alice", "--ttl", str(90 * 86400 + 1)], "at most"),
        (["nobody", "--ttl", "60"], "No user 'nobody'"),
    ):
        result = runner.invoke(args=["tokens", "issue", *args])
        assert result.exit_code == 1 and message in result.stderr, (args, result.output)
        assert result.stdout == ""
    assert api_tokens.tokens_of(alice) == []
    assert runner.invoke(args=["tokens", "issue", "alice"]).exit_code == 2  # --ttl is required


def test_list_then_revoke_and_the_token_stops_working(app, client, runner, alice, wave):
    make_user("bob")
    token = runner.invoke(
        args=["tokens", "issue", "alice", "--ttl", "3600", "--label", "laptop"]
    ).stdout.strip()
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    listed = runner.invoke(args=["tokens", "list", "alice"])
    assert listed.exit_code == 0
    (line,) = [row for row in listed.stdout.splitlines() if row.startswith(jti)]
    assert "active" in line and line.endswith("laptop") and "never" in line
    assert token not in listed.stdout
    assert client.get("/api/v1/apps", headers=bearer(token)).status_code == 200
    assert "bob has no tokens." in runner.invoke(args=["tokens", "list", "bob"]).stdout

    revoked = runner.invoke(args=["tokens", "revoke", jti])
    assert revoked.exit_code == 0 and f"Revoked token {jti}" in revoked.stdout
    response = client.get("/api/v1/apps", headers=bearer(token))
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    (line,) = [
        row
        for row in runner.invoke(args=["tokens", "list", "alice"]).stdout.splitlines()
        if row.startswith(jti)
    ]
    assert "revoked" in line and "never" not in line  # it was used once, before the revoke
    again = runner.invoke(args=["tokens", "revoke", jti])
    assert again.exit_code == 1 and "revoked already" in again.stderr
    assert runner.invoke(args=["tokens", "revoke", "no-such"]).exit_code == 1
