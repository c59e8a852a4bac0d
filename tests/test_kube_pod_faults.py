"""Kubernetes faults no other test guards: a pod in phase ``Failed``, and a
``stop`` the API server will not carry out.

* ``kube_status.pod_status`` reads phase Failed as failed, with the pod's own
  message (a table test);
* ``kube_status.current_pod`` picks the pod that speaks for a deployment: one
  still in play over an ended one (an evicted pod and its replacement share a
  creation second), then the newest (a table test);
* through the backend against the fake API server: a Failed pod beside its
  replacement is followed to the replacement, whatever the names;
* a failing delete (the API answering 500, dropping the connection, or not
  listening at all) -> ``KubeBackend.stop`` raises BackendError;
  ``lifecycle.stop`` still marks the row stopped and logs the failure, and a
  later reconcile deletes the leftover Deployment once the API has recovered.

Each test runs its own FakeKubeAPI (started and stopped here), so nothing
depends on the shared fixtures' names or on faults left by other tests.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from kubernetes import client

from app import lifecycle, sweep
from app.backends.base import AppSpec, BackendError
from app.backends.kube import KubeBackend
from app.backends.kube_status import MESSAGE_CAP, current_pod, pod_status
from app.extensions import db
from app.kube_settings import KubeSettings
from app.models import Deployment
from tests.factories import CSRFClient, build_app, make_app, make_settings, make_spec, make_user
from tests.kube_fake import FakeKubeAPI

pytestmark = pytest.mark.timeout(120)

NS = "viz"
IMAGE = "ghcr.io/alice/wave:1.0"
HX = {"HX-Request": "true"}
MERGE_PATCH = "application/merge-patch+json"
EVICTED = "The node was low on resource: memory. Container app was using 600Mi."


# ------------------------------------------------------------------ pure table
def pod(phase: str, *, reason: str | None = None, message: str | None = None, ready: bool = False) -> dict:
    status: dict = {
        "phase": phase,
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True" if ready else "False"},
        ],
    }
    if reason is not None:
        status["reason"] = reason
    if message is not None:
        status["message"] = message
    return {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]},
        "status": status,
    }


@pytest.mark.parametrize(
    "the_pod, words",
    [
        (pod("Failed", reason="Evicted", message=EVICTED), EVICTED),
        # the message is the pod's own; without one, its reason
        (pod("Failed", reason="DeadlineExceeded"), "DeadlineExceeded"),
        (
            pod(
                "Failed",
                reason="Evicted",
                message="Pod ephemeral local storage usage exceeds the total limit of containers 1Gi.",
            ),
            "ephemeral local storage",
        ),
        # Failed wins over a stale Ready condition
        (
            pod(
                "Failed",
                reason="Shutdown",
                message="Pod was terminated in response to imminent node shutdown.",
                ready=True,
            ),
            "imminent node shutdown",
        ),
        (pod("Failed"), "the cluster gave no reason"),
    ],
)
def test_pod_phase_failed_is_failed_with_the_pods_message(the_pod: dict, words: str) -> None:
    state = pod_status(the_pod)
    assert state.state == "failed", state
    assert "pod failed" in state.reason and words in state.reason


def test_a_failed_pods_long_message_is_cut() -> None:
    state = pod_status(pod("Failed", reason="Evicted", message="x" * 5000))
    assert state.state == "failed"
    assert "x" * (MESSAGE_CAP - 1) + "…" in state.reason and "x" * MESSAGE_CAP not in state.reason


@pytest.mark.parametrize("phase", ["Pending", "Running", "Unknown"])
def test_other_phases_are_not_failed_by_phase_alone(phase: str) -> None:
    assert pod_status(pod(phase, reason="Whatever", message="not a failure")).state != "failed"


def named(name: str, phase: str, created: str, *, deleting: bool = False) -> dict:
    meta = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = created
    return {"metadata": meta, "status": {"phase": phase}}


T1, T2 = "2026-11-27T10:00:01Z", "2026-11-27T10:00:02Z"


@pytest.mark.parametrize(
    "pods, chosen",
    [
        ([], None),
        ([named("a", "Pending", T1, deleting=True)], None),
        ([named("a", "Failed", T1)], "a"),  # every pod ended: the ended one speaks
        ([named("a", "Failed", T2), named("b", "Succeeded", T1)], "a"),
        # an eviction and its replacement in the same second, both name orders
        ([named("zz", "Failed", T1), named("aa", "Pending", T1)], "aa"),
        ([named("aa", "Failed", T1), named("zz", "Pending", T1)], "zz"),
        # in play beats newer-but-ended; the newest of those in play wins
        ([named("a", "Running", T1), named("b", "Failed", T2)], "a"),
        ([named("a", "Running", T1), named("b", "Pending", T2)], "b"),
        # a pod being deleted never speaks
        ([named("a", "Running", T1), named("b", "Pending", T2, deleting=True)], "a"),
        # same second, same phase: by name, never by listing order
        ([named("b", "Pending", T1), named("a", "Pending", T1)], "b"),
        ([named("a", "Pending", T1), named("b", "Pending", T1)], "b"),
    ],
)
def test_the_pod_that_speaks_for_a_deployment(pods: list[dict], chosen: str | None) -> None:
    pod_ = current_pod(pods)
    assert (pod_ and pod_["metadata"]["name"]) == chosen


# ------------------------------------------------------------- the fake server
@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    server = FakeKubeAPI().start()
    try:
        server.add_namespace(NS)
        yield server
    finally:
        server.clear_faults()
        server.stop()
    assert server.errors == []  # the fake's own bugs, answered as 500s


def settings(**env: str) -> KubeSettings:
    values = {"VIZ_HOST": "viz.test", "K8S_NAMESPACE": NS, "K8S_REQUEST_TIMEOUT": "5", "K8S_RETRIES": "1"}
    return KubeSettings.from_env({**values, **env}, required=True)


@pytest.fixture
def backend(fake: FakeKubeAPI) -> Iterator[KubeBackend]:
    api = fake.api_client()
    try:
        yield KubeBackend(settings(), api_client=api)
    finally:
        api.close()


@pytest.fixture
def admin(fake: FakeKubeAPI) -> Iterator[client.CoreV1Api]:
    """The test's own client: it plays the kubelet."""
    api = fake.api_client()
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


