"""Load on the served product (the front door: Traefik, gunicorn with the
production config, the scheduler, the real local backend), over real HTTP,
each simulated viewer with a session of its own (cookie and CSRF token, as a
browser has them):

* 50 first visits at once (a barrier, then 50 ``POST …/viz/start``) make one
  deployment and one app process, on SQLite and on PostgreSQL;
* 200 viewers of the running Dash demo, each opening the page, starting it
  once, then pinging about once a second (with jitter) for 20 s: every answer
  is a 200 JSON ``running``, nothing raises, there is still exactly one
  deployment, and its stored ping moved while the writes stayed coalesced.

The servers run with ``RATE_LIMITS=0``. With the limits on, every simulated
viewer would count as one client (Traefik overwrites ``X-Forwarded-For`` with
the peer it saw, 127.0.0.1): 200 pages opening one running app in the same
minute are 200 joins (``JOIN_PER_CLIENT`` 300/min per address and gunicorn
worker with ``memory://``), but the 50 first visits at once would be starts
(``START_PER_CLIENT`` 10/min), most answered 429 (the page tries again after
``Retry-After``). Pings and JSON status polls are never limited
(tests/test_rate_limits.py); what is measured here is the serving path.

No timing is asserted; simulated viewers pace themselves with a clock (that is
the load), and every wait on the product is on a condition with a deadline.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests.factories import CSRF_META
from tests.live_instance import PLAIN_SOURCE, Row, apps_dir, leaks, rows
from tests.serving import JSON, LiveServer, start_app

pytestmark = pytest.mark.timeout(300)

VIEWERS = 200
PING_FOR = 20.0  # seconds each viewer pings
FIRST_VISITS = 50
RESOLUTION = 5.0  # ACTIVITY_RESOLUTION: a ping is written at most this often
WORKERS = 2  # LiveServer's WEB_CONCURRENCY
TIMEOUT = 60  # seconds per request: a loaded 2-core machine may queue them
DASH = "/demo/dash-wave/"
PLAIN = "/demo/plain/"


@contextmanager
def serving(tmp_path: Path, database_url: str | None = None, demos: bool = True) -> Iterator[LiveServer]:
    """The product behind its front door with the plain fixture app
    (demo/plain) published, and the demos unless told otherwise, on SQLite or
    on ``database_url``; every process it started is stopped afterwards,
    whatever happened."""
    live = LiveServer(
        tmp_path,
        APPS_DIR=str(apps_dir(tmp_path)),
        RATE_LIMITS="0",
        ACTIVITY_RESOLUTION=str(RESOLUTION),
        SWEEP_INTERVAL="3600",
        START_TIMEOUT="120",
    )
    if database_url:
        live.env["DATABASE_URL"] = database_url
    try:
        if demos:
            live.prepare()
        else:
            live.flask("db", "upgrade")
            live.flask("users", "create", "demo", "--password-stdin", stdin="correct-horse\n")
        live.flask("apps", "publish", "--owner", "demo", "--title", "plain", "--framework", "dash",
                   "--source", PLAIN_SOURCE)  # fmt: skip
        live.launch()
        yield live
    finally:
        live.close()


def database_of(server: LiveServer) -> str:
    return server.env.get("DATABASE_URL") or f"sqlite:///{server.tmp_path / 'instance' / 'dormouse.db'}"


def routes_of(server: LiveServer) -> Path:
    return server.tmp_path / "instance" / "traefik" / "routes"


def rows_of(server: LiveServer, path: str) -> list[Row]:
    owner, title = path.strip("/").split("/")
    return [r for r in rows(database_of(server)) if r.name.startswith(f"{owner}-{title}-")]


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving(tmp_path_factory.mktemp("load")) as live:
        yield live


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """The module's SQLite server, or a PostgreSQL one of this test's own."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_server")
        return
    with serving(tmp_path, request.getfixturevalue("postgres_db_url"), demos=False) as live:
        yield live


def open_page(server: LiveServer, path: str) -> requests.Session:
    """A viewer's session with the viz page open: its cookie, its CSRF token."""
    session = requests.Session()
    page = session.get(f"{server.base}{path}viz/", timeout=TIMEOUT)
    assert page.status_code == 200, (page.status_code, page.text[:300])
    token = CSRF_META.search(page.text)
    assert token, f"no CSRF token on {path}viz/"
    session.headers["X-CSRFToken"] = token.group(1)
    return session


def answer_of(response: requests.Response, what: str) -> dict:
    """The JSON status answer, or AssertionError saying what came instead."""
    if response.status_code != 200 or not response.headers.get("Content-Type", "").startswith(
        "application/json"
    ):
        raise AssertionError(f"{what}: HTTP {response.status_code} {response.text[:200]!r}")
    return response.json()


def run_threads(threads: list[threading.Thread], while_waiting=lambda: None, deadline: float = 240) -> None:
    """Start ``threads`` and wait (up to ``deadline`` s) for all of them,
    calling ``while_waiting`` about twice a second meanwhile."""
    for t in threads:
        t.start()
    end = time.monotonic() + deadline
    for t in threads:
        while t.is_alive() and time.monotonic() < end:
            while_waiting()
            t.join(0.5)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"{len(stuck)} viewer(s) still running after {deadline} s: {stuck[:5]}"


# --- 50 first visits at once ---------------------------------------------------


