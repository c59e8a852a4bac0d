"""The fake Kubernetes API server (tests/kube_fake.py), driven by the real ``kubernetes``
client through a kubeconfig, as the Kubernetes backend will drive it."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import pydantic
import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .kube_fake import FakeKubeAPI

NS = "viz"
IR = ("traefik.io", "v1alpha1")


@pytest.fixture
def fake():
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


@pytest.fixture
def api(fake, tmp_path):
    return kube_client(fake, tmp_path)


@pytest.fixture
def apps(api):
    return client.AppsV1Api(api)


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture
def custom(api):
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


def owned_by(dep, name: str, kind="Service", **extra) -> dict:
    return {"metadata": {"name": name, "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep.metadata.name,
         "uid": dep.metadata.uid, "controller": True}]}, **extra}


def raw(fake: FakeKubeAPI, method: str, path: str, body=None) -> tuple[int, dict]:
    """Past the client's own checks (client 37 refuses a Deployment without selector)."""
    answer = urllib3.request(method, fake.url + path, json=body,
                             headers={"Authorization": f"Bearer {fake.token}"}, retries=False)
    return answer.status, answer.json()


def status_of(excinfo) -> dict:
    return json.loads(excinfo.value.body)


def pods_of(core, name="web"):
    return core.list_namespaced_pod(NS, label_selector=f"app={name}").items


def set_ready(core, pod, ready: bool):
    return core.patch_namespaced_pod_status(pod.metadata.name, NS, {"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": str(ready)},
                       {"type": "ContainersReady", "status": str(ready)}],
        "containerStatuses": [{"name": "app", "ready": ready, "restartCount": 0, "image": "x",
                               "imageID": "", "state": {"running": {}}}]}})


# -- transport, auth, namespaces --------------------------------------------------------------
def test_bearer_token_is_required(fake, core, tmp_path):
    assert {"default", NS} <= {n.metadata.name for n in core.list_namespace().items}
    for token in (None, "wrong"):
        anonymous = client.Configuration(host=fake.url)
        anonymous.retries = False
        if token:
            anonymous.api_key = {"BearerToken": f"Bearer {token}"}
        with pytest.raises(ApiException) as e:
            client.CoreV1Api(client.ApiClient(anonymous)).list_namespace()
        assert e.value.status == 401
        assert status_of(e) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": "Unauthorized",
                                "reason": "Unauthorized", "code": 401}


def test_namespaces_and_missing_namespace(fake, core):
    created = core.create_namespace({"metadata": {"name": "team-a"}})
    assert created.status.phase == "Active" and created.metadata.uid
    read = core.read_namespace("team-a")
    assert read.metadata.resource_version == created.metadata.resource_version
    with pytest.raises(ApiException) as e:
        core.create_namespace({"metadata": {"name": "team-a"}})
    assert e.value.status == 409 and status_of(e)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as e:
        core.create_namespace({"metadata": {"name": "Team_A"}})
    assert e.value.status == 422
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret("nowhere", {"metadata": {"name": "s"}})
    assert e.value.status == 404
    assert status_of(e)["message"] == 'namespaces "nowhere" not found'
    assert status_of(e)["details"] == {"name": "nowhere", "kind": "namespaces"}
    fake.add_namespace("nowhere")
    assert core.create_namespaced_secret("nowhere", {"metadata": {"name": "s"}}).type == "Opaque"
    going = core.delete_namespace("nowhere")  # answered with the Namespace, Terminating
    assert going["status"]["phase"] == "Terminating" and going["metadata"]["deletionTimestamp"]
    assert fake.objects("secrets", "nowhere") == []
    with pytest.raises(ApiException) as e:
        core.read_namespace("nowhere")
    assert e.value.status == 404


