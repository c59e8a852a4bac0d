"""The fake Kubernetes API server (tests/kube_fake/), driven by the real ``kubernetes``
client through a kubeconfig, as the Kubernetes backend will drive it: transport and auth,
namespaces, create/read/list/update/patch/delete, validation, selectors, custom objects.
Controllers and garbage collection are in test_kube_fake_controllers.py, fault injection
in test_kube_fake_faults.py."""

from __future__ import annotations

import base64
import json
import threading

import pydantic
import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kube_fake import FakeKubeAPI
from .kube_fake.fixtures import (
    IR,
    NS,
    deployment,
    status_of,
)


def raw(fake: FakeKubeAPI, method: str, path: str, body=None) -> tuple[int, dict]:
    """Past the client's own checks (client 37 refuses a Deployment without selector)."""
    answer = urllib3.request(
        method, fake.url + path, json=body, headers={"Authorization": f"Bearer {fake.token}"}, retries=False
    )
    return answer.status, answer.json()


# -- transport, auth, namespaces --------------------------------------------------------------
def test_bearer_token_is_required(fake_kube_server, core_api, tmp_path):
    assert {"default", NS} <= {n.metadata.name for n in core_api.list_namespace().items}
    for token in (None, "wrong"):
        anonymous = client.Configuration(host=fake_kube_server.url)
        anonymous.retries = False
        if token:
            anonymous.api_key = {"BearerToken": f"Bearer {token}"}
        with pytest.raises(ApiException) as e:
            client.CoreV1Api(client.ApiClient(anonymous)).list_namespace()
        assert e.value.status == 401
        assert status_of(e) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }


def test_namespaces_and_missing_namespace(fake_kube_server, core_api):
    created = core_api.create_namespace({"metadata": {"name": "team-a"}})
    assert created.status.phase == "Active" and created.metadata.uid
    read = core_api.read_namespace("team-a")
    assert read.metadata.resource_version == created.metadata.resource_version
    with pytest.raises(ApiException) as e:
        core_api.create_namespace({"metadata": {"name": "team-a"}})
    assert e.value.status == 409 and status_of(e)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as e:
        core_api.create_namespace({"metadata": {"name": "Team_A"}})
    assert e.value.status == 422
    with pytest.raises(ApiException) as e:
        core_api.create_namespaced_secret("nowhere", {"metadata": {"name": "s"}})
    assert e.value.status == 404
    assert status_of(e)["message"] == 'namespaces "nowhere" not found'
    assert status_of(e)["details"] == {"name": "nowhere", "kind": "namespaces"}
    fake_kube_server.add_namespace("nowhere")
    assert core_api.create_namespaced_secret("nowhere", {"metadata": {"name": "s"}}).type == "Opaque"
    going = core_api.delete_namespace("nowhere")  # answered with the Namespace, Terminating
    assert going["status"]["phase"] == "Terminating" and going["metadata"]["deletionTimestamp"]
    assert fake_kube_server.objects("secrets", "nowhere") == []
    with pytest.raises(ApiException) as e:
        core_api.read_namespace("nowhere")
    assert e.value.status == 404


# -- deployments ------------------------------------------------------------------------------
def test_deployment_create_get_list_delete(apps_api):
    created = apps_api.create_namespaced_deployment(NS, deployment())
    meta = created.metadata
    assert meta.uid and meta.resource_version and meta.creation_timestamp and meta.generation == 1
    assert meta.namespace == NS and created.spec.replicas == 1
    assert created.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    got = apps_api.read_namespaced_deployment("web", NS)
    assert got.metadata.uid == meta.uid and got.kind == "Deployment"
    assert int(got.metadata.resource_version) > int(meta.resource_version)  # the controller wrote
    assert got.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    apps_api.create_namespaced_deployment(NS, deployment("other", labels={"app": "other"}))
    listed = apps_api.list_namespaced_deployment(NS)
    assert listed.kind == "DeploymentList" and listed.metadata.resource_version
    assert [d.metadata.name for d in listed.items] == ["other", "web"]
    assert listed.items[0].kind is None  # built-in list items carry no kind, as for real

    answer = apps_api.delete_namespaced_deployment("web", NS)
    assert answer == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "web", "group": "apps", "kind": "deployments", "uid": meta.uid},
    }
    with pytest.raises(ApiException) as e:
        apps_api.read_namespaced_deployment("web", NS)
    assert e.value.status == 404
    assert status_of(e) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" not found',
        "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 404,
    }
    with pytest.raises(ApiException) as e:
        apps_api.delete_namespaced_deployment("web", NS)
    assert e.value.status == 404


