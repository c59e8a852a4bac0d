"""Attacks on accounts (issue 8): finding out which user names exist from how
long a failed login takes, and replaying cookies copied from a browser after
its user logged out, changed their password or was disabled.

The timing attack runs in this process (the test client, rate limits off):
only the login's own work is measured, which is what a remote attacker's
median converges on. The cookie replays run against the served product.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Iterator

import pytest
import requests

from tests.security.helpers import (
    PASSWORD,
    Site,
    client_address,
    create_user,
    csrf_from,
    log_in,
    visitor,
)
from tests.serving import REQUEST_TIMEOUT, LiveServer, serve

pytestmark = pytest.mark.timeout(240)
SAMPLES = 15  # failed logins per name; each costs one scrypt check (~0.1 s)
WRONG = "Wrong username or password."


def timed_login(client, token: str, username: str) -> tuple[float, int, str]:
    form = {"username": username, "password": "not-the-password-1"}
    began = time.perf_counter()
    answer = client.post("/login", data=form, headers={"X-CSRFToken": token})
    took = time.perf_counter() - began
    return took, answer.status_code, answer.get_data(as_text=True)


def test_failed_logins_take_as_long_for_unknown_names(site: Site) -> None:
    """Attack: user enumeration by timing. Time failed logins for a name that
    exists (alice) and one that does not (mallory), interleaved. Expected: the
    two medians within 20 % of each other, and the same answer (400, the same
    message): an unknown name costs the same password check."""
    client = site.client()
    token = client.csrf_token()
    for name in ("alice", "mallory"):  # warm up (the unknown name's stand-in hash is made once)
        timed_login(client, token, name)
    times: dict[str, list[float]] = {"alice": [], "mallory": []}
    answers = set()
    for _ in range(SAMPLES):
        for name in random.sample(sorted(times), 2):
            took, status, page = timed_login(client, token, name)
            times[name].append(took)
            answers.add((status, WRONG in page))
    assert answers == {(400, True)}, answers
    known, unknown = statistics.median(times["alice"]), statistics.median(times["mallory"])
    assert abs(known - unknown) <= 0.2 * max(known, unknown), (
        f"median failed login: {known * 1000:.1f} ms for an existing name, "
        f"{unknown * 1000:.1f} ms for an unknown one"
    )


# --- replayed cookies, against the served product ---------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    with serve(tmp_path_factory.mktemp("accounts"), SWEEP_INTERVAL="3600") as live:
        yield live


def with_cookies(cookies: dict[str, str], address: str) -> requests.Session:
    """A fresh browser on another machine holding only ``cookies``, as a thief would."""
    thief = visitor(address)
    thief.headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return thief


def logged_in(server: LiveServer, session: requests.Session) -> bool:
    """Whether the site treats ``session`` as logged in (/publish: 200, or 302 to the login)."""
    answer = session.get(f"{server.base}/publish", allow_redirects=False, timeout=REQUEST_TIMEOUT)
    assert answer.status_code in (200, 302), answer.status_code
    return answer.status_code == 200


def stolen_cookies(server: LiveServer, username: str) -> tuple[requests.Session, dict[str, str]]:
    """``username`` logs in with "keep me logged in"; their browser and a copy
    of its cookies, which work while the session lasts (the control)."""
    create_user(server, username)
    browser = visitor()
    assert log_in(server, browser, username, PASSWORD, remember=True).status_code == 302
    cookies = {c.name: c.value for c in browser.cookies}
    assert {"session", "remember_token"} <= set(cookies), cookies
    assert logged_in(server, with_cookies(cookies, client_address(1)))  # a copy works, for now
    return browser, cookies


def assert_replays_open_nothing(server: LiveServer, cookies: dict[str, str]) -> None:
    for n, replayed in enumerate(
        (cookies, {"remember_token": cookies["remember_token"]}, {"session": cookies["session"]}), start=2
    ):
        assert not logged_in(server, with_cookies(replayed, client_address(n))), sorted(replayed)


def test_cookies_replayed_after_logout_open_nothing(server: LiveServer) -> None:
    """Attack: copy a user's session and remember-me cookies (a shared
    computer, a stolen backup), wait for them to log out, replay the cookies
    (together, and each alone) from a fresh browser. Expected: not logged in."""
    browser, cookies = stolen_cookies(server, "alice")
    token = csrf_from(browser, f"{server.base}/")
    logout = browser.post(f"{server.base}/logout", headers={"X-CSRFToken": token}, allow_redirects=False,
                          timeout=REQUEST_TIMEOUT)  # fmt: skip
    assert logout.status_code == 302
    assert not logged_in(server, browser)
    assert_replays_open_nothing(server, cookies)


@pytest.mark.parametrize("command", ["password", "disable"])
def test_cookies_replayed_after_a_new_password_or_disabling_open_nothing(
    server: LiveServer, command: str
) -> None:
    """Attack: replay copied cookies after the user changed their password
    (``flask users password``) or an admin disabled the account (``flask
    users disable``). Expected: not logged in, the user's own browser neither."""
    username = f"victim-{command}"
    browser, cookies = stolen_cookies(server, username)
    if command == "password":
        server.flask("users", "password", username, "--password-stdin", stdin="a-brand-new-secret\n")
    else:
        server.flask("users", "disable", username)
    assert not logged_in(server, browser)
    assert_replays_open_nothing(server, cookies)
