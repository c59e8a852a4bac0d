"""Floods (issue 8), replayed against the served product as the README runs
it (``python -m app.front_door``: Traefik in front of gunicorn, two workers),
rate limits on as shipped: start floods from one client and from fifty, fifty
simultaneous starts of fifty apps against the caps, login floods, and a flood
that forges ``X-Forwarded-For`` to look like many clients.

Each test gets a fresh server (a few seconds): rate-limit counters are the
server's memory, and one attack's counters must not decide another's answer.
Fifty clients are fifty loopback addresses (tests/security/helpers.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from app.rate_limits import LOGIN_PER_CLIENT, LOGIN_PER_NAME, START_PER_CLIENT
from tests.factories import make_app, make_user
from tests.security.helpers import (
    PASSWORD,
    all_at_once,
    beside,
    client_address,
    create_user,
    deployment_rows,
    live_rows,
    log_in,
    on_viz_page,
    post_start,
    visitor,
)
from tests.serving import LiveServer, serve

pytestmark = pytest.mark.timeout(240)
WAVE = "/demo/dash-wave/"
FLOOD = 50


def allowed(server: LiveServer, limits: str) -> int:
    """How many requests a Flask-Limiter limit string lets through in its
    first window (``5/minute;20/hour`` -> 5), times the server's gunicorn
    workers: with the default ``RATE_LIMIT_STORAGE=memory://`` each worker
    counts on its own."""
    return int(limits.split(";")[0].split("/")[0]) * int(server.env["WEB_CONCURRENCY"])


@pytest.fixture
def server(tmp_path) -> Iterator[LiveServer]:
    with serve(tmp_path, SWEEP_INTERVAL="3600") as live:
        yield live


def retry_after(response: requests.Response) -> int:
    value = response.headers.get("Retry-After", "")
    assert value.isdigit() and int(value) > 0, f"HTTP {response.status_code} without a Retry-After: {value!r}"
    return int(value)


@pytest.mark.parametrize("clients", [1, FLOOD], ids=["one-client", "fifty-clients"])
def test_a_start_flood_makes_one_deployment(server: LiveServer, clients: int) -> None:
    """Attack: 50 simultaneous POSTs to one app's ``viz/start`` (from one
    client, then from fifty) to make many deployments or exhaust the box.
    Expected: one deployment, shared by every start that was let through
    (once it is live, a start is a join: a class behind one address may open
    the app together); any refused start is a 429 with a Retry-After."""
    sessions = [on_viz_page(server, WAVE, visitor(client_address(n + 1))) for n in range(clients)]
    answers = all_at_once(FLOOD, lambda i: post_start(server, sessions[i % clients], WAVE))

    codes = Counter(a.status_code for a in answers)
    assert set(codes) <= {200, 429}, codes
    for answer in answers:
        if answer.status_code == 429:
            retry_after(answer)
    names = {a.json()["public_name"] for a in answers if a.status_code == 200}
    rows = deployment_rows(server)
    assert len(names) == 1 and [r.public_name for r in rows] == list(names), (codes, names, rows)


def test_one_client_starting_fifty_apps_at_once_is_cut_off(tmp_path) -> None:
    """Attack: one client starts fifty different apps at the same instant,
    each start one that would make a deployment. Expected: past
    START_PER_CLIENT (per gunicorn worker with ``memory://``) the starts are
    answered 429 with a Retry-After, before any cap is even asked; the caps
    (3 here) hold for the rest."""
    with serve(tmp_path, SWEEP_INTERVAL="3600", MAX_LIVE_DEPLOYMENTS="3", MAX_LIVE_PER_OWNER="3") as server:
        with beside(server):
            owners = [make_user(f"owner{o}", PASSWORD) for o in range(10)]
            paths = [f"/{make_app(owner, f'app{a}').slug_path}/" for owner in owners for a in range(5)]
        session = on_viz_page(server, paths[0], visitor(client_address(1)))
        answers = all_at_once(FLOOD, lambda i: post_start(server, session, paths[i]))

        codes = Counter(a.status_code for a in answers)
        assert set(codes) <= {200, 429, 503}, codes
        assert codes[200] + codes[503] <= allowed(server, START_PER_CLIENT), codes
        assert codes[429] >= FLOOD - allowed(server, START_PER_CLIENT), codes
        for answer in answers:
            if answer.status_code == 429:
                retry_after(answer)
        assert len(deployment_rows(server)) == codes[200] <= 3


def test_fifty_simultaneous_starts_never_pass_the_caps(tmp_path) -> None:
    """Attack: fifty people (fifty addresses) each start a different app at
    the same instant, past MAX_LIVE_DEPLOYMENTS=3 and MAX_LIVE_PER_OWNER=2.
    Expected: three deployments are made, never a fourth (not even briefly:
    every row ever made is counted), no owner has more than two, and every
    other start is told the server is busy (503, JSON ``busy``, Retry-After 15)."""
    with serve(tmp_path, SWEEP_INTERVAL="3600", MAX_LIVE_DEPLOYMENTS="3", MAX_LIVE_PER_OWNER="2") as server:
        with beside(server):
            owners = [make_user(f"owner{o}", PASSWORD) for o in range(10)]
            paths = [f"/{make_app(owner, f'app{a}').slug_path}/" for owner in owners for a in range(5)]
        assert len(paths) == FLOOD
        sessions = [on_viz_page(server, path, visitor(client_address(n + 1))) for n, path in enumerate(paths)]
        answers = all_at_once(FLOOD, lambda i: post_start(server, sessions[i], paths[i]))

        codes = Counter(a.status_code for a in answers)
        assert set(codes) <= {200, 503}, codes
        assert codes[200] == 3, codes
        for answer in answers:
            if answer.status_code == 503:
                assert retry_after(answer) == 15
                assert answer.json()["status"] == "busy"
        made = deployment_rows(server)
        assert len(made) == 3 and len(live_rows(server)) == 3, made
        per_owner = Counter(row.app.split("/")[0] for row in made)
        assert max(per_owner.values()) <= 2, per_owner


def test_a_login_flood_is_cut_off_and_the_right_password_waits_too(server: LiveServer) -> None:
    """Attack: 40 password guesses for one name (a dictionary attack).
    Expected: 429 with Retry-After once past the limit; during the lockout
    the right password is refused as well (429, not the 302 of a login), from
    this client and from another, so guessing on cannot find it; another
    user is not locked out."""
    create_user(server, "alice")
    create_user(server, "bob")
    attacker = visitor(client_address(1))
    answers = [log_in(server, attacker, "alice", f"guess-{n:04d}-x") for n in range(40)]
    codes = [a.status_code for a in answers]
    assert set(codes) <= {400, 429}, codes
    assert codes[0] == 400 and 429 in codes, codes
    assert codes.count(400) <= allowed(server, LOGIN_PER_NAME), f"guessing went on past the limit: {codes}"
    for answer in answers:
        if answer.status_code == 429:
            retry_after(answer)

    right = log_in(server, attacker, "alice", PASSWORD)
    assert right.status_code == 429, f"the right password got through a lockout: HTTP {right.status_code}"
    retry_after(right)
    elsewhere = log_in(server, visitor(client_address(2)), "alice", PASSWORD)
    assert elsewhere.status_code == 429, f"from another address: HTTP {elsewhere.status_code}"
    assert log_in(server, visitor(client_address(3)), "bob", PASSWORD).status_code == 302


def test_forged_forwarded_headers_do_not_make_one_client_many(server: LiveServer) -> None:
    """Attack: one client floods logins for 40 different names, each request
    claiming another address in ``X-Forwarded-For`` / ``X-Real-IP`` /
    ``Forwarded``, to dodge the per-client limit. Expected: Traefik writes the
    forwarded headers itself, so it is still one client: 429s come all the
    same."""
    attacker = visitor()
    codes = []
    for n in range(50):
        spoofed = f"203.0.113.{n + 1}"
        attacker.headers.update(
            {"X-Forwarded-For": spoofed, "X-Real-IP": spoofed, "Forwarded": f"for={spoofed}"}
        )
        codes.append(log_in(server, attacker, f"nobody{n}", f"guess-{n:04d}-x").status_code)
    assert set(codes) <= {400, 429}, codes
    assert 429 in codes and codes.count(400) <= allowed(server, LOGIN_PER_CLIENT), codes
