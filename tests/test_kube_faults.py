"""Faults the real API server cannot produce, on the fake one: 5xx, 429 with
Retry-After, slow answers, connection resets, refusals mid-create. The backend
retries what is transient (bounded), fails clearly otherwise, and never leaves
half-made objects behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.backends import kube_calls
from app.backends.base import AppSpec, BackendError
from tests.factories import make_spec
from tests.kube_tiers import Tier, new_namespace_name

IMAGE = "ghcr.io/alice/wave:1.0"
DEPLOYMENTS = r"/apis/apps/v1/namespaces/[^/]+/deployments$"


@pytest.fixture
def tier(fake_kube):
    """The fake tier with a namespace of its own (``fake_kube`` clears faults
    and checks the fake's own errors around each test)."""
    fake, kubeconfig = fake_kube
    namespace = new_namespace_name()
    fake.add_namespace(namespace)
    admin = fake.api_client()
    try:
        yield Tier("fake", str(kubeconfig), namespace, admin, fake=fake)
    finally:
        admin.close()


def spec() -> AppSpec:
    return make_spec(image=IMAGE, env={"TOKEN": "t"})


def left_in(tier: Tier) -> dict[str, int]:
    fake = tier.fake
    return {
        plural: len(fake.objects(plural, tier.namespace))
        for plural in ("deployments", "services", "secrets", "ingressroutes.traefik.io")
    }


def test_5xx_is_retried_then_succeeds(tier):
    backend, log = tier.backend()
    tier.fake.inject(method="POST", path_re=DEPLOYMENTS, status=503, times=2)
    backend.create(spec())
    assert log.count("POST", DEPLOYMENTS) == 3
    assert left_in(tier) == {"deployments": 1, "services": 1, "secrets": 1, "ingressroutes.traefik.io": 1}


def test_429_waits_for_retry_after(tier, monkeypatch):
    waits: list[float] = []
    real_call = kube_calls.call

    def call(*args, **kwargs):  # every call the backend makes, its waits recorded
        return real_call(*args, sleep=lambda seconds: (waits.append(seconds), time.sleep(seconds)), **kwargs)

    monkeypatch.setattr(kube_calls, "call", call)
    backend, log = tier.backend()
    tier.fake.inject(method="POST", path_re=r"/services$", status=429, retry_after=1, times=1)
    backend.create(spec())
    assert waits == [1.0]  # the server's Retry-After, not the backoff
    assert log.count("POST", r"/services$") == 2


def test_persistent_errors_fail_cleanly_and_leave_nothing(tier):
    backend, log = tier.backend(K8S_RETRIES="2")
    tier.fake.inject(method="POST", path_re=r"/ingressroutes$", status=500, times=None)
    with pytest.raises(BackendError, match="could not be reached|HTTP 500"):
        backend.create(spec())
    assert log.count("POST", r"/ingressroutes$") == 3  # bounded: 1 + 2 retries
    assert left_in(tier) == {"deployments": 0, "services": 0, "secrets": 0, "ingressroutes.traefik.io": 0}


def test_a_refusal_is_not_retried_and_says_why(tier):
    backend, log = tier.backend()
    tier.fake.inject(
        method="POST",
        path_re=DEPLOYMENTS,
        status=422,
        times=1,
        message='Deployment.apps "x" is invalid: spec.template: Required value',
    )
    with pytest.raises(BackendError, match=r"refused this app \(HTTP 422\).*Required value"):
        backend.create(spec())
    assert log.count("POST", DEPLOYMENTS) == 1
    assert left_in(tier)["secrets"] == 0 and left_in(tier)["deployments"] == 0


def test_forbidden_says_so(tier):
    backend, _ = tier.backend()
    tier.fake.inject(method="POST", path_re=r"/secrets$", status=403, times=1)
    with pytest.raises(BackendError, match="not allowed"):
        backend.create(spec())


def test_a_timed_out_create_is_retried_and_adopts_what_it_made(tier):
    backend, log = tier.backend()
    # the server makes the Deployment but answers too late for this one
    # request's short timeout; the retry gets 409
    log.shorten("POST", DEPLOYMENTS, seconds=1.0)
    tier.fake.inject(method="POST", path_re=DEPLOYMENTS, delay=4.0, times=1)
    backend.create(spec())
    assert log.count("POST", DEPLOYMENTS) == 2
    assert log.count("GET", r"/deployments/alice-wave-default-abc234$") == 1  # the adoption
    assert left_in(tier)["deployments"] == 1


def test_connection_resets_are_retried(tier):
    backend, log = tier.backend()
    tier.fake.inject(method="POST", path_re=r"/services$", reset=True, times=1)
    backend.create(spec())
    assert log.count("POST", r"/services$") == 2 and left_in(tier)["services"] == 1


def test_status_read_during_an_outage_keeps_waiting(tier):
    backend, log = tier.backend(K8S_RETRIES="1")
    ref = backend.create(spec())
    log.shorten("GET", r"/pods$", seconds=0.3, times=2)  # the try and its one retry
    tier.fake.inject(method="GET", path_re=r"/pods$", delay=1.0, times=None)
    state = backend.status(ref)
    assert state.state == "starting" and "cluster" in state.phase
    assert log.count("GET", r"/pods$") == 2


def test_unreachable_cluster_fails_the_start_with_a_clear_reason(tier, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(Path(tier.kubeconfig).read_text().replace(f":{tier.fake.port}", f":{port}"))
    backend, _ = tier.backend(kubeconfig=str(dead), K8S_RETRIES="1", K8S_REQUEST_TIMEOUT="1")
    with pytest.raises(BackendError, match="could not be reached"):
        backend.create(spec())


def test_client_config_from_kubeconfig_and_context(tier, tmp_path, monkeypatch):
    """Outside a cluster the backend reads KUBECONFIG, and K8S_CONTEXT picks
    the context; urllib3's own retries are off (ours are the only ones)."""
    import yaml
    from kubernetes import client

    from app.backends.kube_calls import make_api_client

    config = yaml.safe_load(Path(tier.kubeconfig).read_text())
    good = config["contexts"][0]
    config["clusters"].append({"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}})
    config["contexts"] = [
        {"name": "broken", "context": {**good["context"], "cluster": "nowhere"}},
        {"name": "fake", "context": good["context"]},
    ]
    config["current-context"] = "broken"
    path = tmp_path / "two-contexts"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    api = make_api_client(context="fake")
    assert api.configuration.retries is False
    names = client.CoreV1Api(api).list_namespace(_request_timeout=5).items
    assert tier.namespace in {n.metadata.name for n in names}
    assert make_api_client().configuration.host == "http://127.0.0.1:9"  # the current context
