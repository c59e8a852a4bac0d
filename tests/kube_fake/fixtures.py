"""Fixtures and helpers for tests on the fake apiserver. tests/conftest.py loads the
fixtures as a plugin; the helpers are imported where used.

* ``fake_kube_server``: a FakeKubeAPI of this test's own, with the namespace NS, and real
  ``kubernetes`` clients on it through a kubeconfig (``kube_api_client``, ``apps_api``,
  ``core_api``, ``custom_api``), for the fake's own tests (tests/test_kube_fake*.py);
* ``fake_kube``: the one FakeKubeAPI the whole session shares (``shared_fake_kube``),
  cleared for this test: no faults, no recorded requests, no recorded errors, and its
  own errors asserted (then cleared) at the end, so one test's fault never fails another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from kubernetes import client, config

from .server import FakeKubeAPI

NS = "viz"
IR = ("traefik.io", "v1alpha1")


class FakeKube(NamedTuple):
    """A running fake apiserver and a kubeconfig that reaches it (as its admin)."""

    server: FakeKubeAPI
    kubeconfig: Path


@pytest.fixture
def fake_kube_server() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as server:
        server.add_namespace(NS)
        yield server
        assert server.errors == []


@pytest.fixture(scope="session")
def shared_fake_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKube]:
    """One fake apiserver for the session; tests take it through ``fake_kube``."""
    server = FakeKubeAPI().start()
    try:
        yield FakeKube(server, server.write_kubeconfig(tmp_path_factory.mktemp("kube-fake") / "kubeconfig"))
    finally:
        server.stop()


def _reset(server: FakeKubeAPI) -> list[Exception]:
    """Forget faults and requests; return (and forget) the errors recorded so far."""
    server.clear_faults()
    server.reset_requests()
    errors = list(server.errors)
    server.errors.clear()
    return errors


@pytest.fixture
def fake_kube(shared_fake_kube: FakeKube) -> Iterator[FakeKube]:
    """The session's fake apiserver, reset for this test (see the module's docstring)."""
    _reset(shared_fake_kube.server)
    try:
        yield shared_fake_kube
    finally:
        errors = _reset(shared_fake_kube.server)
        assert not errors, f"the fake apiserver failed internally: {errors!r}"


def kube_client(fake: FakeKubeAPI, tmp_path, retries=False) -> client.ApiClient:
    """Through the kubeconfig, as the backend will; ``retries=False`` shows raw faults."""
    configuration = client.Configuration()
    configuration.retries = retries
    return config.new_client_from_config(
        config_file=str(fake.write_kubeconfig(tmp_path / "kc")), client_configuration=configuration
    )


@pytest.fixture
def kube_api_client(fake_kube_server, tmp_path) -> Iterator[client.ApiClient]:
    api = kube_client(fake_kube_server, tmp_path)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def apps_api(kube_api_client) -> client.AppsV1Api:
    return client.AppsV1Api(kube_api_client)


@pytest.fixture
def core_api(kube_api_client) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api_client)


@pytest.fixture
def custom_api(kube_api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api_client)


def deployment(name="web", labels=None, **spec):
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**labels, "tier": "viz"}},
        "spec": {
            "selector": {"matchLabels": labels},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "example/app:1",
                            "ports": [{"containerPort": 8050}],
                            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
            **spec,
        },
    }


def status_of(excinfo) -> dict:
    return json.loads(excinfo.value.body)
