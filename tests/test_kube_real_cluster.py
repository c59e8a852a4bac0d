"""Smoke tests of the real-cluster test tier: etcd + kube-apiserver +
kube-controller-manager 1.20 on loopback (tests/kube_real.py), with the tests
playing the kubelet (tests/kubelet.py).

One cluster (with RBAC) serves the module; the admin token is in
system:masters, so RBAC only applies to the ServiceAccount client. The first
run on a machine builds the binaries (several minutes): that happens in the
module's fixture, which has its own deadlines and is not counted in a test's
timeout (``timeout_func_only`` in pytest.ini).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests import kubelet
from tests.kube_real import START_TIMEOUT, TRAEFIK_CRDS, RealCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

T = kubelet.REQUEST_TIMEOUT
APPS_NS = "dormouse-apps"
TRAEFIK = ("traefik.io", "v1alpha1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    c = RealCluster.start(tmp_path_factory.mktemp("kube"), rbac=True)
    try:
        c.install_crds(TRAEFIK_CRDS)
        try:
            c.create_namespace(APPS_NS)
            yield c
        finally:
            c.delete_namespace(APPS_NS)
    finally:
        c.stop()
        assert_stopped(c.state_dir)


def assert_stopped(state_dir: Path) -> None:
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "watchdog"):
        assert not (state_dir / f"{name}.pid").exists(), f"{name} still has a pid file"
    # Nothing started from this state dir is still running.
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            assert str(state_dir).encode() not in cmdline, f"process {pid} survived: {cmdline[:200]!r}"


@pytest.fixture(scope="module")
def admin(cluster: RealCluster) -> client.ApiClient:
    return cluster.api_client()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def deployment(name: str, image: str = "example/app:1") -> client.V1Deployment:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "dormouse"}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app.kubernetes.io/name": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="app", image=image, ports=[client.V1ContainerPort(container_port=8050)]
                        ),
                    ]
                ),
            ),
        ),
    )


def status_of(call, *args, **kwargs) -> int:
    try:
        resp = call(*args, _request_timeout=T, _preload_content=False, **kwargs)
    except ApiException as exc:
        return exc.status
    resp.read()
    resp.release_conn()
    return resp.status


def ingressroute(name: str, **spec_override) -> dict:
    spec = {
        "entryPoints": ["web"],
        "routes": [
            {
                "match": f"PathPrefix(`/apps/{name}/`)",
                "kind": "Rule",
                "services": [{"name": name, "port": 8050}],
            }
        ],
    }
    spec.update(spec_override)
    return {
        "apiVersion": "/".join(TRAEFIK),
        "kind": "IngressRoute",
        "metadata": {"name": name},
        "spec": {k: v for k, v in spec.items() if v is not None},
    }


def test_deployment_pod_made_ready_by_the_test_kubelet(admin: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    name = unique("ready")
    created = apps.create_namespaced_deployment(APPS_NS, deployment(name), _request_timeout=T)
    assert created.metadata.uid

    pod = kubelet.wait_for_pod(core, APPS_NS, f"app.kubernetes.io/name={name}")
    assert pod.status.phase == "Pending"  # no kubelet, no scheduler
    assert [c.image for c in pod.spec.containers] == ["example/app:1"]

    kubelet.make_ready(core, APPS_NS, pod.metadata.name)
    wait_for(
        lambda: (
            apps.read_namespaced_deployment_status(name, APPS_NS, _request_timeout=T).status.ready_replicas
            == 1
        ),
        30,
        "readyReplicas == 1",
    )
    pod = core.read_namespaced_pod(pod.metadata.name, APPS_NS, _request_timeout=T)
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].ready is True
    assert pod.status.pod_ip


def test_failure_states_and_events(admin: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    name = unique("fail")
    apps.create_namespaced_deployment(
        APPS_NS, deployment(name, image="example/missing:0"), _request_timeout=T
    )
    pod = kubelet.wait_for_pod(core, APPS_NS, f"app.kubernetes.io/name={name}")
    pod_name = pod.metadata.name

    kubelet.make_unschedulable(core, APPS_NS, pod_name, "0/1 nodes are available: 1 Insufficient memory.")
    pod = core.read_namespaced_pod(pod_name, APPS_NS, _request_timeout=T)
    (scheduled,) = pod.status.conditions
    assert (scheduled.type, scheduled.status, scheduled.reason) == ("PodScheduled", "False", "Unschedulable")
    assert not pod.status.container_statuses

    kubelet.make_pulling(core, APPS_NS, pod_name)
    ev = kubelet.emit_event(core, APPS_NS, pod, "Pulling", 'Pulling image "example/missing:0"')
    assert ev.involved_object.uid == pod.metadata.uid
    pod = core.read_namespaced_pod(pod_name, APPS_NS, _request_timeout=T)
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"

    kubelet.make_waiting(
        core, APPS_NS, pod_name, "ImagePullBackOff", 'Back-off pulling image "example/missing:0"'
    )
    kubelet.emit_event(core, APPS_NS, pod_name, "Failed", "Error: ImagePullBackOff", type="Warning")
    pod = core.read_namespaced_pod(pod_name, APPS_NS, _request_timeout=T)
    waiting = pod.status.container_statuses[0].state.waiting
    assert (pod.status.phase, waiting.reason) == ("Pending", "ImagePullBackOff")
    scheduled = {c.type: c.status for c in pod.status.conditions}
    assert scheduled == {
        "PodScheduled": "True",
        "Initialized": "True",
        "Ready": "False",
        "ContainersReady": "False",
    }

    kubelet.make_waiting(
        core, APPS_NS, pod_name, "CrashLoopBackOff", "back-off 40s restarting failed container"
    )
    pod = core.read_namespaced_pod(pod_name, APPS_NS, _request_timeout=T)
    cs = pod.status.container_statuses[0]
    assert (pod.status.phase, cs.state.waiting.reason, cs.restart_count) == ("Running", "CrashLoopBackOff", 3)
    assert cs.last_state.terminated.exit_code == 1

    events = core.list_namespaced_event(
        APPS_NS, field_selector=f"involvedObject.name={pod_name}", _request_timeout=T
    ).items
    assert {(e.type, e.reason) for e in events} >= {("Normal", "Pulling"), ("Warning", "Failed")}
    # The Deployment never became available.
    assert not apps.read_namespaced_deployment_status(name, APPS_NS, _request_timeout=T).status.ready_replicas


def test_service_owned_by_deployment_is_garbage_collected(admin: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    name = unique("gc")
    dep = apps.create_namespaced_deployment(APPS_NS, deployment(name), _request_timeout=T)
    owner = client.V1OwnerReference(
        api_version="apps/v1",
        kind="Deployment",
        name=name,
        uid=dep.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )
    core.create_namespaced_service(
        APPS_NS,
        client.V1Service(
            metadata=client.V1ObjectMeta(name=name, owner_references=[owner]),
            spec=client.V1ServiceSpec(
                selector={"app.kubernetes.io/name": name},
                ports=[client.V1ServicePort(port=80, target_port=8050)],
            ),
        ),
        _request_timeout=T,
    )
    kubelet.wait_for_pod(core, APPS_NS, f"app.kubernetes.io/name={name}")

    apps.delete_namespaced_deployment(name, APPS_NS, propagation_policy="Background", _request_timeout=T)

    wait_for(
        lambda: status_of(core.read_namespaced_service, name, APPS_NS) == 404,
        30,
        "the Service to be collected",
    )
    wait_for(
        lambda: not kubelet.pods_for(core, APPS_NS, f"app.kubernetes.io/name={name}"),
        30,
        "the Pod to be collected",
    )


def test_ingressroute_custom_objects(admin: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(admin)
    name = unique("route")
    group, version = TRAEFIK

    # Client 37 keeps the legacy (data, status, headers) tuple here.
    data, status, _ = custom.create_namespaced_custom_object_with_http_info(
        group, version, APPS_NS, "ingressroutes", ingressroute(name), _request_timeout=T
    )
    assert status == 201
    assert data["spec"]["routes"][0]["services"][0]["port"] == 8050

    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(
            group,
            version,
            APPS_NS,
            "ingressroutes",
            ingressroute(unique("bad"), routes=None),
            _request_timeout=T,
        )
    assert exc.value.status == 422
    assert "routes" in exc.value.body

    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(
            group, version, APPS_NS, "ingressroutes", ingressroute(name), _request_timeout=T
        )
    assert exc.value.status == 409

    with pytest.raises(ApiException) as exc:
        custom.delete_namespaced_custom_object(
            group, version, APPS_NS, "ingressroutes", unique("missing"), _request_timeout=T
        )
    assert exc.value.status == 404

    custom.delete_namespaced_custom_object(group, version, APPS_NS, "ingressroutes", name, _request_timeout=T)
    assert (
        status_of(custom.get_namespaced_custom_object, group, version, APPS_NS, "ingressroutes", name) == 404
    )


@pytest.fixture
def scratch_namespace(cluster: RealCluster) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards."""
    name = unique("scratch")
    try:
        yield cluster.create_namespace(name)
    finally:
        cluster.delete_namespace(name)


