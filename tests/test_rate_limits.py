"""Rate limits (app/rate_limits.py): login per name and per client, start per
client and per app, publish, the entry-token partials; 429 with Retry-After
and a friendly answer; what is never limited; whose X-Forwarded-For is
believed; RATE_LIMITS=0; the storage URI.

The other tests run with RATE_LIMITS=0 (tests/factories.make_settings); these
turn the limits on. The Flask test client's peer is 127.0.0.1, as Traefik's is
behind the front door, so its X-Forwarded-For names the client.
"""

from __future__ import annotations

import html
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import limits.storage.memory
import pytest
from flask import Flask, request
from limits.storage import MemoryStorage, RedisStorage
from werkzeug.test import Client

from app import clients, lifecycle, rate_limits, start_schedule
from app.clients import ForwardedFor, trusted_peer
from app.extensions import db
from app.models import Deployment, VizApp
from app.rate_limits import ENTRY_TOKENS, EXTENSION
from app.views.gate import TOKEN_PARAM
from app.views.viz import STOP_POLLING
from tests.factories import CSRFClient, build_app, login, make_app, make_settings, make_user
from tests.fakes import FakeBackend
from tests.waiting import wait_for

JSON = {"Accept": "application/json"}
HX = {"HX-Request": "true"}
WRONG = "not-the-password"


def _limited_app(tmp_path: Path, **env: str) -> Iterator[Flask]:
    app = build_app(make_settings(tmp_path, RATE_LIMITS="1", **env))
    app.test_client_class = CSRFClient
    app.extensions["dormouse.backend"] = FakeBackend()
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Flask]:
    """An app with the limits on (and a fake backend), alice and her app."""
    yield from _limited_app(tmp_path)


@pytest.fixture
def client(limited: Flask) -> CSRFClient:
    make_user("alice")
    make_user("bob")
    return limited.test_client()  # type: ignore[return-value]


def _from(address: str) -> dict[str, str]:
    """Headers of a request Traefik passes on from ``address``."""
    return {"X-Forwarded-For": address}


def _attempt(client: CSRFClient, name: str, password: str = WRONG, address: str = "203.0.113.1"):
    return client.post("/login", data={"username": name, "password": password}, headers=_from(address))


def _retry_after(response) -> int:
    value = int(response.headers["Retry-After"])
    assert 1 <= value <= 3600
    return value


