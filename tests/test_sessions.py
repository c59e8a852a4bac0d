"""Accounts that end and logins that give nothing away (issue 8, points 3-4):
logout, a new password or disabling an account ends every session and
remember-me cookie of that user; remember-me cookies are Lax, HttpOnly and
last REMEMBER_DAYS; an unknown name costs the same password check as a known
one; passwords with control characters are refused.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from app import auth, lifecycle
from app.auth import AccountError
from app.extensions import db
from app.models import User
from tests.factories import CSRF_META, CSRFClient, build_app, login, make_app, make_settings, make_user

PUBLISH = "/publish"  # 200 when logged in, 302 to the login page when not


def cookies_of(response) -> dict[str, str]:
    """``{name: the whole Set-Cookie header}`` of a response."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        name = header.split("=", 1)[0]
        found[name] = header
    return found


def replay(app, cookies: dict[str, str]):
    """A fresh client holding only ``cookies`` (``{name: value}``), as a thief would."""
    thief = app.test_client()
    for name, value in cookies.items():
        thief.set_cookie(name, value)
    return thief


def jar(client) -> dict[str, str]:
    return {c.key: c.value for c in client._cookies.values()}


def remembered_login(client, username: str = "alice"):
    return client.post("/login", data={"username": username, "password": "correct-horse", "remember": "y"})


def test_logout_ends_every_session_and_remember_cookie_of_the_user(app, client, alice):
    other = app.test_client()  # the same user on another device
    assert remembered_login(client).status_code == 302
    assert remembered_login(other).status_code == 302
    stolen = jar(client)
    assert "remember_token" in stolen and "session" in stolen
    assert client.get(PUBLISH).status_code == 200 and other.get(PUBLISH).status_code == 200

    assert client.post("/logout").status_code == 302
    assert client.get(PUBLISH).status_code == 302
    assert other.get(PUBLISH).status_code == 302  # the other device is logged out too
    assert replay(app, stolen).get(PUBLISH).status_code == 302  # old session cookie: nothing
    remember_only = {"remember_token": stolen["remember_token"]}
    assert replay(app, remember_only).get(PUBLISH).status_code == 302  # old remember-me cookie: nothing
    # logging in again works, with a new cookie
    assert login(client).status_code == 302 and client.get(PUBLISH).status_code == 200


def test_a_new_password_ends_the_old_sessions(app, client, alice):
    remembered_login(client)
    stolen = jar(client)
    auth.set_password(alice, "a-brand-new-secret")
    assert client.get(PUBLISH).status_code == 302
    assert replay(app, stolen).get(PUBLISH).status_code == 302
    assert login(client, password="correct-horse").status_code == 400
    assert login(client, password="a-brand-new-secret").status_code == 302


def test_a_disabled_user_is_logged_out_cannot_log_in_and_their_apps_stop(app, client, alice, fake_backend):
    remembered_login(client)
    dep = lifecycle.ensure_deployment(make_app(alice, "wave"))
    assert dep.is_live
    assert auth.disable_user(alice) == ["alice/wave"]
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "admin"
    assert client.get(PUBLISH).status_code == 302
    assert login(client).status_code == 400  # the right password no longer opens it


def test_cookies_from_before_session_versions_or_forged_ids_load_nobody(app, alice):
    with app.test_request_context():
        assert auth._load_user(str(alice.id)) is None  # an old cookie: "1" without a version
        assert auth._load_user(f"{alice.id}:{alice.session_version}") == alice
        assert auth._load_user(f"{alice.id}:{alice.session_version + 1}") is None
        for forged in ("", ":", "x:1", f"{alice.id}:x", f"-{alice.id}:1", "1:1:1"):
            assert auth._load_user(forged) is None, forged


def test_remember_me_cookies_are_lax_httponly_and_last_remember_days(tmp_path):
    app = build_app(make_settings(tmp_path, REMEMBER_DAYS="3"))
    app.test_client_class = CSRFClient
    with app.app_context():
        make_user("alice")
        response = remembered_login(app.test_client())
        header = cookies_of(response)["remember_token"]
        morsel = SimpleCookie(header)["remember_token"]
        assert morsel["httponly"] and morsel["samesite"] == "Lax"
        assert int(morsel["max-age"] or 0) == 3 * 24 * 3600 or "expires" in header.lower()
        db.session.remove()
        db.engine.dispose()


def test_over_https_dormouse_cookies_are_secure_and_host_prefixed(tmp_path):
    app = build_app(make_settings(tmp_path, SESSION_COOKIE_SECURE="1"))
    app.test_client_class = CSRFClient
    with app.app_context():
        make_user("alice")
        client = app.test_client()
        form = {"username": "alice", "password": "correct-horse", "remember": "y"}
        token = client.get("/", base_url="https://dormouse.localhost").get_data(as_text=True)
        csrf = CSRF_META.search(token)
        assert csrf
        response = client.post("/login", data=form, base_url="https://dormouse.localhost", csrf=False,
                               headers={"X-CSRFToken": csrf.group(1),  # over HTTPS the Referer is checked too
                                        "Referer": "https://dormouse.localhost/login"})  # fmt: skip
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        found = cookies_of(response)
        assert set(found) >= {"__Host-session", "__Host-remember_token"}
        for header in found.values():
            assert "Secure" in header and "Path=/" in header and "Domain" not in header
        db.session.remove()
        db.engine.dispose()


def test_an_unknown_name_costs_the_same_password_check(app, alice, monkeypatch):
    checks: list[str] = []
    real = auth.check_password_hash

    def counting(hash_: str, password: str) -> bool:
        checks.append(hash_.split("$", 1)[0])
        return real(hash_, password)

    monkeypatch.setattr(auth, "check_password_hash", counting)
    monkeypatch.setattr("app.models.check_password_hash", counting)
    assert auth.authenticate("nobody-here", "whatever-pass") is None
    assert auth.authenticate("alice", "whatever-pass") is None
    assert len(checks) == 2 and checks[0] == checks[1]  # one check each, of the same kind of hash


@pytest.mark.parametrize("password", ["tab\there-123", "line\nbreak-123", "esc\x1bcape-123", "nul\x00l-12345",
                                      "bidi\u202eoverride1", "zero\u200bwidth123"])  # fmt: skip
def test_passwords_with_control_characters_are_refused(app, password):
    with pytest.raises(AccountError, match="control characters"):
        auth.create_user("carol", password)
    assert db.session.scalar(db.select(User).where(User.username == "carol")) is None


def test_the_cli_sets_passwords_and_disables_users(app, runner, alice):
    result = runner.invoke(args=["users", "password", "alice", "--password-stdin"], input="new-secret-123\n")
    assert result.exit_code == 0 and "sessions have ended" in result.output
    assert auth.authenticate("alice", "new-secret-123") == alice
    bad = runner.invoke(args=["users", "password", "alice", "--password-stdin"], input="bad\tpass-123\n")
    assert bad.exit_code == 1 and "control characters" in bad.output
    assert runner.invoke(args=["users", "disable", "nobody"]).exit_code == 1
    result = runner.invoke(args=["users", "disable", "alice"])
    assert result.exit_code == 0 and "Disabled alice" in result.output
    assert auth.authenticate("alice", "new-secret-123") is None