# -- deployments ------------------------------------------------------------------------------
def test_deployment_create_get_list_delete(apps):
    created = apps.create_namespaced_deployment(NS, deployment())
    meta = created.metadata
    assert meta.uid and meta.resource_version and meta.creation_timestamp and meta.generation == 1
    assert meta.namespace == NS and created.spec.replicas == 1
    assert created.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    got = apps.read_namespaced_deployment("web", NS)
    assert got.metadata.uid == meta.uid and got.kind == "Deployment"
    assert int(got.metadata.resource_version) > int(meta.resource_version)  # the controller wrote
    assert got.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    apps.create_namespaced_deployment(NS, deployment("other", labels={"app": "other"}))
    listed = apps.list_namespaced_deployment(NS)
    assert listed.kind == "DeploymentList" and listed.metadata.resource_version
    assert [d.metadata.name for d in listed.items] == ["other", "web"]
    assert listed.items[0].kind is None  # built-in list items carry no kind, as for real

    answer = apps.delete_namespaced_deployment("web", NS)
    assert answer == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                      "details": {"name": "web", "group": "apps", "kind": "deployments",
                                  "uid": meta.uid}}
    with pytest.raises(ApiException) as e:
        apps.read_namespaced_deployment("web", NS)
    assert e.value.status == 404
    assert status_of(e) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "web" not found', "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 404}
    with pytest.raises(ApiException) as e:
        apps.delete_namespaced_deployment("web", NS)
    assert e.value.status == 404


def test_deployment_conflicts_and_validation(fake, apps):
    apps.create_namespaced_deployment(NS, deployment())
    with pytest.raises(ApiException) as e:
        apps.create_namespaced_deployment(NS, deployment())
    assert e.value.status == 409 and status_of(e)["reason"] == "AlreadyExists"
    assert status_of(e)["message"] == 'deployments.apps "web" already exists'
    for bad_name in ("Web", "web_1", "-web", "a" * 254):
        with pytest.raises(ApiException) as e:
            apps.create_namespaced_deployment(NS, deployment(bad_name))
        assert e.value.status == 422, bad_name
        body = status_of(e)
        assert body["reason"] == "Invalid" and body["details"]["kind"] == "Deployment"
        assert body["details"]["causes"][0]["field"] == "metadata.name"
    broken = deployment("broken")
    del broken["spec"]["selector"], broken["spec"]["template"]
    code, body = raw(fake, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", broken)
    assert code == 422 and body["reason"] == "Invalid"
    assert {"spec.selector", "spec.template.spec.containers"} <= {
        c["field"] for c in body["details"]["causes"]}
    mismatched = deployment("mismatch")
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "else"}
    with pytest.raises(ApiException) as e:
        apps.create_namespaced_deployment(NS, mismatched)
    assert "`selector` does not match template `labels`" in status_of(e)["message"]


def test_label_selectors(apps):
    apps.create_namespaced_deployment(NS, deployment("a", labels={"app": "a", "team": "x"}))
    apps.create_namespaced_deployment(NS, deployment("b", labels={"app": "b"}))

    def names(selector):
        return [d.metadata.name for d in apps.list_namespaced_deployment(
            NS, label_selector=selector).items]
    assert names("app=a") == ["a"]
    assert names("app==b,tier=viz") == ["b"]
    assert names("team") == ["a"] and names("!team") == ["b"]
    assert names("app!=a") == ["b"] and names("app in (a,b)") == ["a", "b"]
    assert names("app=a,team=y") == [] and names("") == ["a", "b"]
    with pytest.raises(ApiException) as e:
        names("app=(")
    assert e.value.status == 400