def test_fifty_simultaneous_first_visits_make_one_deployment(server: LiveServer) -> None:
    assert rows_of(server, PLAIN) == []  # a first visit: nothing was ever started
    sessions = [open_page(server, PLAIN) for _ in range(FIRST_VISITS)]
    barrier = threading.Barrier(FIRST_VISITS)
    answers: list[dict] = []
    errors: list[str] = []

    def visit(session: requests.Session) -> None:
        try:
            barrier.wait(60)
            response = session.post(f"{server.base}{PLAIN}viz/start", headers=JSON, timeout=TIMEOUT)
            answers.append(answer_of(response, "start"))
        except Exception as exc:  # reported below, with the others
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            session.close()

    threads = [threading.Thread(target=visit, args=(s,), name=f"visit-{i}") for i, s in enumerate(sessions)]
    run_threads(threads)
    assert errors == [], errors[:10]
    assert len(answers) == FIRST_VISITS
    assert {a["status"] for a in answers} <= {"starting", "running"}, {a["status"] for a in answers}
    names = {a["public_name"] for a in answers}
    assert len(names) == 1, names  # everyone was shown the same deployment
    (row,) = rows_of(server, PLAIN)
    assert row.public_name in names and row.live
    run_dir = server.run_dir
    assert [p.stem for p in run_dir.glob("demo-plain-*.json")] == [row.name]  # one app process
    assert leaks(rows(database_of(server)), run_dir, routes_of(server)) == []
    server.flask("deployments", "stop", "demo/plain")  # not left running under the next test's load


# --- 200 viewers pinging -------------------------------------------------------


@dataclass
class Viewer:
    number: int
    pings: int = 0
    errors: list[str] = field(default_factory=list)


def test_two_hundred_viewers_pinging_get_only_running(sqlite_server: LiveServer) -> None:
    server = sqlite_server
    first = requests.Session()
    try:
        start_app(server, first, DASH)
        running = server.wait(lambda: (s := server.status(DASH, first))["status"] == "running" and s, 120,
                              "the Dash demo to run")  # fmt: skip
    finally:
        first.close()
    public_name = running["public_name"]
    viewers = [Viewer(i) for i in range(VIEWERS)]
    opened: list[int] = []  # viewers whose page is open and started (or who failed trying)
    go = threading.Event()  # set once every page is open; the pings end PING_FOR s later
    until: list[float] = []

    def view(viewer: Viewer) -> None:
        rng = random.Random(viewer.number)
        session = None
        try:
            try:
                session = open_page(server, DASH)
                response = session.post(f"{server.base}{DASH}viz/start", headers=JSON, timeout=TIMEOUT)
                started = answer_of(response, "start")
                if started["status"] != "running" or started["public_name"] != public_name:
                    raise AssertionError(f"start: {started['status']} {started['public_name']}")
            finally:
                opened.append(viewer.number)
            if not go.wait(180):
                raise AssertionError("the pings never began")
            next_ping = time.monotonic() + rng.uniform(0, 1)
            while next_ping < until[0]:
                time.sleep(max(0.0, next_ping - time.monotonic()))  # the viewer's own pace
                response = session.post(f"{server.base}{DASH}viz/ping", data={"deployment": public_name},
                                        headers=JSON, timeout=TIMEOUT)  # fmt: skip
                answer = answer_of(response, "ping")
                if answer["status"] != "running":
                    raise AssertionError(f"ping: {answer['status']} ({answer['reason']!r})")
                viewer.pings += 1
                next_ping += 1.0 + rng.uniform(-0.3, 0.3)
        except Exception as exc:
            viewer.errors.append(f"viewer {viewer.number}: {type(exc).__name__}: {exc}")
        finally:
            if session is not None:
                session.close()

    seen: list[datetime] = []  # the stored ping, read from the database while the load runs

    def watch() -> None:
        """Called about twice a second: let the pings begin once every page
        is open, then read the stored ping."""
        if not go.is_set() and len(opened) == VIEWERS:
            until.append(time.monotonic() + PING_FOR)
            go.set()
        if go.is_set():
            (row,) = rows_of(server, DASH)
            if row.latest_ping_at is not None and (not seen or seen[-1] != row.latest_ping_at):
                seen.append(row.latest_ping_at)

    threads = [threading.Thread(target=view, args=(v,), name=f"viewer-{v.number}") for v in viewers]
    began = time.monotonic()
    run_threads(threads, while_waiting=watch)
    elapsed = time.monotonic() - began
    errors = [e for v in viewers for e in v.errors]
    assert errors == [], f"{len(errors)} errors; the first: {errors[:10]}"
    assert all(v.pings > 0 for v in viewers), [v.number for v in viewers if v.pings == 0][:10]
    total = sum(v.pings for v in viewers)

    # one deployment however many viewers, still running
    (row,) = rows_of(server, DASH)
    assert row.public_name == public_name and row.status == "running"
    # its stored ping moved during the load, and few of the pings wrote it:
    # at most once per ACTIVITY_RESOLUTION (per worker, at the very most)
    assert row.latest_ping_at is not None and seen and row.latest_ping_at > seen[0], seen
    writes_bound = WORKERS * (elapsed / RESOLUTION + 1) + 1
    assert 2 <= len(set(seen)) <= writes_bound, (len(set(seen)), writes_bound, total)
    assert len(set(seen)) * 50 < total  # coalesced: the row is not written per ping
