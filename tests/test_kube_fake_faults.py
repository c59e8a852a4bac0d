"""Fault injection and request recording in the fake apiserver (tests/kube_fake/), as
the real ``kubernetes`` client sees them: error statuses, Retry-After, slow answers,
connection resets, and urllib3's retries that hide them unless turned off."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kube_fake.fixtures import (
    NS,
    deployment,
    kube_client,
    status_of,
)


def test_503_then_success(fake_kube_server, apps_api):
    fault = fake_kube_server.inject(method="POST", path_re=r"/deployments$", status=503, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            apps_api.create_namespaced_deployment(NS, deployment())
        assert e.value.status == 503
        assert status_of(e)["reason"] == "ServiceUnavailable" and status_of(e)["kind"] == "Status"
    assert fake_kube_server.objects("deployments", NS) == []  # a failed request does nothing
    assert apps_api.create_namespaced_deployment(NS, deployment()).metadata.uid
    assert fault.hits == 2 and fake_kube_server.count("POST", "/deployments") == 3


def test_429_carries_retry_after(fake_kube_server, core_api):
    fake_kube_server.inject(method="GET", path_re="/pods", status=429, retry_after=7)
    with pytest.raises(ApiException) as e:
        core_api.list_namespaced_pod(NS)
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "7"
    assert status_of(e)["reason"] == "TooManyRequests"
    assert status_of(e)["details"]["retryAfterSeconds"] == 7
    fake_kube_server.inject(path_re="/pods", status=429, body="Too many requests, please try again later.\n")
    with pytest.raises(ApiException) as e:  # what 1.20's max-in-flight filter really sends
        core_api.list_namespaced_pod(NS)
    assert e.value.body.startswith("Too many") and "text/plain" in e.value.headers["Content-Type"]


def test_delay_makes_the_client_time_out_but_the_request_lands(fake_kube_server, core_api):
    fake_kube_server.inject(method="POST", path_re="/secrets", delay=1.0)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core_api.create_namespaced_secret(NS, {"metadata": {"name": "s"}}, _request_timeout=0.2)
    assert [s["metadata"]["name"] for s in fake_kube_server.objects("secrets", NS)] == ["s"]


def test_reset_aborts_the_connection(fake_kube_server, core_api):
    fake_kube_server.inject(method="GET", path_re="/secrets", reset=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        core_api.list_namespaced_secret(NS)
    assert core_api.list_namespaced_secret(NS).items == []  # the next one is fine


def test_default_client_retries_hide_idempotent_faults(fake_kube_server, tmp_path):
    """Without ``configuration.retries = False``, urllib3 retries GET/PUT/DELETE three times
    on resets and timeouts, and honours Retry-After on 413/429/503 for them."""
    core = client.CoreV1Api(kube_client(fake_kube_server, tmp_path, retries=None))
    fake_kube_server.inject(method="GET", path_re="/secrets", reset=True)
    assert core.list_namespaced_secret(NS).items == []  # hidden
    fake_kube_server.inject(method="GET", path_re="/secrets", reset=True, times=4)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_secret(NS)
    fake_kube_server.inject(method="GET", path_re="/secrets", delay=0.5, times=4)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_secret(NS, _request_timeout=0.1)
    fake_kube_server.inject(method="GET", path_re="/secrets", status=503, retry_after=0)
    assert core.list_namespaced_secret(NS).items == []  # hidden
    fake_kube_server.inject(method="POST", path_re="/secrets", reset=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):  # POST is never retried
        core.create_namespaced_secret(NS, {"metadata": {"name": "s"}})


def test_fault_matching_and_clearing(fake_kube_server, core_api):
    fault = fake_kube_server.inject(method="DELETE", path_re=r"/secrets/env$", status=500, times=None)
    core_api.create_namespaced_secret(NS, {"metadata": {"name": "env"}})  # other method: untouched
    for _ in range(3):
        with pytest.raises(ApiException) as e:
            core_api.delete_namespaced_secret("env", NS)
        assert e.value.status == 500 and status_of(e)["reason"] == "InternalError"
    assert fault.hits == 3
    fake_kube_server.clear_faults()
    assert core_api.delete_namespaced_secret("env", NS)["status"] == "Success"
    with pytest.raises(ValueError):
        fake_kube_server.inject(method="GET")


def test_request_counting(fake_kube_server, apps_api, core_api):
    fake_kube_server.reset_requests()
    apps_api.create_namespaced_deployment(NS, deployment())
    apps_api.read_namespaced_deployment("web", NS)
    core_api.list_namespaced_pod(NS, label_selector="app=web")
    assert fake_kube_server.count() == 3 and fake_kube_server.count("GET") == 2
    assert fake_kube_server.count(path_contains="/deployments") == 2
    assert fake_kube_server.count("POST", "/pods") == 0
    assert fake_kube_server.requests[-1] == (
        "GET",
        f"/api/v1/namespaces/{NS}/pods",
        {"labelSelector": "app=web"},
    )
    fake_kube_server.reset_requests()
    assert fake_kube_server.count() == 0