def test_deployment_patches(apps):
    apps.create_namespaced_deployment(NS, deployment())
    merged = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "1"}}})
    assert merged.metadata.labels == {"app": "web", "tier": "viz", "x": "1"}
    assert merged.metadata.generation == 1  # metadata only
    strategic = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "example/app:2"}]}}}})
    container = strategic.spec.template.spec.containers[0]
    assert container.image == "example/app:2" and container.ports[0].container_port == 8050
    assert strategic.metadata.generation == 2
    with pytest.raises(ApiException) as e:  # selectors are immutable in apps/v1
        apps.patch_namespaced_deployment("web", NS, {"spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}}}})
    assert e.value.status == 422
    stale = apps.read_namespaced_deployment("web", NS).to_dict(serialize=True)
    apps.patch_namespaced_deployment("web", NS, {"metadata": {"annotations": {"n": "1"}}})
    with pytest.raises(ApiException) as e:
        apps.replace_namespaced_deployment("web", NS, stale)
    assert e.value.status == 409 and status_of(e)["reason"] == "Conflict"
    fresh = apps.read_namespaced_deployment("web", NS).to_dict(serialize=True)
    fresh["metadata"]["labels"] = {"only": "this"}
    replaced = apps.replace_namespaced_deployment("web", NS, fresh)
    assert replaced.metadata.labels == {"only": "this"}
    assert int(replaced.metadata.resource_version) > int(fresh["metadata"]["resourceVersion"])


def test_owner_references_are_validated(fake):
    code, body = raw(fake, "POST", f"/api/v1/namespaces/{NS}/secrets", {"metadata": {
        "name": "s", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": "web", "uid": ""}]}})
    assert code == 422 and body["details"]["causes"][0]["field"] == "metadata.ownerReferences.uid"


def test_deployment_controller_makes_a_pod_and_tracks_readiness(apps, core):
    dep = apps.create_namespaced_deployment(NS, deployment())
    [pod] = pods_of(core)
    assert pod.metadata.name.startswith("web-") and pod.status.phase == "Pending"
    assert pod.metadata.labels["app"] == "web" and "pod-template-hash" in pod.metadata.labels
    assert pod.spec.containers[0].image == "example/app:1"
    assert pod.status.qos_class == "Guaranteed"
    [owner] = pod.metadata.owner_references
    assert owner.kind == "ReplicaSet" and owner.controller
    rs = client.AppsV1Api(apps.api_client).read_namespaced_replica_set(owner.name, NS)
    assert rs.metadata.owner_references[0].uid == dep.metadata.uid

    status = apps.read_namespaced_deployment_status("web", NS).status
    assert status.replicas == 1 and status.ready_replicas is None  # zero counts are omitted
    assert {c.type: c.status for c in status.conditions}["Available"] == "False"

    set_ready(core, pod, True)
    status = apps.read_namespaced_deployment("web", NS).status
    assert status.ready_replicas == 1 and status.available_replicas == 1
    assert status.unavailable_replicas is None
    assert {c.type: c.status for c in status.conditions}["Available"] == "True"

    set_ready(core, pod, False)
    status = apps.read_namespaced_deployment("web", NS).status
    assert status.ready_replicas is None and status.available_replicas is None


def test_pod_status_patch_merges_by_key(apps, core):
    apps.create_namespaced_deployment(NS, deployment())
    [pod] = pods_of(core)
    set_ready(core, pod, True)
    patched = core.patch_namespaced_pod_status(pod.metadata.name, NS, {"status": {
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "app", "restartCount": 3}]}})
    assert {c.type for c in patched.status.conditions} == {
        "Ready", "ContainersReady", "PodScheduled"}
    [container] = patched.status.container_statuses
    assert container.restart_count == 3 and container.ready is True
    assert patched.spec.containers[0].name == "app"  # a status write leaves spec alone


def test_replicaset_replaces_deleted_pods_and_scales(apps, core):
    apps.create_namespaced_deployment(NS, deployment())
    [first] = pods_of(core)
    deleted = core.delete_namespaced_pod(first.metadata.name, NS)
    assert deleted.metadata.name == first.metadata.name  # pods answer with the object
    [second] = pods_of(core)
    assert second.metadata.name != first.metadata.name
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 0}})
    assert pods_of(core) == []
    assert apps.read_namespaced_deployment("web", NS).status.replicas is None
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 2}})
    assert len(pods_of(core)) == 2


def test_template_change_rolls_out_a_new_replicaset(fake, apps, core):
    apps.create_namespaced_deployment(NS, deployment(revisionHistoryLimit=1))
    [first] = pods_of(core)
    for tag in ("2", "3", "4"):
        rolled = apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {
            "annotations": {"restartedAt": tag}}}}})
    [pod] = pods_of(core)  # Recreate: the old pod went first
    assert pod.metadata.name != first.metadata.name
    assert pod.metadata.annotations == {"restartedAt": "4"}
    dep = apps.read_namespaced_deployment("web", NS)
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "4"
    assert dep.status.observed_generation == rolled.metadata.generation == 4
    replicasets = fake.objects("replicasets", NS)  # the new one plus revisionHistoryLimit old
    assert [rs["spec"]["replicas"] for rs in replicasets].count(0) == 1 and len(replicasets) == 2