class _Clock:
    """``time`` for the limits' in-memory storage, moved on by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


# --- login ------------------------------------------------------------------------------


def test_the_sixth_wrong_password_for_a_name_within_a_minute_is_refused(client):
    for _ in range(5):
        assert _attempt(client, "alice").status_code == 400
    refused = _attempt(client, "alice")
    assert refused.status_code == 429
    seconds = _retry_after(refused)
    page = refused.get_data(as_text=True)
    assert "Too many requests" in page and f"wait {seconds} s" in page
    assert refused.headers["Cache-Control"] == "no-store"


def test_a_name_is_limited_across_clients(client):
    """An attacker rotating addresses gets no more guesses at one name."""
    for n in range(5):
        assert _attempt(client, "alice", address=f"198.51.100.{n}").status_code == 400
    assert _attempt(client, "alice", address="192.0.2.77").status_code == 429
    assert _attempt(client, " Alice ", address="192.0.2.78").status_code == 429  # one name, spelt otherwise


def test_another_name_still_logs_in_during_a_lockout(client):
    for _ in range(6):
        _attempt(client, "alice")
    response = _attempt(client, "bob", password="correct-horse")
    assert response.status_code == 302


def test_the_right_password_during_a_lockout_is_refused_too(client):
    """No oracle: a locked name answers 429 whatever the password."""
    for _ in range(5):
        _attempt(client, "alice")
    response = _attempt(client, "alice", password="correct-horse", address="192.0.2.5")
    assert response.status_code == 429
    assert "Log out" not in client.get("/").get_data(as_text=True)


def test_one_client_trying_many_names_is_limited(client):
    for n in range(20):
        assert _attempt(client, f"user{n}").status_code == 400
    assert _attempt(client, "bob", password="correct-horse").status_code == 429
    assert _attempt(client, "bob", password="correct-horse", address="203.0.113.2").status_code == 302


def test_a_lockout_ends_a_window_after_the_flood_stops(client, monkeypatch):
    """Sliding windows: refused attempts do not count, so the real user gets
    in one minute after the last counted one, however long the flood went on."""
    clock = _Clock()
    monkeypatch.setattr(limits.storage.memory, "time", clock)
    for n in range(40):
        _attempt(client, "alice", address=f"198.51.100.{n}")
        clock.offset += 0.1
    assert _attempt(client, "alice", password="correct-horse").status_code == 429
    clock.offset += 61
    assert _attempt(client, "alice", password="correct-horse").status_code == 302


def test_login_pages_are_not_counted(client):
    for _ in range(30):
        assert client.get("/login", headers=_from("203.0.113.1")).status_code == 200
    assert _attempt(client, "alice", password="correct-horse").status_code == 302


# --- start ------------------------------------------------------------------------------


@pytest.fixture
def apps(client):
    from app.models import User

    alice = db.session.scalar(db.select(User).where(User.username == "alice"))
    return make_app(alice, "wave"), make_app(alice, "sliders", framework="bokeh")


def _start(client: CSRFClient, path: str, address: str, headers: dict[str, str] | None = None):
    return client.post(f"{path}viz/start", headers={**_from(address), **(headers or JSON)})


def _asleep(title: str) -> None:
    """Stop alice's ``title`` (as the sweep would): its next start makes a deployment."""
    from app.models import User

    alice = db.session.scalar(db.select(User).where(User.username == "alice"))
    app = db.session.scalar(db.select(VizApp).where(VizApp.owner_id == alice.id, VizApp.title == title))
    dep = lifecycle.live_deployment(app)
    assert dep is not None and lifecycle.stop(dep, reason="idle")


def test_one_client_may_start_ten_apps_a_minute(client, apps):
    for n in range(10):
        title = "wave" if n % 2 else "sliders"
        assert _start(client, f"/alice/{title}/", "203.0.113.1").status_code == 200
        _asleep(title)  # so that each start makes a deployment
    refused = _start(client, "/alice/wave/", "203.0.113.1")
    assert refused.status_code == 429
    body = refused.get_json()
    assert body["status"] == 429 and body["retry_after"] == _retry_after(refused)
    assert "Too many requests" in body["error"]
    assert _start(client, "/alice/wave/", "203.0.113.2").status_code == 200  # someone else


def test_one_app_may_be_started_sixty_times_a_minute_by_everyone(client, apps):
    for n in range(60):
        assert _start(client, "/alice/wave/", f"198.51.100.{n}").status_code == 200
        _asleep("wave")
    assert _start(client, "/alice/wave/", "192.0.2.1").status_code == 429
    assert _start(client, "/alice/sliders/", "192.0.2.1").status_code == 200  # another app


def test_a_class_behind_one_address_joins_a_running_app(client, apps):
    """Starts that find the app running make nothing: they count as joins
    (300 a minute per client), not as starts, so a classroom behind one NAT
    opens one app together; and the starts limit still holds for that address."""
    assert _start(client, "/alice/wave/", "203.0.113.1").status_code == 200  # makes the deployment
    for _ in range(300):
        answer = _start(client, "/alice/wave/", "203.0.113.1")
        assert answer.status_code == 200 and answer.get_json()["status"] == "starting"
    assert len(db.session.scalars(db.select(Deployment)).all()) == 1
    assert _start(client, "/alice/wave/", "203.0.113.1").status_code == 429  # the 301st join
    # the first start made the deployment: nine more starts that make one are left
    for _ in range(9):
        assert _start(client, "/alice/sliders/", "203.0.113.1", HX).status_code == 200
        _asleep("sliders")
    assert _start(client, "/alice/sliders/", "203.0.113.1").status_code == 429


