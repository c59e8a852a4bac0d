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
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask

from app.config import Settings
from app.extensions import db
from app.models import User, VizApp
from tests.factories import CSRFClient, build_app, make_app, make_settings, make_user

# The fake API server's own fixtures (fake, api, apps, core, custom).
pytest_plugins = ["tests.kube_fake_fixtures"]


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


@pytest.fixture
def fake_backend(app: Flask):
    from tests.fakes import FakeBackend

    fake = FakeBackend()
    app.extensions["dormouse.backend"] = fake
    return fake


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


@pytest.fixture(scope="session")
def fake_kube(tmp_path_factory: pytest.TempPathFactory):
    from tests.kube_fake import FakeKubeAPI

    fake = FakeKubeAPI().start()
    kubeconfig = fake.write_kubeconfig(tmp_path_factory.mktemp("kube-fake") / "kubeconfig")
    try:
        yield fake, kubeconfig
    finally:
        fake.stop()


@pytest.fixture(params=["real", "fake"])
def kube_tier(request: pytest.FixtureRequest):
    """One Kubernetes tier, with a fresh namespace, for the shared lifecycle tests."""
    from tests.kube_tiers import Tier, new_namespace_name

    namespace = new_namespace_name()
    if request.param == "real":
        cluster = request.getfixturevalue("real_cluster")
        cluster.create_namespace(namespace)
        yield Tier("real", str(cluster.kubeconfig), namespace, cluster.api_client())
        return
    fake, kubeconfig = request.getfixturevalue("fake_kube")
    fake.add_namespace(namespace)
    fake.clear_faults()
    admin = fake.api_client()
    try:
        yield Tier("fake", str(kubeconfig), namespace, admin, fake=fake)
    finally:
        fake.clear_faults()
        admin.close()
        assert not fake.errors, fake.errors
