"""What the attack replays in tests/security/ share: clients that come from
chosen loopback addresses, the served product's database and keys read from
beside it, raw requests that keep their dot segments, and a site in this
process for the attacks a test client replays faithfully.

**Many clients on one machine.** Linux routes all of 127.0.0.0/8 to the
loopback interface, so a connection made from ``127.0.0.N`` reaches Traefik
from peer ``127.0.0.N``, and the ``X-Forwarded-For`` Traefik writes (the only
client identity Dormouse trusts: one proxy hop) names it. :func:`visitor`
makes such a client; a floods test plays fifty people that way.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests
from flask import Flask
from requests.adapters import HTTPAdapter
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.extensions import db
from app.models import Deployment, User, VizApp
from tests.factories import CSRF_META, CSRFClient, build_app, make_app, make_settings, make_user
from tests.fakes import FakeBackend
from tests.serving import REQUEST_TIMEOUT, LiveServer

T = TypeVar("T")

JSON = {"Accept": "application/json"}
HX = {"HX-Request": "true"}
PASSWORD = "correct-horse"
GATE_REFUSAL = "Not authorized to view this app."  # the gate's 401 body, which Traefik passes on
LIVE = ("starting", "running")


# --- clients of the served product -------------------------------------------


class _FromAddress(HTTPAdapter):
    """Connections made from one local address (``127.0.0.N``)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(pool_connections=2, pool_maxsize=4)

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def visitor(address: str = "127.0.0.1") -> requests.Session:
    """A browser-like client of its own, its connections from ``address``
    (see the module's docstring); never through a proxy."""
    session = requests.Session()
    session.trust_env = False
    adapter = _FromAddress(address)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def client_address(n: int) -> str:
    """The n-th simulated client (n >= 0): 127.0.1.1, 127.0.1.2, ... (never
    127.0.0.1, the test's own address)."""
    return f"127.0.{1 + n // 250}.{1 + n % 250}"


def csrf_from(session: requests.Session, url: str) -> str:
    """GET ``url`` (which carries the page's CSRF meta tag) and return the token;
    the session now holds the matching session cookie."""
    page = session.get(url, timeout=REQUEST_TIMEOUT)
    page.raise_for_status()
    found = CSRF_META.search(page.text)
    assert found, f"no CSRF token on {url}"
    return found.group(1)


def on_viz_page(server: LiveServer, path: str, session: requests.Session | None = None) -> requests.Session:
    """What a browser does before its viz page POSTs start: load the page (a
    session cookie and the page's CSRF token, sent as X-CSRFToken from now on)."""
    session = session or visitor()
    session.headers["X-CSRFToken"] = csrf_from(session, f"{server.base}{path}viz/")
    return session


def post_start(server: LiveServer, session: requests.Session, path: str) -> requests.Response:
    return session.post(f"{server.base}{path}viz/start", headers=JSON, timeout=REQUEST_TIMEOUT)


def log_in(
    server: LiveServer, session: requests.Session, username: str, password: str, *, remember: bool = False
) -> requests.Response:
    """The login form as a browser posts it (not following the redirect)."""
    token = csrf_from(session, f"{server.base}/login")
    form = {"csrf_token": token, "username": username, "password": password}
    if remember:
        form["remember"] = "y"
    return session.post(f"{server.base}/login", data=form, allow_redirects=False, timeout=REQUEST_TIMEOUT)


def create_user(server: LiveServer, username: str, password: str = PASSWORD) -> None:
    server.flask("users", "create", username, "--password-stdin", stdin=password + "\n")


def all_at_once(count: int, work: Callable[[int], T], timeout: float = 120) -> list[T]:
    """``work(0..count-1)`` in ``count`` threads released together; the results
    in order (an exception in a thread fails the caller, naming it)."""
    barrier = threading.Barrier(count)
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = work(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a request thread never finished"
    assert not errors, f"{len(errors)} requests raised, e.g. {errors[0]!r}"
    return results  # type: ignore[return-value]


# --- the served product's own state, read from beside it ------------------------


@dataclass(frozen=True)
class Row:
    app: str  # owner/title
    public_name: str
    status: str


def deployment_rows(server: LiveServer) -> list[Row]:
    """Every deployment the served product ever made (stopped and failed ones
    too), read straight from its SQLite database."""
    engine = create_engine(f"sqlite:///{server.tmp_path / 'instance' / 'dormouse.db'}", poolclass=NullPool)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(User.username, VizApp.title, Deployment.public_name, Deployment.status)
                .join(VizApp, Deployment.app_id == VizApp.id)
                .join(User, VizApp.owner_id == User.id)
                .order_by(Deployment.id)
            ).all()
    finally:
        engine.dispose()
    return [Row(f"{owner}/{title}", public, status) for owner, title, public, status in rows]


def live_rows(server: LiveServer) -> list[Row]:
    return [row for row in deployment_rows(server) if row.status in LIVE]


def instance_settings(server: LiveServer, **env: str) -> Settings:
    """The served product's settings as far as its instance decides them: its
    database, and the JWT keys generated into its instance folder."""
    instance = server.tmp_path / "instance"
    return make_settings(server.tmp_path, database_url=f"sqlite:///{instance / 'dormouse.db'}",
                         INSTANCE_PATH=str(instance), **env)  # fmt: skip


@contextmanager
def beside(server: LiveServer) -> Iterator[Flask]:
    """Dormouse in this process on the served product's instance (its database
    and keys), in an app context, for the test's own reads and writes."""
    app = build_app(instance_settings(server))
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def route_files(server: LiveServer) -> dict[str, str]:
    """Traefik's route files as the served product wrote them: {name: text}."""
    routes = server.tmp_path / "instance" / "traefik" / "routes"
    return {p.name: p.read_text() for p in sorted(routes.glob("*.yml"))}


# --- raw HTTP, dot segments kept ------------------------------------------------


def raw_get(server: LiveServer, path: str, host: str, cookie: str | None = None) -> tuple[int, str]:
    """GET ``path`` exactly as written (``requests`` would resolve ``..``
    segments before sending) with ``Host: host``; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        if cookie:
            conn.putheader("Cookie", cookie)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


# --- Dormouse in this process ---------------------------------------------------


@dataclass
class Site:
    """Dormouse in this process with the scripted backend: alice owns the
    public app ``wave``, bob owns nothing; rate limits off."""

    app: Flask
    backend: FakeBackend
    tmp_path: Path

    def client(self, username: str | None = None) -> CSRFClient:
        client: CSRFClient = self.app.test_client()  # type: ignore[assignment]
        if username:
            answer = client.post("/login", data={"username": username, "password": PASSWORD})
            assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
        return client

    @contextmanager
    def ctx(self) -> Iterator[None]:
        with self.app.app_context():
            try:
                yield
            finally:
                db.session.remove()

    def titles(self) -> set[str]:
        with self.ctx():
            return set(db.session.scalars(select(VizApp.title)))


@contextmanager
def make_site(tmp_path: Path, **env: str) -> Iterator[Site]:
    settings = make_settings(tmp_path, **{"RATE_LIMITS": "0", **env})
    app = build_app(settings)
    app.test_client_class = CSRFClient
    backend = FakeBackend()
    app.extensions["dormouse.backend"] = backend
    try:
        with app.app_context():
            alice = make_user("alice", PASSWORD)
            make_user("bob", PASSWORD)
            make_app(alice, "wave", description="A public wave.")
            db.session.remove()
        yield Site(app, backend, tmp_path)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