def test_one_running_app_may_be_joined_six_hundred_times_a_minute_by_everyone(client, apps):
    assert _start(client, "/alice/wave/", "198.51.100.1").status_code == 200  # makes the deployment
    for n in range(600):
        assert _start(client, "/alice/wave/", f"198.51.{100 + n // 250}.{n % 250}").status_code == 200
    assert _start(client, "/alice/wave/", "192.0.2.1").status_code == 429  # a join: each writes a page load
    assert _start(client, "/alice/sliders/", "192.0.2.1").status_code == 200  # a start, of another app


def test_a_strangers_starts_of_a_private_app_count_alike_running_or_not(client, apps):
    """Joins are only for apps the visitor may see: a stranger's starts of a
    private app count as starts (each a 404) whether it runs or not, so the
    limit tells nothing of whether it runs."""
    wave, sliders = apps
    wave.is_public = sliders.is_public = False
    db.session.commit()
    login(client, "alice")
    assert _start(client, "/alice/wave/", "203.0.113.9").status_code == 200  # running now
    client.post("/logout")
    for title, address in (("wave", "203.0.113.1"), ("sliders", "203.0.113.2")):  # running, asleep
        codes = [_start(client, f"/alice/{title}/", address).status_code for _ in range(11)]
        assert codes == [404] * 10 + [429], title
    assert lifecycle.live_deployment(wave) is not None and lifecycle.live_deployment(sliders) is None


def test_a_refused_start_on_the_viz_page_tries_again_by_itself(client, apps):
    for _ in range(10):
        _start(client, "/alice/wave/", "203.0.113.1", HX)
        _asleep("wave")
    refused = _start(client, "/alice/wave/", "203.0.113.1", HX)
    assert refused.status_code == 429
    seconds = _retry_after(refused)
    partial = refused.get_data(as_text=True)
    assert 'id="viz-status"' in partial
    assert 'hx-post="/alice/wave/viz/start"' in partial
    assert f'hx-trigger="load delay:{seconds}s"' in partial
    assert f'trying again in <span class="retry-after">{seconds}</span> s' in partial


def test_one_client_may_say_goodbye_thirty_times_a_minute(client, apps):
    assert _start(client, "/alice/wave/", "203.0.113.1").status_code == 200
    for _ in range(30):
        response = client.post("/alice/wave/viz/goodbye", headers=_from("203.0.113.1"))
        assert response.status_code == 204
    assert client.post("/alice/wave/viz/goodbye", headers=_from("203.0.113.1")).status_code == 429
    assert client.post("/alice/wave/viz/goodbye", headers=_from("203.0.113.2")).status_code == 204  # another


# --- never limited, and the entry-token partials ------------------------------------------


def test_pings_and_json_status_polls_are_never_limited(client, apps):
    assert _start(client, "/alice/wave/", "203.0.113.1").status_code == 200
    for _ in range(300):
        response = client.get("/alice/wave/viz/status", headers={**JSON, **_from("203.0.113.1")})
        assert response.status_code == 200
    for _ in range(300):
        response = client.post("/alice/wave/viz/ping", headers={**JSON, **_from("203.0.113.1")})
        assert response.status_code == 200


def test_the_gate_is_never_limited(client, limited):
    for _ in range(500):
        response = client.get(
            "/_auth/viz", headers={"X-Forwarded-Uri": "/alice/wave/default-abc234/", **_from("203.0.113.1")}
        )
        assert response.status_code == 401
    # Nor does any request but a limited view's pay for the limiter: its
    # app-wide hooks are gone (app/rate_limits.py, _drop_global_hooks).
    limiter = limited.extensions[EXTENSION]
    hooks = [
        *limited.before_request_funcs.get(None, []),
        *limited.after_request_funcs.get(None, []),
        *limited.teardown_request_funcs.get(None, []),
    ]
    assert not [hook for hook in hooks if getattr(hook, "__self__", None) is limiter]
    assert not [hook for hook in hooks if limiter in getattr(hook, "args", ())]


