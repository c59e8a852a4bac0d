"""The tokens page, /account/tokens: make a token (shown once), list, revoke.
(Who may use it and CSRF: the access matrix, tests/test_access_*.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import jwt

from app import api_tokens
from app.extensions import db
from tests.factories import CSRFClient, bearer, build_app, login, make_settings, make_user

TOKEN = re.compile(r'<pre class="token" id="new-token">([^<]+)</pre>')


def make(client: CSRFClient, label: str = "ci", ttl: str = "604800"):
    return client.post("/account/tokens", data={"label": label, "ttl": ttl})


def test_a_new_token_is_shown_once_and_works(app, client, alice, wave):
    login(client)
    assert 'href="/account/tokens"' in client.get("/account").get_data(
        as_text=True
    )  # linked from the account page
    response = make(client, label="<b>ci</b>")
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    (token,) = TOKEN.findall(html)
    assert "Copy it now" in html and "&lt;b&gt;ci&lt;/b&gt;" in html and "<b>ci</b>" not in html
    assert 'name="label" type="text" value=""' in html  # the form is blank again
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 604800 and claims["sub"] == str(alice.id)
    page = client.get("/account/tokens").get_data(as_text=True)
    assert token not in page and "new-token" not in page  # never again
    assert f'data-jti="{claims["jti"]}" data-state="active"' in page and "never" in page
    assert client.get("/api/v1/apps/alice/wave", headers=bearer(token)).status_code == 200
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "never" not in page  # last used now


def test_revoke_from_the_page(app, client, alice):
    login(client)
    token = TOKEN.findall(make(client).get_data(as_text=True))[0]
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    response = client.post(f"/account/tokens/{jti}/revoke")
    assert response.status_code == 302 and response.headers["Location"] == "/account/tokens"
    page = client.get("/account/tokens").get_data(as_text=True)
    assert f'data-jti="{jti}" data-state="revoked"' in page and "It no longer works" in page
    assert f"/account/tokens/{jti}/revoke" not in page  # no button on a revoked token
    assert client.get("/api/v1/apps", headers=bearer(token)).status_code == 401
    again = client.post(f"/account/tokens/{jti}/revoke")
    assert again.status_code == 302 and "revoked already" in client.get("/account/tokens").get_data(
        as_text=True
    )


def test_only_the_offered_lifetimes(tmp_path: Path):
    """API_TOKEN_MAX_TTL of a week: the page offers 1 and 7 days, and refuses anything else."""
    app = build_app(make_settings(tmp_path, API_TOKEN_MAX_TTL="604800"))
    app.test_client_class = CSRFClient
    with app.app_context():
        try:
            alice = make_user("alice")
            client = app.test_client()
            login(client)
            page = client.get("/account/tokens").get_data(as_text=True)
            assert re.findall(r'<option [^>]*value="(\d+)"', page) == ["86400", "604800"]
            for ttl in ("2592000", "0", "-1", "x", ""):
                response = make(client, ttl=ttl)
                assert response.status_code == 400 and not TOKEN.search(response.get_data(as_text=True)), ttl
            assert make(client, label="x" * 81).status_code == 400
            assert api_tokens.tokens_of(alice) == []
            assert make(client, ttl="86400").status_code == 201
        finally:
            db.session.remove()
            db.engine.dispose()


def test_making_tokens_is_rate_limited(tmp_path: Path):
    app = build_app(make_settings(tmp_path, RATE_LIMITS="1"))
    app.test_client_class = CSRFClient
    with app.app_context():
        try:
            alice = make_user("alice")
            client = app.test_client()
            login(client)
            codes = [make(client).status_code for _ in range(6)]
            assert codes == [201] * 5 + [429]  # TOKENS_PER_USER: 5 a minute
            assert len(api_tokens.tokens_of(alice)) == 5
            assert client.get("/account/tokens").status_code == 200  # the page itself is not limited
        finally:
            db.session.remove()
            db.engine.dispose()
