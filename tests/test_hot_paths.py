"""The viz page's hot paths for a running app (app/watching.py), on SQLite and
PostgreSQL, through the views, with the clock driven by the test: pings
written at most once per ACTIVITY_RESOLUTION; at most one SQL statement and
no backend call per poll or ping; a stop or a visibility change by another
worker (a write on another connection) seen within a second, one in this
worker at once; private, unready and deleted apps still 404 to strangers."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, event, select, update

from app import lifecycle, managing
from app.extensions import db
from app.models import Deployment, Environment, VizApp, utcnow
from app.views import viz
from tests.factories import login, make_app, make_deployment, make_user

JSON = {"Accept": "application/json"}
HX = {"HX-Request": "true"}
S = timedelta(seconds=1)


class Clock:
    """The views' clock (``utcnow`` in app/views/viz.py), moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds * S


@pytest.fixture
def clock(monkeypatch):
    found = Clock()
    monkeypatch.setattr(viz, "utcnow", found)
    return found


@pytest.fixture
def wave(any_app, any_fake_backend):
    return make_app(make_user("alice"), "wave")


@pytest.fixture
def running(wave, any_fake_backend, clock):
    dep = make_deployment(wave, clock.now - 60 * S, ready_at=clock.now - 50 * S)
    dep.backend_ref = any_fake_backend.create(lifecycle.spec_for(dep))
    db.session.commit()
    any_fake_backend.calls.clear()
    return dep


class Statements:
    """The SQL statements the app's engine runs while counting."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, *args):
        self.seen.append(statement)

    @property
    def updates(self) -> int:
        return sum(s.lstrip().upper().startswith("UPDATE") for s in self.seen)

    def clear(self) -> None:
        self.seen.clear()


def another_worker(any_app):
    """A connection of another process: its writes do not pass through this
    app's engine, so this worker's memo learns them only by reading again."""
    return create_engine(any_app.config["SQLALCHEMY_DATABASE_URI"])


def viewer(any_app):
    """A visitor's client, with its page's CSRF token (fetched once, as a page holds it)."""
    client = any_app.test_client()
    client.token = client.csrf_token()
    return client


def ping(client, dep):
    headers = {**JSON, "X-CSRFToken": client.token}
    return client.post(
        "/alice/wave/viz/ping", data={"deployment": dep.public_name}, headers=headers, csrf=False
    )


def status(client, dep, headers=JSON):
    return client.get(f"/alice/wave/viz/status?deployment={dep.public_name}", headers=headers)


def stored_ping(dep):
    db.session.expire_all()
    return db.session.get(Deployment, dep.id).latest_ping_at


def test_pings_write_at_most_once_per_resolution(any_app, running, clock):
    client = viewer(any_app)
    resolution = any_app.config["DORMOUSE"].activity_resolution
    first = clock.now
    with Statements(db.engine) as sql:
        for _ in range(20):  # many tabs pinging within one resolution
            answer = ping(client, running)
            assert answer.status_code == 200 and answer.get_json()["status"] == "running"
            clock.advance(resolution / 25)
        assert sql.updates == 1
    assert stored_ping(running) == first
    clock.now = first + resolution * S  # the stored ping is now the resolution old: written again
    with Statements(db.engine) as sql:
        assert ping(client, running).get_json()["status"] == "running"
        ping(client, running)  # and not again at once
        assert sql.updates == 1
    assert stored_ping(running) == first + resolution * S
    db.session.refresh(running)
    assert running.viewer_seconds > 0  # the usage credit goes with the written pings


def test_a_ping_newer_than_this_workers_read_is_not_written_again(any_app, running, clock):
    """Another worker wrote a ping: the row says so on the next read, and
    this worker's ping is not written within the resolution."""
    client = viewer(any_app)
    with another_worker(any_app).begin() as conn:
        conn.execute(update(Deployment).where(Deployment.id == running.id).values(latest_ping_at=clock.now))
    clock.advance(1)
    with Statements(db.engine) as sql:
        assert ping(client, running).get_json()["status"] == "running"
        assert sql.updates == 0 and len(sql.seen) == 1, "\n".join(sql.seen)  # the read, no write


def test_a_running_status_or_ping_costs_at_most_one_statement_and_no_backend_call(
    any_app, running, clock, any_fake_backend
):
    client = viewer(any_app)
    running = SimpleNamespace(public_name=running.public_name)  # no ORM object of the test's in the count
    for kind, ask in (
        ("ping", lambda: ping(client, running)),
        ("json", lambda: status(client, running)),
        ("htmx", lambda: status(client, running, HX)),
    ):
        clock.advance(10)  # past the memo's second and the ping's resolution
        with Statements(db.engine) as sql:
            answer = ask()
            assert answer.status_code == (286 if kind == "htmx" else 200)
            # the read; a ping the resolution old also writes (its own statement)
            assert len(sql.seen) - sql.updates == 1, (kind, sql.seen)
            sql.clear()
            for _ in range(10):  # within the second: from the memo
                clock.advance(0.05)
                assert ask().status_code == (286 if kind == "htmx" else 200)
            assert sql.seen == [], kind
    assert sum(any_fake_backend.calls.values()) == 0  # the fake's url() is not even counted as a call
    assert status(client, running).get_json()["url"]


