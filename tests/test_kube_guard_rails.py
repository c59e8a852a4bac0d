"""The guard rails k8s/ puts around the apps' namespace, on the real API server
(kube-apiserver 1.20, tests/kube_real.py): the NetworkPolicies (the base's and
the optional internet-egress component's), the ResourceQuota and the
LimitRange are created from the files as shipped (in a namespace of the
test's own) and read back unchanged; the LimitRanger and ResourceQuota
admission plugins then hold pods to them, and an app Dormouse makes at the
maxima is still admitted.

No network plugin runs here, so the policies are stored, not enforced; what
they allow is checked on paper in tests/test_k8s_dir.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity

from app.backends.kube import KubeBackend
from app.backends.kube_names import name_for
from app.kube_settings import KubeSettings
from tests import kubelet
from tests.factories import make_settings, make_spec
from tests.kube_real import RealCluster
from tests.kube_tiers import new_namespace_name
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(180)

T = kubelet.REQUEST_TIMEOUT
K8S = Path(__file__).resolve().parent.parent / "k8s"
GUARD_RAILS = [
    "base/apps-networkpolicy.yaml",
    "base/apps-quota.yaml",
    "base/apps-limitrange.yaml",
    "components/internet-egress/networkpolicy.yaml",
]


def shipped() -> list[dict[str, Any]]:
    return [d for f in GUARD_RAILS for d in yaml.safe_load_all((K8S / f).read_text()) if d]


def raw(call, *args, **kwargs) -> dict[str, Any]:
    """Call with the raw answer (1.20's need not fit client 37's models)."""
    resp = call(*args, _request_timeout=T, _preload_content=False, **kwargs)
    try:
        return json.loads(resp.data)
    finally:
        resp.release_conn()


class Api:
    def __init__(self, admin: client.ApiClient) -> None:
        self.core = client.CoreV1Api(admin)
        self.net = client.NetworkingV1Api(admin)

    def create(self, ns: str, doc: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(doc)
        body["metadata"]["namespace"] = ns
        create = {
            "NetworkPolicy": self.net.create_namespaced_network_policy,
            "ResourceQuota": self.core.create_namespaced_resource_quota,
            "LimitRange": self.core.create_namespaced_limit_range,
        }[doc["kind"]]
        return raw(create, ns, body)

    def read(self, ns: str, kind: str, name: str) -> dict[str, Any]:
        read = {
            "NetworkPolicy": self.net.read_namespaced_network_policy,
            "ResourceQuota": self.core.read_namespaced_resource_quota,
            "LimitRange": self.core.read_namespaced_limit_range,
        }[kind]
        return raw(read, name, ns)


@pytest.fixture
def guarded(real_cluster: RealCluster) -> Iterator[tuple[str, Api]]:
    """A namespace of the test's own with every guard rail in it, the quota
    counted; deleted afterwards."""
    ns = new_namespace_name()
    api = Api(real_cluster.api_client())
    try:
        real_cluster.create_namespace(ns)
        for doc in shipped():
            if doc["kind"] != "ResourceQuota":
                api.create(ns, doc)
        wait_for(lambda: counted_quota(api, ns), 120, "a ResourceQuota counting every resource it names")
        yield ns, api
    finally:
        real_cluster.delete_namespace(ns)


def counted_quota(api: Api, ns: str) -> bool:
    """Make the quota and wait a little for the quota controller to count each
    resource it names; if one stays uncounted, delete it and say so.

    Until then the ResourceQuota admission refuses creates of that resource
    ("status unknown for quota"). The controller learns of a custom resource
    (IngressRoutes) up to 30 s after its CRD appears, and a quota made before
    that counts it only at the next full resync (5 minutes): made again, it is
    counted at once. (On a real cluster Traefik's CRDs come long before k8s/.)"""
    (quota,) = [d for d in shipped() if d["kind"] == "ResourceQuota"]
    name = quota["metadata"]["name"]
    api.create(ns, quota)

    def counted() -> bool:
        status = api.read(ns, "ResourceQuota", name).get("status") or {}
        return set(status.get("used") or {}) == set(quota["spec"]["hard"])

    try:
        wait_for(counted, 10, "the quota controller to count the namespace")
        return True
    except AssertionError:
        raw(api.core.delete_namespaced_resource_quota, name, ns)
        return False


def quantities(resources: dict[str, str]) -> dict[str, Any]:
    return {k: parse_quantity(v) for k, v in resources.items()}


def test_the_api_server_keeps_the_guard_rails_as_shipped(guarded):
    ns, api = guarded
    for doc in shipped():
        kept = api.read(ns, doc["kind"], doc["metadata"]["name"])
        assert kept["metadata"]["namespace"] == ns
        if doc["kind"] == "NetworkPolicy":
            assert kept["spec"] == doc["spec"]  # nothing dropped, nothing defaulted
        elif doc["kind"] == "ResourceQuota":
            assert quantities(kept["spec"]["hard"]) == quantities(doc["spec"]["hard"])
        else:
            (kept_limits,) = kept["spec"]["limits"]
            (limits,) = doc["spec"]["limits"]
            assert kept_limits["type"] == limits["type"]
            for field in ("max", "default", "defaultRequest"):
                assert quantities(kept_limits[field]) == quantities(limits[field]), field


def doc_hard() -> dict[str, str]:
    (quota,) = [d for d in shipped() if d["kind"] == "ResourceQuota"]
    return quota["spec"]["hard"]


def pod(name: str, resources: dict[str, Any] | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "example/app:1"}
    if resources is not None:
        container["resources"] = resources
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


def refusal(core: client.CoreV1Api, ns: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as exc:
        raw(core.create_namespaced_pod, ns, body)
    assert exc.value.status == 403, exc.value.body
    return json.loads(exc.value.body)["message"]


def test_an_app_at_the_maxima_is_admitted_and_more_is_refused(guarded, real_cluster, tmp_path):
    ns, api = guarded
    settings = make_settings(tmp_path)
    kube = KubeSettings.from_env({"VIZ_HOST": "viz.test", "K8S_NAMESPACE": ns}, required=True)
    backend = KubeBackend(kube, api_client=real_cluster.api_client())
    largest = make_spec(
        image="ghcr.io/alice/wave:1.0",
        cpu=f"{settings.max_cpu_millicores}m",
        memory=f"{settings.max_memory_mib}Mi",
        env={"API_KEY": "x"},
    )
    backend.create(largest)  # Secret, Deployment, Service, IngressRoute: all within the quota
    name = name_for(largest)
    # the ReplicaSet's pod passed the LimitRanger and the ResourceQuota as Dormouse made it
    made = kubelet.wait_for_pod(api.core, ns, f"app.kubernetes.io/instance={name}")
    (c,) = made.spec.containers
    assert quantities(c.resources.limits) == quantities(
        {"cpu": largest.cpu, "memory": largest.memory, "ephemeral-storage": kube.ephemeral_storage}
    )
    assert c.security_context.read_only_root_filesystem is True

    def used(resource: str) -> int:
        status = api.read(ns, "ResourceQuota", "dormouse-apps").get("status") or {}
        return int(parse_quantity((status.get("used") or {}).get(resource, "0")))

    for resource in ("pods", "count/deployments.apps", "services", "count/ingressroutes.traefik.io"):
        wait_for(lambda r=resource: used(r) == 1, 30, f"the quota to count one {resource}")
    assert used("limits.cpu") == settings.max_cpu_millicores // 1000

    # a container past the maxima is refused by the LimitRange
    over = {"cpu": f"{settings.max_cpu_millicores + 1}m", "memory": "64Mi", "ephemeral-storage": "64Mi"}
    assert "maximum cpu usage per Container" in refusal(api.core, ns, pod("too-big", {"limits": over}))
    # a container that names nothing gets the LimitRange's fill-ins, within the quota
    filled = raw(api.core.create_namespaced_pod, ns, pod("plain", None))["spec"]["containers"][0]["resources"]
    (limits,) = [d for d in shipped() if d["kind"] == "LimitRange"][0]["spec"]["limits"]
    assert quantities(filled["limits"]) == quantities(limits["default"])
    assert quantities(filled["requests"]) == quantities(limits["defaultRequest"])


def test_the_pod_count_is_a_hard_ceiling(guarded):
    """However pods come to the namespace, no more than the quota's run."""
    ns, api = guarded
    hard = int(parse_quantity(doc_hard()["pods"]))
    small = {"limits": {"cpu": "10m", "memory": "16Mi", "ephemeral-storage": "64Mi"}}
    for i in range(hard):
        raw(api.core.create_namespaced_pod, ns, pod(f"p{i}", small))
    assert "exceeded quota" in refusal(api.core, ns, pod("one-more", small))
