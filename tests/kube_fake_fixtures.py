"""Fixtures and helpers shared by the fake apiserver's tests (tests/test_kube_fake*.py): a
started FakeKubeAPI with the namespace NS, real ``kubernetes`` clients on it through a
kubeconfig, and a Deployment builder. tests/conftest.py loads the fixtures as a plugin;
the helpers are imported where used."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config

from .kube_fake import FakeKubeAPI

NS = "viz"
IR = ("traefik.io", "v1alpha1")


@pytest.fixture(name="fake")
def fixture_fake():
    with FakeKubeAPI() as server:
        server.add_namespace(NS)
        yield server
        assert server.errors == []


def kube_client(fake: FakeKubeAPI, tmp_path, retries=False) -> client.ApiClient:
    """Through the kubeconfig, as the backend will; ``retries=False`` shows raw faults."""
    configuration = client.Configuration()
    configuration.retries = retries
    return config.new_client_from_config(config_file=str(fake.write_kubeconfig(tmp_path / "kc")),
                                         client_configuration=configuration)


@pytest.fixture(name="api")
def fixture_api(fake, tmp_path):
    return kube_client(fake, tmp_path)


@pytest.fixture(name="apps")
def fixture_apps(api):
    return client.AppsV1Api(api)


@pytest.fixture(name="core")
def fixture_core(api):
    return client.CoreV1Api(api)


@pytest.fixture(name="custom")
def fixture_custom(api):
    return client.CustomObjectsApi(api)


def deployment(name="web", labels=None, **spec):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {**labels, "tier": "viz"}},
            "spec": {"selector": {"matchLabels": labels}, "strategy": {"type": "Recreate"},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": "example/app:1",
                          "ports": [{"containerPort": 8050}],
                          "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}},
                     **spec}}


def status_of(excinfo) -> dict:
    return json.loads(excinfo.value.body)