# -- garbage collection -----------------------------------------------------------------------
def make_owned(core, custom, dep):
    core.create_namespaced_service(NS, owned_by(dep, "web", spec={"ports": [{"port": 80}]}))
    core.create_namespaced_secret(NS, owned_by(dep, "web", stringData={"K": "v"}))
    custom.create_namespaced_custom_object(*IR, NS, "ingressroutes", {
        "apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute", **owned_by(dep, "web", spec={
            "routes": [{"kind": "Rule", "match": "Host(`x`)",
                        "services": [{"name": "web", "port": 80}]}]})})


def remaining(fake):
    return {kind: [o["metadata"]["name"] for o in fake.objects(kind, NS)]
            for kind in ("deployments", "replicasets", "pods", "services", "secrets",
                         "ingressroutes")}


@pytest.mark.parametrize("policy", [None, "Background", "Foreground"])
def test_deleting_a_deployment_collects_what_it_owns(fake, apps, core, custom, policy):
    dep = apps.create_namespaced_deployment(NS, deployment())
    make_owned(core, custom, dep)
    answer = apps.delete_namespaced_deployment("web", NS, propagation_policy=policy)
    if policy == "Foreground":  # the object, marked, until its dependents are gone
        assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
        assert answer["metadata"]["deletionTimestamp"]
    else:
        assert answer["kind"] == "Status" and answer["status"] == "Success"
    assert all(not names for names in remaining(fake).values()), remaining(fake)


def test_orphan_keeps_dependents_and_drops_references(fake, apps, core, custom):
    dep = apps.create_namespaced_deployment(NS, deployment())
    make_owned(core, custom, dep)
    apps.delete_namespaced_deployment("web", NS, body={"propagationPolicy": "Orphan"})
    left = remaining(fake)
    assert left["deployments"] == [] and left["services"] == ["web"] and len(left["pods"]) == 1
    assert core.read_namespaced_service("web", NS).metadata.owner_references is None


def test_dangling_owner_reference_is_collected(fake, core):
    core.create_namespaced_secret(NS, {"metadata": {"name": "s", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone",
         "uid": str(uuid.uuid4())}]}})
    assert fake.objects("secrets", NS) == []


def test_gc_delay_makes_collection_asynchronous(tmp_path):
    with FakeKubeAPI(gc_delay=0.3) as fake:
        fake.add_namespace(NS)
        api = kube_client(fake, tmp_path)
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        dep = apps.create_namespaced_deployment(NS, deployment())
        core.create_namespaced_secret(NS, owned_by(dep, "web"))
        apps.delete_namespaced_deployment("web", NS)
        assert fake.objects("secrets", NS) and fake.objects("pods", NS)
        time.sleep(0.6)
        assert fake.objects("secrets", NS) == [] and fake.objects("pods", NS) == []