def _tokens_allowed(app: Flask) -> int:
    return app.extensions[ENTRY_TOKENS].items[0].amount


def _running(app: Flask, address: str = "203.0.113.1") -> tuple[CSRFClient, str]:
    """alice's app started from ``address`` and running; its status URL."""
    client = app.test_client()
    make_app(make_user("alice"), "wave")
    public_name = _start(client, "/alice/wave/", address).get_json()["public_name"]
    backend = app.extensions["dormouse.backend"]
    backend.set(next(ref for ref in backend.states if public_name in ref), "running")
    url = f"/alice/wave/viz/status?deployment={public_name}"
    wait_for(
        lambda: client.get(url, headers={**JSON, **_from(address)}).get_json()["status"] == "running",
        10,
        "the start to be read as running",
    )
    return client, url  # type: ignore[return-value]


def _exhaust_entry_tokens(app: Flask, address: str = "203.0.113.1") -> tuple[CSRFClient, str]:
    """A running app's status partial, each with an entry token, asked for as often as the limit allows."""
    client, url = _running(app, address)
    for _ in range(_tokens_allowed(app)):
        answer = client.get(url, headers={**HX, **_from(address)})
        assert answer.status_code == STOP_POLLING and f"{TOKEN_PARAM}=" in answer.get_data(as_text=True)
    return client, url


def test_entry_tokens_are_limited_per_client(limited):
    client, url = _exhaust_entry_tokens(limited)
    refused = client.get(url, headers={**HX, **_from("203.0.113.1")})
    assert refused.status_code == 429
    seconds = _retry_after(refused)
    partial = html.unescape(refused.get_data(as_text=True))
    assert f'hx-get="{url}"' in partial and f"load delay:{seconds}s" in partial
    # Pings that answer HTML carry tokens too, and share the count; JSON carries none.
    assert client.post("/alice/wave/viz/ping", headers={**HX, **_from("203.0.113.1")}).status_code == 429
    assert client.get(url, headers={**JSON, **_from("203.0.113.1")}).status_code == 200
    assert client.get(url, headers={**HX, **_from("203.0.113.2")}).status_code == STOP_POLLING


def test_a_class_behind_one_address_polls_a_starting_app_unlimited(limited):
    """A starting app's partials carry no entry token and count for nothing:
    six pages behind one address, each polling a start's first minute (84
    polls at the default STATUS_POLL_INTERVAL), are never refused; each then
    gets its entry token once the app runs."""
    client = limited.test_client()
    make_app(make_user("alice"), "wave")
    public_name = _start(client, "/alice/wave/", "203.0.113.1").get_json()["public_name"]
    url = f"/alice/wave/viz/status?deployment={public_name}"
    interval = limited.config["DORMOUSE"].status_poll_interval
    polls = 6 * start_schedule.polls_within(60, interval)  # more than this client's tokens
    assert polls > _tokens_allowed(limited)
    for _ in range(polls):
        answer = client.get(url, headers={**HX, **_from("203.0.113.1")})
        assert answer.status_code == 200 and f"{TOKEN_PARAM}=" not in answer.get_data(as_text=True)
    backend = limited.extensions["dormouse.backend"]
    backend.set(next(ref for ref in backend.states if public_name in ref), "running")
    wait_for(
        lambda: client.get(url, headers={**HX, **_from("203.0.113.1")}).status_code == STOP_POLLING,
        10,
        "the running partial",
    )
    for _ in range(6):
        assert client.get(url, headers={**HX, **_from("203.0.113.1")}).status_code == STOP_POLLING


