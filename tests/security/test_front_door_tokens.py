"""Forged, stolen and misused app tokens (issue 8, the front door's JWT
cases), replayed against the served product: Traefik asks Dormouse's gate
about every request to an app on ``VIZ_HOST``, and an app is reached only
with a valid one-time entry token or the cookie it was exchanged for.

Each refused request must be 401 with the gate's own answer (Traefik hands
the forwardAuth's refusal back as it is, and does not call the app), never
a page of the app. Two demos run for the whole module (dash-wave and
bokeh-sliders); tokens are minted with the served instance's own keys, read
from its instance folder, where a test needs one no browser would be given.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from app import tokens
from app.models import utcnow
from app.views.gate import COOKIE, TOKEN_PARAM
from tests.appchecks import enter
from tests.security.helpers import GATE_REFUSAL, instance_settings, on_viz_page, post_start, visitor
from tests.serving import REQUEST_TIMEOUT, LiveServer, serve

pytestmark = pytest.mark.timeout(240)
WAVE, SLIDERS = "/demo/dash-wave/", "/demo/bokeh-sliders/"
DEADLINE = 90.0


@dataclass
class Running:
    path: str
    public_name: str
    url: str  # the app's URL on VIZ_HOST, no token
    viewer: requests.Session  # the visitor whose page started it


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    with serve(tmp_path_factory.mktemp("tokens"), SWEEP_INTERVAL="3600", START_TIMEOUT="120") as live:
        yield live


def run(server: LiveServer, path: str) -> Running:
    viewer = on_viz_page(server, path)
    assert post_start(server, viewer, path).status_code == 200
    data = server.wait(lambda: (d := server.status(path, viewer))["status"] != "starting" and d, DEADLINE,
                       f"{path} to start")  # fmt: skip
    assert data["status"] == "running", data
    return Running(path, data["public_name"], data["url"], viewer)


@pytest.fixture(scope="module")
def wave(server: LiveServer) -> Running:
    return run(server, WAVE)


@pytest.fixture(scope="module")
def sliders(server: LiveServer) -> Running:
    return run(server, SLIDERS)


@pytest.fixture(scope="module")
def keys(server: LiveServer) -> tokens.Keys:
    return instance_settings(server).jwt_keys


def entry_url(server: LiveServer, app: Running) -> str:
    """A fresh iframe URL, as the viz page's status partial hands it out."""
    return server.frame_url(app.path, app.viewer)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)[TOKEN_PARAM][0]


def with_token(app: Running, token: str) -> str:
    return f"{app.url}?{TOKEN_PARAM}={token}"


def refused(url: str, cookie: str | None = None) -> None:
    """The front door refuses ``url``: 401 from the gate, nothing of the app."""
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    answer = visitor().get(url, headers=headers, timeout=REQUEST_TIMEOUT, allow_redirects=False)
    assert answer.status_code == 401, f"{url} -> HTTP {answer.status_code}: {answer.text[:200]}"
    assert answer.text.strip() == GATE_REFUSAL, answer.text[:200]
    assert COOKIE not in answer.headers.get("Set-Cookie", ""), "a refused request was given the app cookie"


def opens(url: str) -> requests.Response:
    answer = visitor().get(url, timeout=REQUEST_TIMEOUT, allow_redirects=False)
    assert answer.status_code in (200, 302), f"{url} -> HTTP {answer.status_code}: {answer.text[:200]}"
    return answer


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_for(app: Running, **changes: object) -> dict:
    now = utcnow()
    claims = {"iss": tokens.ISSUER, "aud": tokens.audience(app.public_name), "sub": "anonymous",
              "iat": int(now.timestamp()), "exp": int((now + timedelta(seconds=60)).timestamp()),
              "jti": f"forged-{now.timestamp()}", "kind": tokens.ENTRY}  # fmt: skip
    claims.update(changes)
    return claims


def test_no_token_no_entry(wave: Running) -> None:
    """Attack: open the app's URL on VIZ_HOST directly (a guessed or leaked
    address), with an empty token, or a path under its prefix. Expected: 401."""
    for url in (wave.url, f"{wave.url}?{TOKEN_PARAM}=", f"{wave.url}_dash-layout", f"{wave.url}assets/x.css"):
        refused(url)


def test_unsigned_and_wrongly_signed_tokens_are_refused(wave: Running, keys: tokens.Keys) -> None:
    """Attack: forge an entry token: ``alg: none``; HS256 with a key of one's
    own under the real key id, or under no key id; another HMAC (HS512) with
    the real key; a token that is not a JWT. Expected: 401 for each."""
    kid, secret = keys[0]
    claims = claims_for(wave)
    forged = [
        b64({"alg": "none", "typ": "JWT", "kid": kid}) + "." + b64(claims) + ".",
        b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims) + ".",
        jwt.encode(claims, "a-key-of-my-own-of-at-least-32-bytes!", algorithm="HS256", headers={"kid": kid}),
        jwt.encode(claims, "a-key-of-my-own-of-at-least-32-bytes!", algorithm="HS256"),
        jwt.encode(claims, secret, algorithm="HS512", headers={"kid": kid}),
        "not-a-token",
    ]
    for token in forged:
        refused(with_token(wave, token))
        refused(wave.url, cookie=token)
    # the same claims, signed with the real key: the door opens (the forgeries failed on their signature)
    opens(with_token(wave, jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})))