def test_rbac_service_account_gets_only_what_its_role_grants(
    cluster: RealCluster, admin: client.ApiClient, scratch_namespace: str
) -> None:
    ns = scratch_namespace
    sa = cluster.api_client(sa=True)
    sa_apps, sa_core = client.AppsV1Api(sa), client.CoreV1Api(sa)

    assert status_of(sa_apps.list_namespaced_deployment, ns) == 403

    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(
        ns,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="dormouse"),
            rules=[
                client.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get", "list"])
            ],
        ),
        _request_timeout=T,
    )
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="dormouse"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="dormouse"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="dormouse", namespace="dormouse")],
        ),
        _request_timeout=T,
    )

    wait_for(lambda: status_of(sa_apps.list_namespaced_deployment, ns) == 200, 10, "the RoleBinding to apply")
    assert sa_apps.list_namespaced_deployment(ns, _request_timeout=T).items == []
    assert status_of(sa_core.list_namespaced_secret, ns) == 403
    assert status_of(sa_apps.create_namespaced_deployment, ns, deployment(unique("nope"))) == 403
    # Granted in this namespace only.
    assert status_of(sa_apps.list_namespaced_deployment, APPS_NS) == 403


@pytest.mark.timeout(START_TIMEOUT + 60)  # it starts a cluster of its own
def test_always_allow_cluster_alongside(tmp_path: Path, cluster: RealCluster) -> None:
    """A second cluster (AlwaysAllow, no ServiceAccount) runs beside the first
    on other free ports and stops cleanly."""
    other = RealCluster.start(tmp_path / "plain")
    try:
        assert other.server != cluster.server
        assert other.sa_kubeconfig is None
        with pytest.raises(ValueError):
            other.api_client(sa=True)
        core = client.CoreV1Api(other.api_client())
        names = {n.metadata.name for n in core.list_namespace(_request_timeout=T).items}
        assert {"default", "kube-system"} <= names
    finally:
        other.stop()
    assert_stopped(other.state_dir)
    other.stop()  # idempotent


def test_delete_service_workaround_for_client_37(admin: client.ApiClient) -> None:
    """1.20 answers DELETE of a Service with a Status object, which client 37
    tries to read as a V1Service (a pydantic ValidationError although the
    Service is gone). Reading the raw answer (`_preload_content=False`) works."""
    core = client.CoreV1Api(admin)
    name = unique("svc")
    core.create_namespaced_service(
        APPS_NS,
        client.V1Service(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1ServiceSpec(selector={"app": name}, ports=[client.V1ServicePort(port=80)]),
        ),
        _request_timeout=T,
    )
    assert status_of(core.delete_namespaced_service, name, APPS_NS) == 200
    assert status_of(core.delete_namespaced_service, name, APPS_NS) == 404
    assert status_of(core.read_namespaced_service, name, APPS_NS) == 404