def test_deployment_conflicts_and_validation(fake_kube_server, apps_api):
    apps_api.create_namespaced_deployment(NS, deployment())
    with pytest.raises(ApiException) as e:
        apps_api.create_namespaced_deployment(NS, deployment())
    assert e.value.status == 409 and status_of(e)["reason"] == "AlreadyExists"
    assert status_of(e)["message"] == 'deployments.apps "web" already exists'
    for bad_name in ("Web", "web_1", "-web", "a" * 254):
        with pytest.raises(ApiException) as e:
            apps_api.create_namespaced_deployment(NS, deployment(bad_name))
        assert e.value.status == 422, bad_name
        body = status_of(e)
        assert body["reason"] == "Invalid" and body["details"]["kind"] == "Deployment"
        assert body["details"]["causes"][0]["field"] == "metadata.name"
    broken = deployment("broken")
    del broken["spec"]["selector"], broken["spec"]["template"]
    code, body = raw(fake_kube_server, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", broken)
    assert code == 422 and body["reason"] == "Invalid"
    assert {"spec.selector", "spec.template.spec.containers"} <= {
        c["field"] for c in body["details"]["causes"]
    }
    mismatched = deployment("mismatch")
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "else"}
    with pytest.raises(ApiException) as e:
        apps_api.create_namespaced_deployment(NS, mismatched)
    assert "`selector` does not match template `labels`" in status_of(e)["message"]


def test_label_selectors(apps_api):
    apps_api.create_namespaced_deployment(NS, deployment("a", labels={"app": "a", "team": "x"}))
    apps_api.create_namespaced_deployment(NS, deployment("b", labels={"app": "b"}))

    def names(selector):
        return [
            d.metadata.name for d in apps_api.list_namespaced_deployment(NS, label_selector=selector).items
        ]

    assert names("app=a") == ["a"]
    assert names("app==b,tier=viz") == ["b"]
    assert names("team") == ["a"] and names("!team") == ["b"]
    assert names("app!=a") == ["b"] and names("app in (a,b)") == ["a", "b"]
    assert names("app=a,team=y") == [] and names("") == ["a", "b"]
    with pytest.raises(ApiException) as e:
        names("app=(")
    assert e.value.status == 400


def test_deployment_patches(apps_api):
    apps_api.create_namespaced_deployment(NS, deployment())
    merged = apps_api.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "1"}}})
    assert merged.metadata.labels == {"app": "web", "tier": "viz", "x": "1"}
    assert merged.metadata.generation == 1  # metadata only
    strategic = apps_api.patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example/app:2"}]}}}},
    )
    container = strategic.spec.template.spec.containers[0]
    assert container.image == "example/app:2" and container.ports[0].container_port == 8050
    assert strategic.metadata.generation == 2
    with pytest.raises(ApiException) as e:  # selectors are immutable in apps/v1
        apps_api.patch_namespaced_deployment(
            "web",
            NS,
            {
                "spec": {
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}},
                }
            },
        )
    assert e.value.status == 422
    stale = apps_api.read_namespaced_deployment("web", NS).to_dict(serialize=True)
    apps_api.patch_namespaced_deployment("web", NS, {"metadata": {"annotations": {"n": "1"}}})
    with pytest.raises(ApiException) as e:
        apps_api.replace_namespaced_deployment("web", NS, stale)
    assert e.value.status == 409 and status_of(e)["reason"] == "Conflict"
    fresh = apps_api.read_namespaced_deployment("web", NS).to_dict(serialize=True)
    fresh["metadata"]["labels"] = {"only": "this"}
    replaced = apps_api.replace_namespaced_deployment("web", NS, fresh)
    assert replaced.metadata.labels == {"only": "this"}
    assert int(replaced.metadata.resource_version) > int(fresh["metadata"]["resourceVersion"])


def test_owner_references_are_validated(fake_kube_server):
    code, body = raw(
        fake_kube_server,
        "POST",
        f"/api/v1/namespaces/{NS}/secrets",
        {
            "metadata": {
                "name": "s",
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": ""}
                ],
            }
        },
    )
    assert code == 422 and body["details"]["causes"][0]["field"] == "metadata.ownerReferences.uid"