def test_expired_and_tampered_tokens_are_refused(server: LiveServer, wave: Running, sliders: Running,
                                                 keys: tokens.Keys) -> None:  # fmt: skip
    """Attack: an expired entry token (signed with the real key); a real
    token whose payload was edited (its ``aud`` moved to another app, its
    ``exp`` pushed out, its ``kind`` made ``session``) with the signature
    kept. Expected: 401 for each."""
    expired = tokens.issue(keys, public_name=wave.public_name, subject="anonymous", kind=tokens.ENTRY,
                           ttl=60, now=utcnow() - timedelta(minutes=5))  # fmt: skip
    refused(with_token(wave, expired))

    genuine = token_of(entry_url(server, sliders))
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for change in ({"aud": tokens.audience(wave.public_name)}, {"exp": claims["exp"] + 86400},
                   {"kind": tokens.SESSION}):  # fmt: skip
        tampered = f"{header}.{b64({**claims, **change})}.{signature}"
        target = wave if "aud" in change else sliders
        refused(with_token(target, tampered))
    opens(with_token(sliders, genuine))  # untouched, the same token opens its own app


def test_another_deployments_token_opens_only_its_own(
    server: LiveServer, wave: Running, sliders: Running
) -> None:
    """Attack: a viewer allowed into one app uses its entry token, and then
    the cookie it was exchanged for, on another app's prefix. Expected: 401;
    the token still opens its own app afterwards, and its cookie only that."""
    other = entry_url(server, sliders)
    refused(with_token(wave, token_of(other)))
    app_url, session = enter(other)
    cookie = session.headers["Cookie"].split("=", 1)[1]
    refused(wave.url, cookie=cookie)
    assert session.get(app_url, timeout=REQUEST_TIMEOUT).status_code == 200


def test_a_replayed_entry_url_is_refused(server: LiveServer, wave: Running) -> None:
    """Attack: reuse an iframe's entry URL (from a browser history, a proxy
    log, a shoulder) after the page used it. Expected: 401; the viewer's own
    cookie still works."""
    entry = entry_url(server, wave)
    app_url, session = enter(entry)
    refused(entry)
    refused(entry)  # and again, from anywhere
    assert session.get(app_url, timeout=REQUEST_TIMEOUT).status_code == 200


def test_a_session_token_is_no_entry_token_and_back(
    server: LiveServer, wave: Running, keys: tokens.Keys
) -> None:
    """Attack: use the app cookie's value (a *session* token) as an entry
    token in the URL, to mint fresh cookies or hand the app to others, and an
    entry token as the cookie, to skip its one-time check. Expected: 401."""
    session = tokens.issue(
        keys, public_name=wave.public_name, subject="anonymous", kind=tokens.SESSION, ttl=600
    )
    refused(with_token(wave, session))
    refused(wave.url, cookie=token_of(entry_url(server, wave)))


def test_tokens_of_a_stopped_deployment_open_nothing(server: LiveServer, keys: tokens.Keys) -> None:
    """Attack: keep an entry URL (and an app cookie) and use them after the
    deployment was stopped, hoping to reach whatever serves its prefix next.
    Expected: refused (the gate's 401 while any route matches, Traefik's 404
    once its route is gone); a new run has a new prefix the old cookie does
    not open."""
    server.flask("apps", "publish", "--owner", "demo", "--title", "stopping", "--framework", "dash",
                 "--source", "dash-wave/app.py:server")  # fmt: skip
    app = run(server, "/demo/stopping/")
    unused = entry_url(server, app)
    _, session = enter(entry_url(server, app))
    cookie = session.headers["Cookie"].split("=", 1)[1]
    server.flask("deployments", "stop", "demo/stopping")
    for attempt in (lambda: visitor().get(unused, timeout=REQUEST_TIMEOUT),
                    lambda: visitor().get(app.url, headers={"Cookie": f"{COOKIE}={cookie}"},
                                          timeout=REQUEST_TIMEOUT)):  # fmt: skip
        answer = attempt()
        assert answer.status_code in (401, 404), f"HTTP {answer.status_code}: {answer.text[:200]}"
        assert answer.status_code == 404 or answer.text.strip() == GATE_REFUSAL
    again = run(server, "/demo/stopping/")
    assert again.public_name != app.public_name
    refused(again.url, cookie=cookie)
    refused(with_token(again, token_of(unused)))
