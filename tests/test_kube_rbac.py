"""The Role in k8s/base/rbac.yaml is sufficient and minimal.

A real kube-apiserver runs with --authorization-mode=RBAC; the Role and
RoleBinding from k8s/ are applied as they ship, and the whole lifecycle runs
as the ServiceAccount dormouse/dormouse: start, ready, its log, idle stop, a
failed start, a create that fails halfway (its cleanup), and reconcile. Sufficient:
it all works. Minimal: every verb on every resource the Role grants was used
(so taking any one away breaks a path of the lifecycle).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from app import lifecycle, sweep
from app.backends.base import BackendError
from app.extensions import db
from app.idle import IdleLimits
from app.models import Deployment, utcnow
from tests import kubelet
from tests.factories import CSRFClient, build_app, make_app, make_settings, make_spec, make_user
from tests.kube_tiers import Tier
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)
RBAC = Path(__file__).resolve().parent.parent / "k8s" / "base" / "rbac.yaml"
APPS_NS = "dormouse-apps"
HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}
PATH_RE = re.compile(
    r"^/apis?/(?:(?P<group>[^/]+)/)?(?:v1|v1alpha1)/namespaces/[^/]+/(?P<res>[^/]+)"
    r"(?:(?P<item>/[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
VERBS = {"POST": "create", "DELETE": "delete", "PATCH": "patch"}


@pytest.fixture(scope="module")
def rbac_cluster(tmp_path_factory):
    from tests.kube_real import RealCluster

    cluster = RealCluster.start(tmp_path_factory.mktemp("kube-rbac"), rbac=True)
    namespaces = ("dormouse", APPS_NS)
    try:
        cluster.install_crds()
        try:
            for ns in namespaces:
                cluster.create_namespace(ns)
            rbac = client.RbacAuthorizationV1Api(cluster.api_client())
            for doc in yaml.safe_load_all(RBAC.read_text()):
                create = (
                    rbac.create_namespaced_role
                    if doc["kind"] == "Role"
                    else rbac.create_namespaced_role_binding
                )
                create(doc["metadata"]["namespace"], doc, _request_timeout=10)
            yield cluster
        finally:
            for ns in namespaces:
                cluster.delete_namespace(ns)
    finally:
        cluster.stop()


def granted() -> set[tuple[str, str, str]]:
    role = next(d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "Role")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def used(entries) -> set[tuple[str, str, str]]:
    found = set()
    for method, path in entries:
        m = PATH_RE.match(path)
        assert m, path
        group = m["group"] if path.startswith("/apis/") else ""
        verb = VERBS.get(method) or ("get" if m["item"] else "list")
        resource = f"{m['res']}/{m['sub']}" if m["sub"] else m["res"]  # "pods/log"
        found.add((group, resource, verb))
    return found


def test_lifecycle_as_the_service_account_uses_exactly_the_role(rbac_cluster, tmp_path, monkeypatch):
    tier = Tier("real", str(rbac_cluster.kubeconfig), APPS_NS, rbac_cluster.api_client())
    backend, log = tier.backend(kubeconfig=str(rbac_cluster.sa_kubeconfig))
    app = build_app(make_settings(tmp_path, BACKEND="kubernetes", VIZ_HOST="viz.test", K8S_NAMESPACE=APPS_NS))
    app.test_client_class = CSRFClient
    app.extensions["dormouse.backend"] = backend
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)
    with app.app_context():
        alice = make_user("alice")
        make_app(alice, "wave", image="ghcr.io/alice/wave:1.0", env="API_KEY=k")
        make_app(alice, "broken", image="ghcr.io/alice/broken:1.0")
        web = app.test_client()

        # start -> pulling -> ready -> running -> idle stop
        web.post("/alice/wave/viz/start", headers=HX)
        dep = db.session.scalar(db.select(Deployment).order_by(Deployment.id.desc()))
        assert dep.status == "starting", dep.status_reason
        name = json.loads(dep.backend_ref)["name"]
        pod = kubelet.wait_for_pod(tier.core, APPS_NS, f"app.kubernetes.io/instance={name}")
        kubelet.make_pulling(tier.core, APPS_NS, pod.metadata.name)
        kubelet.emit_event(tier.core, APPS_NS, pod, "Pulling", "Pulling image")
        wait_for(
            lambda: "Pulling" in web.get("/alice/wave/viz/status", headers=JSON).get_json()["phase"],
            10,
            "the pulling phase",
        )
        kubelet.make_ready(tier.core, APPS_NS, pod.metadata.name)
        wait_for(
            lambda: web.get("/alice/wave/viz/status", headers=JSON).get_json()["status"] == "running",
            10,
            "running",
        )
        # its output (pods/log get): authorized, so no BackendError; this API
        # server has no kubelet and the pod no node, so the log is empty
        assert backend.logs(dep.backend_ref, 4096) == ""
        report = sweep.sweep(
            now=utcnow() + timedelta(seconds=5),
            lim=IdleLimits(load_timeout=1, ping_timeout=1, start_timeout=300),
        )
        assert len(report.stopped) == 1 and report.errors == 0

        # a start that fails (crash loop): reported and removed
        web.post("/alice/broken/viz/start", headers=HX)
        broken = db.session.scalar(db.select(Deployment).order_by(Deployment.id.desc()))
        bname = json.loads(broken.backend_ref)["name"]
        bpod = kubelet.wait_for_pod(tier.core, APPS_NS, f"app.kubernetes.io/instance={bname}")
        kubelet.make_waiting(tier.core, APPS_NS, bpod.metadata.name, "CrashLoopBackOff", "back-off")
        wait_for(
            lambda: web.get("/alice/broken/viz/status", headers=JSON).get_json()["status"] == "failed",
            10,
            "failed",
        )

        # a create that fails halfway cleans up after itself (here: a Traefik
        # API group the Role does not grant)
        halfway, halfway_log = tier.backend(
            kubeconfig=str(rbac_cluster.sa_kubeconfig), TRAEFIK_API="traefik.containo.us/v1alpha1"
        )
        with pytest.raises(BackendError):
            halfway.create(
                make_spec(title="half", public_name="default-hhhhhh", image="img:1", env={"A": "1"})
            )

        # a create repeated (a retry after a timeout) adopts every object: 409 -> get
        again = make_spec(title="again", public_name="default-aaaaaa", image="img:1", env={"A": "1"})
        assert backend.create(again) == backend.create(again)
        backend.stop(backend.create(again))

        # reconcile: lists, and finds nothing left over
        assert sweep.reconcile().errors == 0
        db.session.remove()
        db.engine.dispose()

    entries = log.entries + [e for e in halfway_log.entries if "traefik.containo.us" not in e[1]]
    assert used(entries) == granted()
    assert not any(tier.apps.list_namespaced_deployment(APPS_NS, _request_timeout=10).items)
