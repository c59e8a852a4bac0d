"""The fake apiserver's controllers (tests/kube_fake/controllers.py), through the real
``kubernetes`` client: the deployment and replicaset controllers, and the garbage
collector."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from .kube_fake import FakeKubeAPI
from .kube_fake.fixtures import (
    IR,
    NS,
    deployment,
    kube_client,
)
from .waiting import wait_for


def owned_by(dep, name: str, kind="Service", **extra) -> dict:
    return {
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": dep.metadata.name,
                    "uid": dep.metadata.uid,
                    "controller": True,
                }
            ],
        },
        **extra,
    }


def pods_of(core, name="web"):
    return core.list_namespaced_pod(NS, label_selector=f"app={name}").items


def set_ready(core, pod, ready: bool):
    return core.patch_namespaced_pod_status(
        pod.metadata.name,
        NS,
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": str(ready)},
                    {"type": "ContainersReady", "status": str(ready)},
                ],
                "containerStatuses": [
                    {
                        "name": "app",
                        "ready": ready,
                        "restartCount": 0,
                        "image": "x",
                        "imageID": "",
                        "state": {"running": {}},
                    }
                ],
            }
        },
    )


# -- deployment and replicaset controllers ---------------------------------------------------
def test_deployment_controller_makes_a_pod_and_tracks_readiness(apps_api, core_api):
    dep = apps_api.create_namespaced_deployment(NS, deployment())
    [pod] = pods_of(core_api)
    assert pod.metadata.name.startswith("web-") and pod.status.phase == "Pending"
    assert pod.metadata.labels["app"] == "web" and "pod-template-hash" in pod.metadata.labels
    assert pod.spec.containers[0].image == "example/app:1"
    assert pod.status.qos_class == "Guaranteed"
    [owner] = pod.metadata.owner_references
    assert owner.kind == "ReplicaSet" and owner.controller
    rs = client.AppsV1Api(apps_api.api_client).read_namespaced_replica_set(owner.name, NS)
    assert rs.metadata.owner_references[0].uid == dep.metadata.uid

    status = apps_api.read_namespaced_deployment_status("web", NS).status
    assert status.replicas == 1 and status.ready_replicas is None  # zero counts are omitted
    assert {c.type: c.status for c in status.conditions}["Available"] == "False"

    set_ready(core_api, pod, True)
    status = apps_api.read_namespaced_deployment("web", NS).status
    assert status.ready_replicas == 1 and status.available_replicas == 1
    assert status.unavailable_replicas is None
    assert {c.type: c.status for c in status.conditions}["Available"] == "True"

    set_ready(core_api, pod, False)
    status = apps_api.read_namespaced_deployment("web", NS).status
    assert status.ready_replicas is None and status.available_replicas is None


def test_pod_status_patch_merges_by_key(apps_api, core_api):
    apps_api.create_namespaced_deployment(NS, deployment())
    [pod] = pods_of(core_api)
    set_ready(core_api, pod, True)
    patched = core_api.patch_namespaced_pod_status(
        pod.metadata.name,
        NS,
        {
            "status": {
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "app", "restartCount": 3}],
            }
        },
    )
    assert {c.type for c in patched.status.conditions} == {"Ready", "ContainersReady", "PodScheduled"}
    [container] = patched.status.container_statuses
    assert container.restart_count == 3 and container.ready is True
    assert patched.spec.containers[0].name == "app"  # a status write leaves spec alone


def test_replicaset_replaces_deleted_pods_and_scales(apps_api, core_api):
    apps_api.create_namespaced_deployment(NS, deployment())
    [first] = pods_of(core_api)
    deleted = core_api.delete_namespaced_pod(first.metadata.name, NS)
    assert deleted.metadata.name == first.metadata.name  # pods answer with the object
    [second] = pods_of(core_api)
    assert second.metadata.name != first.metadata.name
    apps_api.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 0}})
    assert pods_of(core_api) == []
    assert apps_api.read_namespaced_deployment("web", NS).status.replicas is None
    apps_api.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 2}})
    assert len(pods_of(core_api)) == 2


def test_template_change_rolls_out_a_new_replicaset(fake_kube_server, apps_api, core_api):
    apps_api.create_namespaced_deployment(NS, deployment(revisionHistoryLimit=1))
    [first] = pods_of(core_api)
    for tag in ("2", "3", "4"):
        rolled = apps_api.patch_namespaced_deployment(
            "web", NS, {"spec": {"template": {"metadata": {"annotations": {"restartedAt": tag}}}}}
        )
    [pod] = pods_of(core_api)  # Recreate: the old pod went first
    assert pod.metadata.name != first.metadata.name
    assert pod.metadata.annotations == {"restartedAt": "4"}
    dep = apps_api.read_namespaced_deployment("web", NS)
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "4"
    assert dep.status.observed_generation == rolled.metadata.generation == 4
    replicasets = fake_kube_server.objects("replicasets", NS)  # the new one plus revisionHistoryLimit old
    assert [rs["spec"]["replicas"] for rs in replicasets].count(0) == 1 and len(replicasets) == 2


# -- garbage collection -----------------------------------------------------------------------
def make_owned(core, custom, dep):
    core.create_namespaced_service(NS, owned_by(dep, "web", spec={"ports": [{"port": 80}]}))
    core.create_namespaced_secret(NS, owned_by(dep, "web", stringData={"K": "v"}))
    custom.create_namespaced_custom_object(
        *IR,
        NS,
        "ingressroutes",
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            **owned_by(
                dep,
                "web",
                spec={
                    "routes": [
                        {"kind": "Rule", "match": "Host(`x`)", "services": [{"name": "web", "port": 80}]}
                    ]
                },
            ),
        },
    )


def remaining(fake):
    return {
        kind: [o["metadata"]["name"] for o in fake.objects(kind, NS)]
        for kind in ("deployments", "replicasets", "pods", "services", "secrets", "ingressroutes")
    }


@pytest.mark.parametrize("policy", [None, "Background", "Foreground"])
def test_deleting_a_deployment_collects_what_it_owns(
    fake_kube_server, apps_api, core_api, custom_api, policy
):
    dep = apps_api.create_namespaced_deployment(NS, deployment())
    make_owned(core_api, custom_api, dep)
    answer = apps_api.delete_namespaced_deployment("web", NS, propagation_policy=policy)
    if policy == "Foreground":  # the object, marked, until its dependents are gone
        assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
        assert answer["metadata"]["deletionTimestamp"]
    else:
        assert answer["kind"] == "Status" and answer["status"] == "Success"
    assert all(not names for names in remaining(fake_kube_server).values()), remaining(fake_kube_server)


def test_orphan_keeps_dependents_and_drops_references(fake_kube_server, apps_api, core_api, custom_api):
    dep = apps_api.create_namespaced_deployment(NS, deployment())
    make_owned(core_api, custom_api, dep)
    apps_api.delete_namespaced_deployment("web", NS, body={"propagationPolicy": "Orphan"})
    left = remaining(fake_kube_server)
    assert left["deployments"] == [] and left["services"] == ["web"] and len(left["pods"]) == 1
    assert core_api.read_namespaced_service("web", NS).metadata.owner_references is None


def test_dangling_owner_reference_is_collected(fake_kube_server, core_api):
    core_api.create_namespaced_secret(
        NS,
        {
            "metadata": {
                "name": "s",
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone", "uid": str(uuid.uuid4())}
                ],
            }
        },
    )
    assert fake_kube_server.objects("secrets", NS) == []


def test_gc_delay_makes_collection_asynchronous(tmp_path):
    with FakeKubeAPI(gc_delay=1.5) as fake:
        fake.add_namespace(NS)
        api = kube_client(fake, tmp_path)
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        dep = apps.create_namespaced_deployment(NS, deployment())
        core.create_namespaced_secret(NS, owned_by(dep, "web"))
        apps.delete_namespaced_deployment("web", NS)
        assert fake.objects("secrets", NS) and fake.objects("pods", NS)
        wait_for(
            lambda: fake.objects("secrets", NS) == [] and fake.objects("pods", NS) == [],
            30,
            "the deferred collection",
        )