# -- services, secrets, events ------------------------------------------------------------------
def test_services(fake_kube_server, core_api):
    svc = core_api.create_namespaced_service(
        NS,
        {
            "metadata": {"name": "web", "labels": {"a": "b"}},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip.startswith("10.96.")
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].target_port == "http"
    assert core_api.read_namespaced_service("web", NS).spec.cluster_ip == svc.spec.cluster_ip
    listed = core_api.list_namespaced_service(NS, label_selector="a=b").items
    assert [s.metadata.name for s in listed] == ["web"]
    with pytest.raises(ApiException) as e:  # service names are DNS-1035 labels
        core_api.create_namespaced_service(
            NS, {"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}
        )
    assert e.value.status == 422
    # 1.20 answers a service DELETE with a Status, which client 37 can't read as a V1Service
    # (the object is deleted all the same); raw responses read fine.
    with pytest.raises(pydantic.ValidationError):
        core_api.delete_namespaced_service("web", NS)
    assert fake_kube_server.objects("services", NS) == []
    core_api.create_namespaced_service(NS, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    raw = core_api.delete_namespaced_service("web", NS, _preload_content=False)
    assert json.loads(raw.data)["status"] == "Success"


def test_secrets(core_api):
    secret = core_api.create_namespaced_secret(
        NS, {"metadata": {"name": "env", "labels": {"app": "web"}}, "stringData": {"TOKEN": "s3cret"}}
    )
    assert secret.data == {"TOKEN": base64.b64encode(b"s3cret").decode()}
    assert secret.string_data is None and secret.type == "Opaque"
    assert core_api.read_namespaced_secret("env", NS).data == secret.data
    listed = core_api.list_namespaced_secret(NS, label_selector="app").items
    assert [s.metadata.name for s in listed] == ["env"]
    with pytest.raises(ApiException) as e:
        core_api.create_namespaced_secret(NS, {"metadata": {"name": "env"}})
    assert e.value.status == 409
    assert core_api.delete_namespaced_secret("env", NS)["status"] == "Success"
    with pytest.raises(ApiException) as e:
        core_api.read_namespaced_secret("env", NS)
    assert e.value.status == 404 and status_of(e)["message"] == 'secrets "env" not found'


def test_events_by_involved_object(core_api):
    for name, pod in (("a.1", "web-1"), ("b.1", "web-2")):
        core_api.create_namespaced_event(
            NS,
            {
                "metadata": {"name": name},
                "type": "Warning",
                "reason": "BackOff",
                "message": "Back-off restarting failed container",
                "count": 1,
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": NS},
            },
        )
    events = core_api.list_namespaced_event(NS, field_selector="involvedObject.name=web-1")
    assert events.kind == "EventList"
    assert [e.involved_object.name for e in events.items] == ["web-1"]
    warnings = core_api.list_namespaced_event(NS, field_selector="reason=BackOff,type=Warning")
    assert len(warnings.items) == 2
    with pytest.raises(ApiException) as e:
        core_api.list_namespaced_event(NS, field_selector="spec.bogus=1")
    assert e.value.status == 400


# -- custom objects ---------------------------------------------------------------------------
@pytest.mark.parametrize("group", ["traefik.io", "traefik.containo.us"])
@pytest.mark.parametrize(
    "plural,kind,spec",
    [
        ("ingressroutes", "IngressRoute", {"routes": [{"kind": "Rule", "match": "Host(`x`)"}]}),
        ("middlewares", "Middleware", {"stripPrefix": {"prefixes": ["/a"]}}),
    ],
)
def test_custom_objects(custom_api, group, plural, kind, spec):
    args = (group, "v1alpha1", NS, plural)
    body = {"apiVersion": f"{group}/v1alpha1", "kind": kind, "metadata": {"name": "r"}, "spec": spec}
    created = custom_api.create_namespaced_custom_object(*args, body)
    assert created["metadata"]["uid"] and created["kind"] == kind and created["spec"] == spec
    got = custom_api.get_namespaced_custom_object(*args, "r")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    listed = custom_api.list_namespaced_custom_object(*args)
    assert listed["kind"] == f"{kind}List" and listed["items"][0]["kind"] == kind  # CR items do
    for bad, code in ((body, 409), ({**body, "metadata": {"name": "R!"}}, 422)):
        with pytest.raises(ApiException) as e:
            custom_api.create_namespaced_custom_object(*args, bad)
        assert e.value.status == code
    answer = custom_api.delete_namespaced_custom_object(*args, "r")
    assert answer["status"] == "Success" and answer["details"]["group"] == group
    with pytest.raises(ApiException) as e:
        custom_api.get_namespaced_custom_object(*args, "r")
    assert e.value.status == 404
    assert status_of(e)["message"] == f'{plural}.{group} "r" not found'


def test_traefik_io_schema_prunes_and_validates(custom_api):
    args = (*IR, NS, "ingressroutes")
    route = {"kind": "Rule", "match": "Host(`x`)", "typo": 1, "services": [{"name": "web", "port": 80}]}
    created = custom_api.create_namespaced_custom_object(
        *args,
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": {"name": "r"},
            "spec": {"routes": [route]},
            "status": {"x": 1},
        },
    )
    assert "typo" not in created["spec"]["routes"][0] and "status" not in created
    with pytest.raises(ApiException) as e:
        custom_api.create_namespaced_custom_object(
            *args,
            {
                "apiVersion": "traefik.io/v1alpha1",
                "kind": "IngressRoute",
                "metadata": {"name": "bad"},
                "spec": {"routes": [{"kind": "Rool", "match": "x"}]},
            },
        )
    assert e.value.status == 422
    assert status_of(e)["details"]["causes"][0]["field"] == "spec.routes[0].kind"
    patched = custom_api.patch_namespaced_custom_object(*args, "r", {"metadata": {"labels": {"a": "b"}}})
    assert patched["metadata"]["labels"] == {"a": "b"}
    with pytest.raises(ApiException) as e:  # custom resources take no strategic merge patch
        custom_api.patch_namespaced_custom_object(
            *args,
            "r",
            {"metadata": {"labels": {"a": "c"}}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert e.value.status == 415


# -- concurrency ------------------------------------------------------------------------------
def test_concurrent_writes(fake_kube_server, core_api):
    errors = []

    def work(i):
        try:
            core_api.create_namespaced_secret(NS, {"metadata": {"name": f"s{i}"}})
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    versions = [int(s.metadata.resource_version) for s in core_api.list_namespaced_secret(NS).items]
    assert len(set(versions)) == 20