def spec() -> AppSpec:
    return make_spec(public_name="default-pf2345", image=IMAGE)


def pods_of(fake: FakeKubeAPI, name: str) -> list[dict]:
    return [
        p
        for p in fake.objects("pods", NS)
        if p["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == name
    ]


def left(fake: FakeKubeAPI) -> dict[str, int]:
    return {
        plural: len(fake.objects(plural, NS))
        for plural in ("deployments", "services", "secrets", "ingressroutes.traefik.io")
    }


def after_second_of(timestamp: str) -> None:
    """Wait until the API server's clock (whole seconds, as in creationTimestamp)
    has passed ``timestamp``, so whatever is created next is strictly newer."""
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    deadline = time.monotonic() + 10
    while datetime.now(UTC).replace(microsecond=0) <= then:
        assert time.monotonic() < deadline, "the clock did not move"
        time.sleep(0.05)


def set_pod_status(core: client.CoreV1Api, name: str, status: dict) -> None:
    """What the kubelet does: one merge patch of the pod's status subresource."""
    core.patch_namespaced_pod_status(
        name, NS, {"status": status}, _request_timeout=10, _content_type=MERGE_PATCH
    )


def test_an_evicted_pod_beside_its_replacement_is_not_a_failure(fake, backend, admin) -> None:
    """An evicted pod and the pod standing in for it, made in the same second
    (creationTimestamp cannot order them): the backend follows the one still in
    play, whatever the names, so a start is not failed by a coin flip."""
    ref = backend.create(spec())
    name = json.loads(ref)["name"]
    (own,) = pods_of(fake, name)
    assert backend.status(ref).state == "starting"  # control: its pod is only Pending
    for evicted in (f"{name}-0", f"{name}-zzzzz"):  # sorts before and after the own pod
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": evicted, "labels": own["metadata"]["labels"]},
            "spec": own["spec"],
        }
        admin.create_namespaced_pod(NS, body, _request_timeout=10)
        set_pod_status(admin, evicted, {"phase": "Failed", "reason": "Evicted", "message": EVICTED})
        state = backend.status(ref)
        assert state.state == "starting", (evicted, state)
        admin.delete_namespaced_pod(evicted, NS, _request_timeout=10)


