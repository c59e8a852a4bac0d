"""The viz lifecycle with BACKEND=kubernetes, on both tiers (real control
plane and fake API server): visit -> objects created -> pod made Ready ->
running -> ping -> sweep -> Deployment deleted and its Service, IngressRoute
and Secret garbage-collected; the failure paths; reconcile; no API calls on
the hot path."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from kubernetes.client.exceptions import ApiException

from app import lifecycle, sweep
from app.extensions import db
from app.idle import IdleLimits
from app.models import Deployment, utcnow
from app.traefik_config import AUTH_MIDDLEWARE
from tests import kubelet
from tests.factories import CSRFClient, build_app, login, make_app, make_settings, make_spec, make_user
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)
HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}
IMAGE = "ghcr.io/alice/wave:1.0"


@pytest.fixture
def kube_app(tmp_path, kube_tier):
    app = build_app(
        make_settings(tmp_path, BACKEND="kubernetes", VIZ_HOST="viz.test", K8S_NAMESPACE=kube_tier.namespace)
    )
    app.test_client_class = CSRFClient
    backend, requests_log = kube_tier.backend()
    app.extensions["dormouse.backend"] = backend
    app.extensions["test.requests"] = requests_log
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def exists(fn, *args) -> bool:
    try:
        response = fn(*args, _request_timeout=10, _preload_content=False)
        response.read()
        response.release_conn()
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def objects(tier, name: str) -> dict[str, bool]:
    ns = tier.namespace
    return {
        "deployment": exists(tier.apps.read_namespaced_deployment, name, ns),
        "service": exists(tier.core.read_namespaced_service, name, ns),
        "secret": exists(tier.core.read_namespaced_secret, name, ns),
        "ingressroute": exists(
            tier.custom.get_namespaced_custom_object, "traefik.io", "v1alpha1", ns, "ingressroutes", name
        ),
    }


def start(client, title="wave") -> Deployment:
    response = client.post(f"/alice/{title}/viz/start", headers=HX)
    assert response.status_code == 200, response.get_data(as_text=True)
    return db.session.scalar(db.select(Deployment).order_by(Deployment.id.desc()))


def poll(client, title="wave") -> dict:
    return client.get(f"/alice/{title}/viz/status", headers=JSON).get_json()


def pod_of(tier, dep: Deployment):
    name = json.loads(dep.backend_ref)["name"]
    return name, kubelet.wait_for_pod(tier.core, tier.namespace, f"app.kubernetes.io/instance={name}")


def test_whole_lifecycle(kube_app, kube_tier, monkeypatch):
    make_app(make_user("alice"), "wave", image=IMAGE, source="app.py:server", env="API_KEY=s3cret")
    client = kube_app.test_client()
    requests_log = kube_app.extensions["test.requests"]

    dep = start(client)
    assert dep.status == "starting", dep.status_reason
    name, pod = pod_of(kube_tier, dep)
    assert objects(kube_tier, name) == {
        "deployment": True,
        "service": True,
        "secret": True,
        "ingressroute": True,
    }
    secret = kube_tier.core.read_namespaced_secret(name, kube_tier.namespace, _request_timeout=10)
    assert secret.metadata.owner_references[0].kind == "Deployment"
    # the API server kept the route's middlewares: Dormouse's gate comes first
    route = kube_tier.custom.get_namespaced_custom_object(
        "traefik.io", "v1alpha1", kube_tier.namespace, "ingressroutes", name, _request_timeout=10
    )
    assert route["spec"]["routes"][0]["middlewares"] == [{"name": AUTH_MIDDLEWARE}]

    # the phases come from the pod: scheduled and pulling the image
    kubelet.make_pulling(kube_tier.core, kube_tier.namespace, pod.metadata.name)
    kubelet.emit_event(kube_tier.core, kube_tier.namespace, pod, "Pulling", f'Pulling image "{IMAGE}"')
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)
    assert wait_for(lambda: "Pulling the image" in poll(client)["phase"], 10, "the pulling phase")

    # while starting, one status read per read interval however many pages
    # poll: with an interval longer than the test, 25 polls make one read
    monkeypatch.setattr(lifecycle, "STATUS_READ_FIRST", 3600.0)
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 3600.0)
    db.session.execute(
        db.update(Deployment).where(Deployment.id == dep.id).values(status_checked_at=None)
    )  # the last read is long past
    db.session.commit()
    backend, reads = lifecycle.backend(), []
    read_status = backend.status
    monkeypatch.setattr(backend, "status", lambda ref: reads.append(ref) or read_status(ref))
    requests_log.clear()
    for _ in range(25):
        assert poll(client)["status"] == "starting"
    assert reads == [dep.backend_ref]
    assert requests_log.count("GET", r"/pods$") >= 1
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)

    kubelet.make_ready(kube_tier.core, kube_tier.namespace, pod.metadata.name)
    data = wait_for(lambda: (s := poll(client))["status"] == "running" and s, 10, "running")
    assert data["url"] == f"https://viz.test/alice/wave/{dep.public_name}/"

    # the hot path: polls and pings of a running app make no API call at all
    requests_log.clear()
    for _ in range(10):
        assert client.get("/alice/wave/viz/status", headers=HX).status_code == 286
        client.post("/alice/wave/viz/ping", data={"deployment": dep.public_name}, headers=JSON)
    assert requests_log.count() == 0

    # idle: the sweep deletes the Deployment; ownerReferences collect the rest
    report = sweep.sweep(
        now=utcnow() + timedelta(seconds=5), lim=IdleLimits(load_timeout=1, ping_timeout=1, start_timeout=300)
    )
    assert [d.id for d, _ in report.stopped] == [dep.id]
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "idle"
    wait_for(
        lambda: not any(objects(kube_tier, name).values()),
        90,
        "the Deployment and everything it owns to be gone",
    )


@pytest.mark.parametrize(
    "how, expected",
    [
        ("crashloop", "keeps crashing"),
        ("image", "could not be pulled (ImagePullBackOff)"),
        ("unschedulable", "No node in the cluster can run this app"),
    ],
)
def test_failures_are_fast_and_plain(kube_app, kube_tier, monkeypatch, how, expected):
    make_app(make_user("alice"), "wave", image=IMAGE)
    client = kube_app.test_client()
    login(client)  # the owner: crash details are for the owner and admins
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)
    dep = start(client)
    name, pod = pod_of(kube_tier, dep)
    ns, core = kube_tier.namespace, kube_tier.core
    if how == "crashloop":
        kubelet.make_waiting(
            core, ns, pod.metadata.name, "CrashLoopBackOff", "back-off 20s restarting failed container"
        )
    elif how == "image":
        kubelet.make_waiting(
            core, ns, pod.metadata.name, "ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'
        )
    else:
        kubelet.make_unschedulable(
            core, ns, pod.metadata.name, "0/3 nodes are available: 3 Insufficient cpu."
        )
    data = wait_for(lambda: (s := poll(client))["status"] == "failed" and s, 10, "failed")
    assert expected in data["reason"]
    html = client.get("/alice/wave/viz/status", headers=HX).get_data(as_text=True)
    assert "could not start" in html and "Try again" in html
    wait_for(lambda: not objects(kube_tier, name)["deployment"], 30, "the failed Deployment to go")


def test_reconcile_removes_orphans_and_marks_vanished(kube_app, kube_tier, monkeypatch):
    alice = make_user("alice")
    make_app(alice, "wave", image=IMAGE)
    make_app(alice, "ghost", image=IMAGE)
    client = kube_app.test_client()
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)
    backend = lifecycle.backend()

    # a running deployment whose objects someone deleted behind our back
    dep = start(client)
    name, pod = pod_of(kube_tier, dep)
    kubelet.make_ready(kube_tier.core, kube_tier.namespace, pod.metadata.name)
    wait_for(lambda: poll(client)["status"] == "running", 10, "running")
    response = kube_tier.apps.delete_namespaced_deployment(
        name, kube_tier.namespace, _request_timeout=10, _preload_content=False
    )
    response.read()
    response.release_conn()
    # an orphan: objects left by a crash, with no live row
    ghost = start(client, "ghost")
    ghost_name = json.loads(ghost.backend_ref)["name"]
    db.session.execute(
        db.update(Deployment).where(Deployment.id == ghost.id).values(status="stopped", stop_reason="admin")
    )
    db.session.commit()
    assert ghost_name in json.dumps(backend.list())

    report = sweep.reconcile()
    assert [d.id for d in report.vanished] == [dep.id]
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "gone"
    assert len(report.orphans_stopped) == 1 and ghost_name in report.orphans_stopped[0]
    wait_for(lambda: not any(objects(kube_tier, ghost_name).values()), 90, "the orphan to go")
    assert sweep.reconcile().orphans_stopped == []


def test_create_is_idempotent_and_adopts_existing_objects(kube_app, kube_tier):
    backend = lifecycle.backend()
    spec = make_spec(public_name="default-idem01", image=IMAGE, env={"A": "1"})
    first = backend.create(spec)
    second = backend.create(spec)  # every object answers 409 and is adopted
    assert first == second
    name = json.loads(first)["name"]
    assert all(objects(kube_tier, name).values())
    backend.stop(first)
    backend.stop(first)  # 404 is success
    assert not objects(kube_tier, name)["deployment"]