def test_the_url_is_made_once_per_worker(any_app, running, clock, any_fake_backend, monkeypatch):
    made = []
    real = any_fake_backend.url
    monkeypatch.setattr(any_fake_backend, "url", lambda ref: made.append(ref) or real(ref))
    client = viewer(any_app)
    for _ in range(5):
        assert status(client, running).get_json()["url"]
        clock.advance(2)  # read again every time
    assert made == [running.backend_ref]


def test_a_stop_by_another_worker_is_seen_within_a_second(any_app, running, clock):
    client = viewer(any_app)
    assert status(client, running).get_json()["status"] == "running"
    with another_worker(any_app).begin() as conn:
        conn.execute(
            update(Deployment)
            .where(Deployment.id == running.id)
            .values(status="stopped", stopped_at=clock.now, stop_reason="idle")
        )
    clock.advance(0.5)
    assert status(client, running).get_json()["status"] == "running"  # the memo's second (the bound)
    clock.advance(0.5)
    assert status(client, running).get_json()["status"] == "stopped"
    with Statements(db.engine) as sql:
        data = ping(client, running).get_json()
        assert data["status"] == "stopped" and sql.updates == 0  # a ping never revives it
    html = status(client, running, HX)
    assert html.status_code == 286 and "is asleep" in html.get_data(as_text=True)


def test_a_ping_is_seen_stopped_within_a_second_too(any_app, running, clock):
    client = viewer(any_app)
    assert ping(client, running).get_json()["status"] == "running"
    with another_worker(any_app).begin() as conn:
        conn.execute(update(Deployment).where(Deployment.id == running.id).values(status="stopped"))
    clock.advance(1)
    assert ping(client, running).get_json()["status"] == "stopped"
    assert db.session.get(Deployment, running.id).status == "stopped"


def test_a_stop_in_this_worker_is_seen_at_once(any_app, running, clock):
    client = viewer(any_app)
    assert status(client, running).get_json()["status"] == "running"
    assert lifecycle.stop(db.session.get(Deployment, running.id), reason="owner")
    assert status(client, running).get_json()["status"] == "stopped"
    assert ping(client, running).get_json()["status"] == "stopped"


@pytest.mark.parametrize("change", ["private", "unready", "deleted"])
def test_strangers_get_404_within_a_second_of_a_change_by_another_worker(any_app, running, clock, change):
    client = viewer(any_app)
    assert status(client, running).status_code == 200
    assert ping(client, running).status_code == 200
    with another_worker(any_app).begin() as conn:
        if change == "private":
            conn.execute(update(VizApp).where(VizApp.id == running.app_id).values(is_public=False))
        elif change == "unready":  # waiting for a first environment being built
            conn.execute(Environment.__table__.insert().values(key="k" * 64, status="building", **_env_row()))
            conn.execute(
                update(VizApp)
                .where(VizApp.id == running.app_id)
                .values(env_key=None, pending_env_key="k" * 64)
            )
        else:
            conn.execute(update(VizApp).where(VizApp.id == running.app_id).values(deleted_at=clock.now))
    clock.advance(1)
    for answer in (status(client, running), status(client, running, HX), ping(client, running)):
        assert answer.status_code == 404
    missing = client.get("/alice/nothing/viz/status?deployment=default-abc234", headers=JSON)
    assert answer.get_data() == missing.get_data()  # exactly what a missing app answers
    login(client)  # its owner still sees it
    client.token = client.csrf_token()  # a new session: a new token (but a deleted app is gone for everyone)
    expected = 404 if change == "deleted" else 200
    assert status(client, running).status_code == expected
    assert ping(client, running).status_code == expected


def _env_row() -> dict:
    return {"framework": "dash", "python": "x", "lock_text": "", "created_at": utcnow()}


def test_strangers_get_404_at_once_after_a_change_in_this_worker(any_app, running, clock):
    client = viewer(any_app)
    assert status(client, running).status_code == 200
    app = db.session.get(VizApp, running.app_id)
    managing.unpublish(app, "owner")
    assert status(client, running).status_code == 404
    assert ping(client, running).status_code == 404


def test_a_private_app_is_never_shown_to_strangers_even_when_its_owner_just_looked(
    any_app, wave, any_fake_backend, clock
):
    """The memo is shared by every viewer of a worker; the decision is made
    for each request."""
    wave.is_public = False
    db.session.commit()
    dep = make_deployment(wave, clock.now - 60 * S, ready_at=clock.now - 50 * S)
    dep.backend_ref = any_fake_backend.create(lifecycle.spec_for(dep))
    db.session.commit()
    owner = any_app.test_client()
    login(owner)
    owner.token = owner.csrf_token()
    clock.advance(1)
    assert status(owner, dep).status_code == 200
    assert ping(owner, dep).status_code == 200
    stranger = viewer(any_app)
    assert status(stranger, dep).status_code == 404
    assert status(stranger, dep, HX).status_code == 404
    assert ping(stranger, dep).status_code == 404
    assert stored_ping(dep) is not None  # the owner's ping was written; nothing else leaked


def test_a_starting_deployment_still_asks_the_backend(any_app, wave, any_fake_backend, clock, monkeypatch):
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)
    client = viewer(any_app)
    client.post("/alice/wave/viz/start", headers=HX)
    dep = db.session.scalar(select(Deployment))
    any_fake_backend.set(any_fake_backend.only_ref(), "running")
    data = status(client, dep).get_json()
    assert data["status"] == "running" and any_fake_backend.calls["status"] >= 1