def test_a_failed_pod_that_is_replaced_is_followed_to_its_replacement(fake, backend, admin) -> None:
    """Status follows the newest pod: a pod evicted and replaced by its
    ReplicaSet is a restart, not a failure of the deployment."""
    ref = backend.create(spec())
    name = json.loads(ref)["name"]
    (own,) = pods_of(fake, name)
    after_second_of(own["metadata"]["creationTimestamp"])
    set_pod_status(
        admin, own["metadata"]["name"], {"phase": "Failed", "reason": "Evicted", "message": EVICTED}
    )
    phases = sorted(p["status"].get("phase") for p in pods_of(fake, name))
    assert phases == ["Failed", "Pending"]  # the replacement, strictly newer
    assert backend.status(ref).state == "starting"


# ------------------------------------------------------------- a failing stop
DELETE_DEPLOYMENT = r"/apis/apps/v1/namespaces/[^/]+/deployments/[^/]+$"


@pytest.mark.parametrize(
    "fault", [{"status": 500}, {"status": 503}, {"reset": True}], ids=["500", "503", "reset"]
)
def test_stop_raises_when_the_api_keeps_failing(fake, backend, fault) -> None:
    ref = backend.create(spec())
    fake.reset_requests()
    fake.inject(method="DELETE", path_re=DELETE_DEPLOYMENT, times=None, **fault)
    with pytest.raises(BackendError, match="Could not delete alice-wave-default-pf2345"):
        backend.stop(ref)
    assert fake.count("DELETE", "/deployments/") == 2  # bounded: 1 + K8S_RETRIES
    assert left(fake)["deployments"] == 1
    fake.clear_faults()
    backend.stop(ref)  # recovered: it goes, and everything it owns with it
    assert left(fake) == {"deployments": 0, "services": 0, "secrets": 0, "ingressroutes.traefik.io": 0}


def test_stop_raises_when_the_api_server_is_not_there(fake, backend) -> None:
    ref = backend.create(spec())
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead_api = fake.api_client(host=f"http://127.0.0.1:{port}")
    try:
        dead = KubeBackend(settings(K8S_REQUEST_TIMEOUT="2"), api_client=dead_api)
        with pytest.raises(BackendError, match="Could not delete"):
            dead.stop(ref)
    finally:
        dead_api.close()
    assert left(fake)["deployments"] == 1


# ---------------------------------------------- through the lifecycle and reconcile
@pytest.fixture
def kube_app(tmp_path: Path, fake: FakeKubeAPI, backend: KubeBackend) -> Iterator[Flask]:
    app = build_app(
        make_settings(tmp_path, BACKEND="kubernetes", VIZ_HOST="viz.test", K8S_NAMESPACE=NS, K8S_RETRIES="1")
    )
    app.test_client_class = CSRFClient
    app.extensions["dormouse.backend"] = backend
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


@pytest.mark.parametrize("fault", [{"status": 500}, {"reset": True}], ids=["500", "reset"])
def test_a_failed_stop_is_recorded_and_reconcile_deletes_the_leftover(kube_app, fake, caplog, fault) -> None:
    make_app(make_user("alice"), "wave", image=IMAGE)
    client_ = kube_app.test_client()
    assert client_.post("/alice/wave/viz/start", headers=HX).status_code == 200
    dep = db.session.scalar(db.select(Deployment))
    assert dep.status == "starting" and dep.backend_ref
    name = json.loads(dep.backend_ref)["name"]
    assert left(fake)["deployments"] == 1

    fake.inject(method="DELETE", path_re=DELETE_DEPLOYMENT, times=None, **fault)
    with caplog.at_level(logging.ERROR, logger="app.lifecycle"):
        assert lifecycle.stop(dep, reason="admin", detail="stopped by a test") is True
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "admin"
    failures = [
        r for r in caplog.records if r.name == "app.lifecycle" and "backend stop failed" in r.getMessage()
    ]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert dep.public_name in failures[0].getMessage()
    assert left(fake)["deployments"] == 1  # still there: the API never deleted it

    # while the API still fails, reconcile counts the error and goes on
    report = sweep.reconcile()
    assert report.errors == 1 and report.orphans_stopped == []
    assert left(fake)["deployments"] == 1

    # once it recovers, the next reconcile removes the leftover and all it owns
    fake.clear_faults()
    report = sweep.reconcile()
    assert report.errors == 0
    assert len(report.orphans_stopped) == 1 and name in report.orphans_stopped[0]
    assert left(fake) == {"deployments": 0, "services": 0, "secrets": 0, "ingressroutes.traefik.io": 0}
    assert pods_of(fake, name) == []
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "admin"  # the row is left as it was
    assert sweep.reconcile().orphans_stopped == []
