"""A fault at each backend call the lifecycle makes, on the real local
backend (real processes, real route files), driven through the paths that
make the call: a viewer's start, poll and ping, the owner's stop and logs
pages, the sweep.

:class:`FaultyBackend` wraps the real backend and makes one method fail in
one of three ways: ``refused`` (a :class:`BackendError`, whose message is
meant for people), ``crash`` (an unexpected exception whose text is internal
detail) or ``timeout`` (the call did its work, then a ``TimeoutError``: the
answer was lost). For each, the test checks that

* whoever asked gets a clear sentence: no traceback, no exception text, and a
  viewer who is not the owner nothing of the backend's own words;
* the row ends as designed: failed (create), still starting and then running
  once the fault clears (status), stopped (stop), untouched (list, url, logs);
* after a sweep with the fault cleared, nothing leaked: no live row without
  its process, no process, record or route file without a live row
  (:func:`tests.live_instance.leaks`).

The Kubernetes backend's calls are faulted on the fake API server in
tests/test_kube_faults.py (create, status), tests/test_kube_pod_faults.py
(stop), tests/test_logs.py (logs) and tests/test_kube_list_faults.py (list).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import sweep
from app.backends.base import AppSpec, BackendError, BackendStatus
from app.backends.local import LocalBackend
from app.backends.local_groups import group_alive
from app.errors import MESSAGES
from app.extensions import db
from app.models import Deployment
from app.views.viz import NOT_STARTED
from tests.factories import CSRFClient, build_app, login, make_app, make_settings, make_user
from tests.live_instance import PLAIN_SOURCE, apps_dir, leaks, rows
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(180)

HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}
REFUSED = "The backend refused this (a fault the test made)."
SECRET = "internal detail: /srv/dormouse/secret token=s3cr3t"
KINDS = ["refused", "crash", "timeout"]
DEADLINE = 60.0


class FaultyBackend:
    """The real local backend, with one method made to fail (:meth:`arm`)."""

    def __init__(self, real: LocalBackend) -> None:
        self.real = real
        self.name = real.name
        self.method: str | None = None
        self.kind = ""
        self.hits = 0

    def arm(self, method: str, kind: str) -> None:
        self.method, self.kind, self.hits = method, kind, 0

    def disarm(self) -> None:
        self.method = None

    def _call(self, method: str, *args: Any) -> Any:
        if method != self.method:
            return getattr(self.real, method)(*args)
        self.hits += 1
        if self.kind == "refused":
            raise BackendError(REFUSED)
        if self.kind == "crash":
            raise RuntimeError(SECRET)
        getattr(self.real, method)(*args)  # "timeout": the work is done, the answer lost
        raise TimeoutError(f"timed out: {SECRET}")

    def create(self, spec: AppSpec) -> str:
        return self._call("create", spec)

    def status(self, ref: str) -> BackendStatus:
        return self._call("status", ref)

    def stop(self, ref: str) -> None:
        return self._call("stop", ref)

    def list(self) -> dict[str, str]:
        return self._call("list")

    def logs(self, ref: str, max_bytes: int) -> str:
        return self._call("logs", ref, max_bytes)

    def url(self, ref: str) -> str:
        return self._call("url", ref)


class Setup:
    def __init__(self, app: Flask, tmp_path: Path) -> None:
        self.app = app
        self.backend: FaultyBackend = app.extensions["dormouse.backend"]
        self.database = app.config["DORMOUSE"].database_url
        instance = app.config["DORMOUSE"].instance_path
        self.run_dir, self.routes = instance / "deployments", instance / "traefik" / "routes"
        self.viewer: CSRFClient = app.test_client()  # type: ignore[assignment]
        self.owner: CSRFClient = app.test_client()  # type: ignore[assignment]
        login(self.owner)

    def start(self, client: CSRFClient | None = None) -> dict:
        response = (client or self.viewer).post("/alice/plain/viz/start", headers=JSON)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def status(self, client: CSRFClient | None = None) -> dict:
        response = (client or self.viewer).get("/alice/plain/viz/status", headers=JSON)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def running(self) -> dict:
        """Start the app if it is not running, and wait (polling as the page
        does) until it runs."""
        if self.status()["status"] == "running":
            return self.status()
        self.start()
        return wait_for(lambda: (s := self.status())["status"] == "running" and s, DEADLINE, "the app to run")

    def row(self) -> Deployment:
        db.session.expire_all()
        return db.session.scalar(db.select(Deployment).order_by(Deployment.id.desc()).limit(1))

    def leaks(self) -> list[str]:
        return leaks(rows(self.database), self.run_dir, self.routes)

    def sweep_clean(self) -> None:
        """With the fault cleared, one sweep leaves nothing leaked."""
        self.backend.disarm()
        report = sweep.sweep()
        assert report.errors == 0, report.summary()
        assert self.leaks() == []


def clear(text: str) -> None:
    """No internal detail and no traceback in what someone was shown."""
    for word in (SECRET, "s3cr3t", "Traceback", "RuntimeError", "TimeoutError"):
        assert word not in text, (word, text[:500])


@contextmanager
def faulty_app(tmp_path: Path) -> Iterator[Setup]:
    """Dormouse on the faulty local backend, alice's plain app published, in
    an app context; every app process is stopped afterwards, whatever happened."""
    settings = make_settings(tmp_path, APPS_DIR=str(apps_dir(tmp_path)), START_TIMEOUT="60")
    app = build_app(settings)
    app.test_client_class = CSRFClient
    real = app.extensions["dormouse.backend"]
    app.extensions["dormouse.backend"] = FaultyBackend(real)
    with app.app_context():
        try:
            make_app(make_user("alice"), "plain", source=PLAIN_SOURCE)
            yield Setup(app, tmp_path)
        finally:
            try:
                for ref in real.list().values():  # never leave a process behind
                    real.stop(ref)
            finally:
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[Setup]:
    """A Dormouse of the test's own."""
    with faulty_app(tmp_path) as setup:
        yield setup


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One Dormouse for the tests after which its app runs on, untouched."""
    with faulty_app(tmp_path_factory.mktemp("faults")) as setup:
        yield setup


@pytest.fixture
def warm(shared: Setup) -> Iterator[Setup]:
    """The shared Dormouse with its app running; the fault cleared after the test."""
    try:
        yield shared
    finally:
        shared.backend.disarm()


# --- create: the viewer's start ------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_at_create_fails_the_start_clearly_and_leaks_nothing(faulty: Setup, kind: str) -> None:
    faulty.backend.arm("create", kind)
    answer = faulty.start()
    assert faulty.backend.hits == 1
    assert answer["status"] == "failed" and answer["reason"] == NOT_STARTED  # a viewer is told no more
    clear(faulty.viewer.get("/alice/plain/viz/status", headers=HX).get_data(as_text=True))
    owner_reason = faulty.status(faulty.owner)["reason"]
    expected = REFUSED if kind == "refused" else "The server could not start this app (internal error)."
    assert owner_reason == expected
    row = faulty.row()
    assert row.status == "failed" and row.backend_ref is None
    if kind == "timeout":  # the process started, its ref was lost: an orphan until the sweep
        assert faulty.leaks() and all("no live row" in leak for leak in faulty.leaks())
    faulty.sweep_clean()
    # the page's "Try again" starts a new deployment
    again = faulty.start()
    assert again["status"] == "starting" and again["public_name"] != answer["public_name"]


# --- status: the viewer's start and polls while starting ----------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_at_status_keeps_the_start_waiting_until_it_clears(faulty: Setup, kind: str) -> None:
    faulty.backend.arm("status", kind)
    answer = faulty.start()
    assert faulty.backend.hits >= 1  # the start's own read
    assert answer["status"] == "starting"
    clear(json.dumps(answer))
    clear(faulty.viewer.get("/alice/plain/viz/status", headers=HX).get_data(as_text=True))
    assert faulty.row().status == "starting"
    faulty.backend.disarm()  # the next read succeeds: the poll finds it running
    wait_for(lambda: faulty.status()["status"] == "running", DEADLINE, "the app to run once reads work")
    faulty.sweep_clean()


# --- stop: the owner's stop button ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_at_stop_stops_the_row_and_the_sweep_the_process(faulty: Setup, kind: str) -> None:
    running = faulty.running()
    pgid = json.loads(faulty.row().backend_ref)["pid"]
    faulty.backend.arm("stop", kind)
    response = faulty.owner.post("/alice/plain/stop")
    assert response.status_code == 302 and faulty.backend.hits == 1
    page = faulty.owner.get(response.headers["Location"]).get_data(as_text=True)
    assert "Stopped alice/plain." in page
    clear(page)
    told = faulty.status()
    assert told["status"] == "stopped" and told["public_name"] == running["public_name"]
    assert told["why_stopped"]
    clear(json.dumps(told))
    if kind != "timeout":  # the stop never happened: the process runs on, no live row has it
        assert group_alive(pgid)
        name = f"alice-plain-{running['public_name']}"
        assert faulty.leaks() == [
            f"a running app {name} with no live row",
            f"a route file {name}.yml with no live row",
        ]
    faulty.sweep_clean()
    assert not group_alive(pgid)


# --- list: the sweep's reconcile ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_at_list_changes_nothing_and_the_next_sweep_reconciles(warm: Setup, kind: str) -> None:
    faulty = warm
    running = faulty.running()
    faulty.backend.arm("list", kind)
    report = sweep.sweep()
    assert faulty.backend.hits == 1
    assert report.errors == 1 and not report.changed
    pinged = faulty.viewer.post(
        "/alice/plain/viz/ping", data={"deployment": running["public_name"]}, headers=JSON
    )
    assert pinged.status_code == 200 and pinged.get_json()["status"] == "running"
    assert faulty.leaks() == []
    faulty.sweep_clean()
    assert faulty.row().status == "running"


# --- url: a running app's poll and ping ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_at_url_answers_clearly_and_leaves_the_app_running(warm: Setup, kind: str) -> None:
    faulty = warm
    running = faulty.running()
    named = f"/alice/plain/viz/status?deployment={running['public_name']}"
    assert faulty.viewer.get(named, headers=JSON).get_json()["url"] == running["url"]
    faulty.backend.arm("url", kind)
    json_answer = faulty.viewer.get("/alice/plain/viz/status", headers=JSON)
    partial = faulty.viewer.get("/alice/plain/viz/status", headers=HX)
    pinged = faulty.viewer.post(
        "/alice/plain/viz/ping", data={"deployment": running["public_name"]}, headers=JSON
    )
    # the two polls that name no deployment ask the backend; the page's ping names its
    # deployment and is answered with the URL this worker made of the same reference
    # before the fault (app/watching.py: a reference's URL never changes), no backend call
    assert faulty.backend.hits == 2
    assert pinged.status_code == 200 and pinged.get_json()["url"] == running["url"]
    for response in (json_answer, partial, pinged):
        clear(response.get_data(as_text=True))
    if kind == "refused":  # an unreadable ref: running, with nothing to show yet
        assert json_answer.status_code == 200 and json_answer.get_json()["url"] is None
        assert json_answer.get_json()["status"] == "running"
        shown = partial.get_data(as_text=True)  # no frame loading "None": a sentence instead
        assert 'src="None"' not in shown and "viz-frame" not in shown
        assert "is running but cannot be shown" in shown and "Reload the page" in shown
    else:
        assert json_answer.status_code == 500 and json_answer.get_json()["error"] == MESSAGES[500]
    assert faulty.row().status == "running"
    faulty.backend.disarm()
    assert faulty.status()["url"] == running["url"]
    faulty.sweep_clean()


# --- logs: the owner's logs page and download ---------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_at_logs_tells_the_owner_and_leaves_the_app_running(warm: Setup, kind: str) -> None:
    faulty = warm
    faulty.running()
    faulty.backend.arm("logs", kind)
    page = faulty.owner.get("/alice/plain/logs")
    download = faulty.owner.get("/alice/plain/logs.txt")
    assert faulty.backend.hits == 2
    for response in (page, download):
        clear(response.get_data(as_text=True))
    if kind == "refused":
        assert page.status_code == 200 and REFUSED in page.get_data(as_text=True)
        assert download.status_code == 503 and download.get_data(as_text=True) == f"{REFUSED}\n"
    else:
        assert page.status_code == 500 and MESSAGES[500] in page.get_data(as_text=True)
        assert download.status_code == 500 and MESSAGES[500] in download.get_data(as_text=True)
    assert faulty.viewer.get("/alice/plain/logs").status_code == 404  # never the backend's, for a viewer
    assert faulty.backend.hits == 2
    assert faulty.row().status == "running"
    faulty.sweep_clean()


def test_every_backend_method_is_faulted_here() -> None:
    """A method added to the Backend interface needs its case above."""
    from app.backends.base import Backend

    methods = {name for name in vars(Backend) if not name.startswith("_") and callable(vars(Backend)[name])}
    assert methods == {"create", "status", "stop", "list", "logs", "url"}