def test_the_entry_token_limit_is_a_sliding_window(limited):
    now = [1000.0]  # stands still while the tokens are counted, however slow the machine
    limited.extensions[ENTRY_TOKENS].clock = lambda: now[0]
    client, url = _exhaust_entry_tokens(limited)
    now[0] += 30
    refused = client.get(url, headers={**HX, **_from("203.0.113.1")})
    assert refused.status_code == 429 and _retry_after(refused) == 30  # when the first counted one ages out
    now[0] += 31
    assert client.get(url, headers={**HX, **_from("203.0.113.1")}).status_code == STOP_POLLING


def test_the_entry_token_limit_counts_in_memory_while_redis_is_unreachable(tmp_path):
    uri = f"redis://127.0.0.1:{_closed_port()}/3"
    for app in _limited_app(tmp_path, RATE_LIMIT_STORAGE=uri):
        client, url = _exhaust_entry_tokens(app)
        assert app.extensions[EXTENSION]._storage_dead
        refused = client.get(url, headers={**HX, **_from("203.0.113.1")})
        assert refused.status_code == 429 and _retry_after(refused) <= 60
        assert client.get(url, headers={**HX, **_from("203.0.113.2")}).status_code == STOP_POLLING


# --- publish --------------------------------------------------------------------------------


def test_publishing_is_limited_per_user(client):
    assert login(client).status_code == 302
    form = {"title": "", "framework": "dash", "source": "dash-wave/app.py:server"}
    for n in range(10):
        assert client.post("/publish", data=form, headers=_from(f"198.51.100.{n}")).status_code == 400
    refused = client.post("/publish", data=form, headers=_from("192.0.2.1"))
    assert refused.status_code == 429
    _retry_after(refused)
    assert client.get("/publish").status_code == 200  # the form itself is not limited


# --- who the client is ------------------------------------------------------------------------


def test_forwarded_for_is_ignored_from_a_peer_that_is_not_loopback(client, apps):
    """A direct peer that is not Traefik cannot pick the address it is counted by."""
    peer = {"REMOTE_ADDR": "10.0.0.5"}
    for n in range(10):
        response = client.post(
            "/alice/wave/viz/start", headers={**JSON, **_from(f"198.51.100.{n}")}, environ_overrides=peer
        )
        assert response.status_code == 200
        _asleep("wave")
    spoofed = client.post(
        "/alice/wave/viz/start", headers={**JSON, **_from("192.0.2.99")}, environ_overrides=peer
    )
    assert spoofed.status_code == 429
    assert _start(client, "/alice/wave/", "192.0.2.99").status_code == 200  # the real 192.0.2.99


@pytest.mark.parametrize(
    ("peer", "backend", "trusted"),
    [
        ("127.0.0.1", "local", True),
        ("127.0.0.2", "local", True),
        ("::1", "local", True),
        ("::ffff:127.0.0.1", "local", True),
        ("10.0.0.5", "local", False),
        ("192.168.1.20", "local", False),
        ("203.0.113.1", "local", False),
        ("", "local", False),
        ("not-an-address", "local", False),
        # On Kubernetes Traefik is a pod: an address inside the cluster.
        ("10.42.0.17", "kubernetes", True),
        ("100.64.3.4", "kubernetes", True),
        ("fd00:10:244::5", "kubernetes", True),
        ("127.0.0.1", "kubernetes", True),
        ("8.8.8.8", "kubernetes", False),
        ("2001:4860:4860::8888", "kubernetes", False),
    ],
)
def test_which_peers_may_name_the_client(peer, backend, trusted):
    assert trusted_peer(peer, backend) is trusted


