"""The two checks each worker remembers for the hot paths: signed session
cookies (app/security.py, SessionsForPeople) and signed CSRF tokens
(app/csrf_tokens.py). What passed once passes again only as long as it would
pass unremembered: a tampered cookie, an expired one, a token of another
session or an expired token are refused every time."""

from __future__ import annotations

import time

from tests.factories import CSRF_META

JSON = {"Accept": "application/json"}


def page_token(client) -> str:
    found = CSRF_META.search(client.get("/alice/wave/viz/").get_data(as_text=True))
    assert found
    return found.group(1)


def ping(client, token: str, **headers: str):
    return client.post(
        "/alice/wave/viz/ping", data={"deployment": ""}, headers={**JSON, "X-CSRFToken": token, **headers},
        csrf=False,
    )  # fmt: skip


def test_a_remembered_cookie_and_token_pass_again(app, wave):
    client = app.test_client()
    token = page_token(client)
    for _ in range(3):  # the first checks the signatures, the others find them remembered
        assert ping(client, token).status_code == 200


def test_a_token_of_another_session_is_refused_even_once_remembered(app, wave):
    alice_page, bob_page = app.test_client(), app.test_client()
    alice_token, bob_token = page_token(alice_page), page_token(bob_page)
    assert ping(alice_page, alice_token).status_code == 200  # remembered now
    assert ping(bob_page, alice_token).status_code == 400
    assert ping(bob_page, bob_token).status_code == 200


def test_a_tampered_cookie_is_refused_every_time(app, wave):
    client = app.test_client()
    token = page_token(client)
    assert ping(client, token).status_code == 200
    name = app.config["SESSION_COOKIE_NAME"]
    good = client.get_cookie(name).value
    client.set_cookie(name, good[:-2] + ("AA" if not good.endswith("AA") else "BB"))
    for _ in range(2):
        assert ping(client, token).status_code == 400  # no session: no token to match
    client.set_cookie(name, good)
    assert ping(client, token).status_code == 200


def test_an_expired_cookie_or_token_is_refused_though_remembered(app, wave, monkeypatch):
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    client = app.test_client()
    token = page_token(client)
    assert ping(client, token).status_code == 200  # both remembered
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 2 * 3600)  # the token's hour is over
    assert ping(client, token).status_code == 400
    lifetime = app.permanent_session_lifetime.total_seconds()
    monkeypatch.setattr(time, "time", lambda: real() + lifetime + 60)  # and the cookie's lifetime
    answer = ping(client, token)
    assert answer.status_code == 400 and "session has expired" in answer.get_data(as_text=True)


def test_a_session_with_a_list_is_never_remembered(app, wave):
    """Flashed messages are a list changed in place: such a session always
    comes fresh from its cookie."""
    from flask import session

    with app.test_request_context("/"):
        session["_flashes"] = [("info", "hello")]
        session["csrf_token"] = "x"
        interface = app.session_interface
        value = interface.get_signing_serializer(app).dumps(dict(session))
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], value)
    client.get("/alice/wave/viz/status", headers=JSON)
    assert all(dict(items).get("_flashes") is None for items in interface._checked.held())


def test_checked_signatures_keep_the_newest_and_check_the_age_on_every_hit():
    from app.checked_signatures import CheckedSignatures

    memo: CheckedSignatures[str] = CheckedSignatures(max_entries=2)
    memo.put("a", "A", signed_at=1000)
    memo.put("b", "B", signed_at=1000)
    assert memo.get("a", max_age=60, now=1060) == "A"  # a is now the most recently used
    assert memo.get("a", max_age=60, now=1061) is None  # too old: checked again
    assert memo.get("a", max_age=None, now=10**9) == "A"  # no age limit
    memo.put("c", "C", signed_at=1000)  # b, the least recently used, goes
    assert len(memo) == 2 and memo.get("b", max_age=None) is None
    assert memo.get("a", max_age=None) == "A" and memo.get("c", max_age=None) == "C"
    assert memo.get("c", max_age=60, now=999) is None  # signed in the future: as itsdangerous, refused
