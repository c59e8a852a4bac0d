"""Shared fixtures: flaskr's app/client/runner, databases and Kubernetes tiers.
Test data comes from plain factory functions in tests/factories.py.

Every test gets its own SQLite file (schema built by the real migrations).
Tests that take ``any_db_url`` run on SQLite and on PostgreSQL: the server
named by TEST_POSTGRES_URL (``make test`` starts one, see
scripts/test-postgres.sh); each such test gets a fresh database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask

from app.config import Settings
from app.extensions import db
from app.models import User, VizApp
from tests import localhost_names, serving
from tests.factories import CSRFClient, build_app, make_app, make_settings, make_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser

localhost_names.install()  # *.localhost is loopback, for requests as for Chromium


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    serving.MADE.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test that serves the product shows the end of each front
    door's log (Dormouse's, gunicorn's and Traefik's lines) in its report:
    what a CI machine saw is otherwise lost with its temporary directory."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and report.when == "call":
        for live in serving.MADE:
            title = f"front door log, {live.log_path.parent.name}"
            report.sections.append((title, live.log_tail(60, notable=True)))


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test (tests/browsers.py), closed whatever happens."""
    from tests.browsers import chromium  # Playwright, only for the tests that ask

    with chromium() as browser:
        yield browser


# The fake API server's fixtures: fake_kube (the session's shared one, reset per
# test), fake_kube_server (a test's own) and clients on it (kube_api_client,
# apps_api, core_api, custom_api).
pytest_plugins = ["tests.kube_fake.fixtures"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = build_app(settings)
    app.test_client_class = CSRFClient
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> CSRFClient:
    return app.test_client()  # type: ignore[return-value]


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


# --- PostgreSQL --------------------------------------------------------------


def _postgres_admin_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


def _fresh_postgres_db() -> Iterator[str]:
    admin = _postgres_admin_url()
    if admin is None:
        pytest.fail(
            "TEST_POSTGRES_URL is not set: run the tests with 'make test', which starts "
            "a PostgreSQL server (scripts/test-postgres.sh)"
        )
    import psycopg

    name = f"dormouse_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_db_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    yield from _fresh_postgres_db()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'any.db'}"
        return
    yield from _fresh_postgres_db()


@pytest.fixture
def any_app(tmp_path: Path, any_db_url: str) -> Iterator[Flask]:
    """Like ``app``, on each database in turn."""
    app = build_app(make_settings(tmp_path, any_db_url))
    app.test_client_class = CSRFClient
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _install_fake_backend(app: Flask):
    from tests.fakes import FakeBackend

    fake = FakeBackend()
    app.extensions["dormouse.backend"] = fake
    return fake


@pytest.fixture
def fake_backend(app: Flask):
    """A scripted backend (tests/fakes.py) in place of ``app``'s own."""
    return _install_fake_backend(app)


@pytest.fixture
def any_fake_backend(any_app: Flask):
    """Like ``fake_backend``, on ``any_app`` (each database in turn)."""
    return _install_fake_backend(any_app)


@pytest.fixture
def alice(app: Flask) -> User:
    return make_user("alice")


@pytest.fixture
def wave(alice: User) -> VizApp:
    return make_app(alice, "wave", description="A wave.")


# --- Kubernetes tiers (see tests/kube_tiers.py) --------------------------------


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A real kube-apiserver + etcd + kube-controller-manager on loopback, with
    Traefik's CRDs; built once into a cache outside the repo
    (scripts/kube-test-cluster.sh)."""
    from tests.kube_real import RealCluster

    cluster = RealCluster.start(tmp_path_factory.mktemp("kube-real"))
    try:
        cluster.install_crds()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["real", "fake"])
def kube_tier(request: pytest.FixtureRequest):
    """One Kubernetes tier, with a fresh namespace (deleted afterwards), for the
    shared lifecycle tests."""
    from tests.kube_tiers import Tier, new_namespace_name

    namespace = new_namespace_name()
    if request.param == "real":
        cluster = request.getfixturevalue("real_cluster")
        try:
            cluster.create_namespace(namespace)
            yield Tier("real", str(cluster.kubeconfig), namespace, cluster.api_client())
        finally:
            cluster.delete_namespace(namespace)
        return
    fake, kubeconfig = request.getfixturevalue("fake_kube")  # reset for this test
    fake.add_namespace(namespace)
    admin = fake.api_client()
    try:
        yield Tier("fake", str(kubeconfig), namespace, admin, fake=fake)
    finally:
        admin.close()


# --- nothing left running ------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the session's end (after every other fixture's teardown), fail the
    run if a process this session started is still running: a child of
    pytest, a process that inherited the session's mark (SESSION_ENV, set
    here), a process whose command line, working directory or environment
    points into the session's temporary directory, or a member of a process
    group a LiveServer launched or a local backend recorded. They are killed
    first; the error lists them."""
    from tests.processes import (
        SESSION_ENV,
        kill_processes,
        leftover_processes,
        session_groups,
        session_marker,
    )
    from tests.waiting import wait_for

    paths = [tmp_path_factory.getbasetemp()]
    marker = session_marker()
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SESSION_ENV, marker)
        yield
    groups = session_groups(paths)

    def leftovers() -> dict[int, str]:
        return leftover_processes(paths, groups, marker)

    try:  # what is on its way out (a process still handling its SIGTERM) may go
        wait_for(lambda: not leftovers(), 15, "the session's processes to exit")
        return
    except AssertionError:
        pass
    found = leftovers()
    kill_processes(list(found))
    if found:
        pytest.fail(
            "processes started by the tests were still running at the end of the "
            "session (now killed):\n" + "\n".join(found.values()),
            pytrace=False,
        )