def _seen_by(backend: str, peer: str, headers: dict[str, str]) -> dict[str, str]:
    seen: dict[str, str] = {}

    def wsgi(environ, start_response):
        seen.update(addr=environ["REMOTE_ADDR"], host=environ["HTTP_HOST"], scheme=environ["wsgi.url_scheme"])
        start_response("204 No Content", [])
        return []

    Client(ForwardedFor(wsgi, backend)).get(
        "/", headers={"Host": "dormouse.localhost", **headers}, environ_overrides={"REMOTE_ADDR": peer}
    )
    return seen


def test_only_the_hop_traefik_adds_is_read_and_nothing_else_forwarded():
    forwarded = {
        "X-Forwarded-For": "6.6.6.6, 203.0.113.9",  # the client's own claim, then Traefik's
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
    }
    seen = _seen_by("local", "127.0.0.1", forwarded)
    assert seen == {"addr": "203.0.113.9", "host": "dormouse.localhost", "scheme": "http"}
    assert _seen_by("local", "10.0.0.5", forwarded)["addr"] == "10.0.0.5"
    assert _seen_by("kubernetes", "10.42.0.17", forwarded)["addr"] == "203.0.113.9"
    assert _seen_by("kubernetes", "8.8.8.8", forwarded)["addr"] == "8.8.8.8"


def test_ipv6_clients_count_per_64(limited):
    def address(peer: str) -> str:
        with limited.test_request_context("/", environ_overrides={"REMOTE_ADDR": peer}):
            assert request.remote_addr == peer
            return clients.client_address()

    assert address("2001:db8:1:2::1") == address("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address("2001:db8:1:3::1") != address("2001:db8:1:2::1")
    assert address("::ffff:198.51.100.7") == "198.51.100.7"
    assert address("198.51.100.7") == "198.51.100.7"


# --- configuration ----------------------------------------------------------------------------


def test_rate_limits_off_limits_nothing(tmp_path):
    app = build_app(make_settings(tmp_path, RATE_LIMITS="0"))
    app.test_client_class = CSRFClient
    app.extensions["dormouse.backend"] = FakeBackend()
    with app.app_context():
        make_app(make_user("alice"), "wave")
        client = app.test_client()
        assert not app.extensions[EXTENSION].enabled
        for _ in range(25):
            assert _attempt(client, "alice").status_code == 400
        for _ in range(15):
            assert _start(client, "/alice/wave/", "203.0.113.1").status_code == 200
        db.session.remove()
        db.engine.dispose()


def test_the_default_storage_is_in_memory(limited):
    assert limited.config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert isinstance(limited.extensions[EXTENSION].storage, MemoryStorage)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def test_a_redis_storage_uri_reaches_flask_limiter(tmp_path):
    """No Redis server here: the URI is handed to Flask-Limiter as it is, and
    while Redis cannot be reached each worker counts in memory, so limits still
    hold and nobody gets a 500."""
    uri = f"redis://127.0.0.1:{_closed_port()}/3"
    for app in _limited_app(tmp_path, RATE_LIMIT_STORAGE=uri):
        assert app.config["RATELIMIT_STORAGE_URI"] == uri
        assert isinstance(app.extensions[EXTENSION].storage, RedisStorage)
        make_user("alice")
        client = app.test_client()
        assert [_attempt(client, "alice").status_code for _ in range(6)] == [400] * 5 + [429]


def test_limit_strings_parse():
    from limits import parse_many

    for value in (
        rate_limits.LOGIN_PER_NAME,
        rate_limits.LOGIN_PER_CLIENT,
        rate_limits.START_PER_CLIENT,
        rate_limits.START_PER_APP,
        rate_limits.PUBLISH_PER_USER,
        rate_limits.GOODBYE_PER_CLIENT,
    ):
        assert parse_many(value)


def test_a_429_from_elsewhere_keeps_its_own_retry_after(limited):
    from werkzeug.exceptions import TooManyRequests

    with limited.test_request_context("/"):
        assert rate_limits.retry_after(TooManyRequests(retry_after=30)) == 30
        assert rate_limits.retry_after(TooManyRequests()) == 60