# -- services, secrets, events ------------------------------------------------------------------
def test_services(fake, core):
    svc = core.create_namespaced_service(NS, {
        "metadata": {"name": "web", "labels": {"a": "b"}},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip.startswith("10.96.")
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].target_port == "http"
    assert core.read_namespaced_service("web", NS).spec.cluster_ip == svc.spec.cluster_ip
    listed = core.list_namespaced_service(NS, label_selector="a=b").items
    assert [s.metadata.name for s in listed] == ["web"]
    with pytest.raises(ApiException) as e:  # service names are DNS-1035 labels
        core.create_namespaced_service(NS, {"metadata": {"name": "1web"},
                                            "spec": {"ports": [{"port": 80}]}})
    assert e.value.status == 422
    # 1.20 answers a service DELETE with a Status, which client 37 can't read as a V1Service
    # (the object is deleted all the same); raw responses read fine.
    with pytest.raises(pydantic.ValidationError):
        core.delete_namespaced_service("web", NS)
    assert fake.objects("services", NS) == []
    core.create_namespaced_service(NS, {"metadata": {"name": "web"},
                                        "spec": {"ports": [{"port": 80}]}})
    raw = core.delete_namespaced_service("web", NS, _preload_content=False)
    assert json.loads(raw.data)["status"] == "Success"


def test_secrets(core):
    secret = core.create_namespaced_secret(NS, {
        "metadata": {"name": "env", "labels": {"app": "web"}}, "stringData": {"TOKEN": "s3cret"}})
    assert secret.data == {"TOKEN": base64.b64encode(b"s3cret").decode()}
    assert secret.string_data is None and secret.type == "Opaque"
    assert core.read_namespaced_secret("env", NS).data == secret.data
    listed = core.list_namespaced_secret(NS, label_selector="app").items
    assert [s.metadata.name for s in listed] == ["env"]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret(NS, {"metadata": {"name": "env"}})
    assert e.value.status == 409
    assert core.delete_namespaced_secret("env", NS)["status"] == "Success"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_secret("env", NS)
    assert e.value.status == 404 and status_of(e)["message"] == 'secrets "env" not found'


def test_events_by_involved_object(core):
    for name, pod in (("a.1", "web-1"), ("b.1", "web-2")):
        core.create_namespaced_event(NS, {
            "metadata": {"name": name}, "type": "Warning", "reason": "BackOff",
            "message": "Back-off restarting failed container", "count": 1,
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": NS}})
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=web-1")
    assert events.kind == "EventList"
    assert [e.involved_object.name for e in events.items] == ["web-1"]
    warnings = core.list_namespaced_event(NS, field_selector="reason=BackOff,type=Warning")
    assert len(warnings.items) == 2
    with pytest.raises(ApiException) as e:
        core.list_namespaced_event(NS, field_selector="spec.bogus=1")
    assert e.value.status == 400


# -- custom objects ---------------------------------------------------------------------------
@pytest.mark.parametrize("group", ["traefik.io", "traefik.containo.us"])
@pytest.mark.parametrize("plural,kind,spec", [
    ("ingressroutes", "IngressRoute", {"routes": [{"kind": "Rule", "match": "Host(`x`)"}]}),
    ("middlewares", "Middleware", {"stripPrefix": {"prefixes": ["/a"]}}),
])
def test_custom_objects(custom, group, plural, kind, spec):
    args = (group, "v1alpha1", NS, plural)
    body = {"apiVersion": f"{group}/v1alpha1", "kind": kind, "metadata": {"name": "r"},
            "spec": spec}
    created = custom.create_namespaced_custom_object(*args, body)
    assert created["metadata"]["uid"] and created["kind"] == kind and created["spec"] == spec
    got = custom.get_namespaced_custom_object(*args, "r")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    listed = custom.list_namespaced_custom_object(*args)
    assert listed["kind"] == f"{kind}List" and listed["items"][0]["kind"] == kind  # CR items do
    for bad, code in ((body, 409), ({**body, "metadata": {"name": "R!"}}, 422)):
        with pytest.raises(ApiException) as e:
            custom.create_namespaced_custom_object(*args, bad)
        assert e.value.status == code
    answer = custom.delete_namespaced_custom_object(*args, "r")
    assert answer["status"] == "Success" and answer["details"]["group"] == group
    with pytest.raises(ApiException) as e:
        custom.get_namespaced_custom_object(*args, "r")
    assert e.value.status == 404
    assert status_of(e)["message"] == f'{plural}.{group} "r" not found'


def test_traefik_io_schema_prunes_and_validates(custom):
    args = (*IR, NS, "ingressroutes")
    route = {"kind": "Rule", "match": "Host(`x`)", "typo": 1,
             "services": [{"name": "web", "port": 80}]}
    created = custom.create_namespaced_custom_object(*args, {
        "apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute", "metadata": {"name": "r"},
        "spec": {"routes": [route]}, "status": {"x": 1}})
    assert "typo" not in created["spec"]["routes"][0] and "status" not in created
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object(*args, {
            "apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
            "metadata": {"name": "bad"},
            "spec": {"routes": [{"kind": "Rool", "match": "x"}]}})
    assert e.value.status == 422
    assert status_of(e)["details"]["causes"][0]["field"] == "spec.routes[0].kind"
    patched = custom.patch_namespaced_custom_object(*args, "r",
                                                    {"metadata": {"labels": {"a": "b"}}})
    assert patched["metadata"]["labels"] == {"a": "b"}
    with pytest.raises(ApiException) as e:  # custom resources take no strategic merge patch
        custom.patch_namespaced_custom_object(
            *args, "r", {"metadata": {"labels": {"a": "c"}}},
            _content_type="application/strategic-merge-patch+json")
    assert e.value.status == 415


# -- faults -----------------------------------------------------------------------------------
def test_503_then_success(fake, apps):
    fault = fake.inject(method="POST", path_re=r"/deployments$", status=503, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            apps.create_namespaced_deployment(NS, deployment())
        assert e.value.status == 503
        assert status_of(e)["reason"] == "ServiceUnavailable" and status_of(e)["kind"] == "Status"
    assert fake.objects("deployments", NS) == []  # a failed request does nothing
    assert apps.create_namespaced_deployment(NS, deployment()).metadata.uid
    assert fault.hits == 2 and fake.count("POST", "/deployments") == 3


def test_429_carries_retry_after(fake, core):
    fake.inject(method="GET", path_re="/pods", status=429, retry_after=7)
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod(NS)
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "7"
    assert status_of(e)["reason"] == "TooManyRequests"
    assert status_of(e)["details"]["retryAfterSeconds"] == 7
    fake.inject(path_re="/pods", status=429, body="Too many requests, please try again later.\n")
    with pytest.raises(ApiException) as e:  # what 1.20's max-in-flight filter really sends
        core.list_namespaced_pod(NS)
    assert e.value.body.startswith("Too many") and "text/plain" in e.value.headers["Content-Type"]


def test_delay_makes_the_client_time_out_but_the_request_lands(fake, core):
    fake.inject(method="POST", path_re="/secrets", delay=1.0)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core.create_namespaced_secret(NS, {"metadata": {"name": "s"}}, _request_timeout=0.2)
    assert [s["metadata"]["name"] for s in fake.objects("secrets", NS)] == ["s"]


def test_reset_aborts_the_connection(fake, core):
    fake.inject(method="GET", path_re="/secrets", reset=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        core.list_namespaced_secret(NS)
    assert core.list_namespaced_secret(NS).items == []  # the next one is fine


def test_default_client_retries_hide_idempotent_faults(fake, tmp_path):
    """Without ``configuration.retries = False``, urllib3 retries GET/PUT/DELETE three times
    on resets and timeouts, and honours Retry-After on 413/429/503 for them."""
    core = client.CoreV1Api(kube_client(fake, tmp_path, retries=None))
    fake.inject(method="GET", path_re="/secrets", reset=True)
    assert core.list_namespaced_secret(NS).items == []  # hidden
    fake.inject(method="GET", path_re="/secrets", reset=True, times=4)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_secret(NS)
    fake.inject(method="GET", path_re="/secrets", delay=0.5, times=4)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_secret(NS, _request_timeout=0.1)
    fake.inject(method="GET", path_re="/secrets", status=503, retry_after=0)
    assert core.list_namespaced_secret(NS).items == []  # hidden
    fake.inject(method="POST", path_re="/secrets", reset=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):  # POST is never retried
        core.create_namespaced_secret(NS, {"metadata": {"name": "s"}})


def test_fault_matching_and_clearing(fake, core):
    fault = fake.inject(method="DELETE", path_re=r"/secrets/env$", status=500, times=None)
    core.create_namespaced_secret(NS, {"metadata": {"name": "env"}})  # other method: untouched
    for _ in range(3):
        with pytest.raises(ApiException) as e:
            core.delete_namespaced_secret("env", NS)
        assert e.value.status == 500 and status_of(e)["reason"] == "InternalError"
    assert fault.hits == 3
    fake.clear_faults()
    assert core.delete_namespaced_secret("env", NS)["status"] == "Success"
    with pytest.raises(ValueError):
        fake.inject(method="GET")


def test_request_counting(fake, apps, core):
    fake.reset_requests()
    apps.create_namespaced_deployment(NS, deployment())
    apps.read_namespaced_deployment("web", NS)
    core.list_namespaced_pod(NS, label_selector="app=web")
    assert fake.count() == 3 and fake.count("GET") == 2
    assert fake.count(path_contains="/deployments") == 2 and fake.count("POST", "/pods") == 0
    assert fake.requests[-1] == ("GET", f"/api/v1/namespaces/{NS}/pods",
                                 {"labelSelector": "app=web"})
    fake.reset_requests()
    assert fake.count() == 0


def test_concurrent_writes(fake, core):
    errors = []

    def work(i):
        try:
            core.create_namespaced_secret(NS, {"metadata": {"name": f"s{i}"}})
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    versions = [int(s.metadata.resource_version) for s in core.list_namespaced_secret(NS).items]
    assert len(set(versions)) == 20
