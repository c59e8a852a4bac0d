"""Every object in k8s/ validates against the official schemas, the
kustomizations only name files that exist, and the pieces agree: the apps'
forwardAuth Middleware reaches Dormouse's gate through Dormouse's Service."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from app import lifecycle, tokens
from app.backends.kube_objects import auth_middleware
from app.kube_settings import KubeSettings
from app.traefik_config import AUTH_MIDDLEWARE
from app.views.gate import COOKIE, TOKEN_PARAM
from tests.kube_schemas import validate

K8S = Path(__file__).resolve().parent.parent / "k8s"
NOT_OBJECTS = {"kustomization.yaml"}
OBJECT_FILES = sorted(
    p for p in K8S.rglob("*.yaml") if p.name not in NOT_OBJECTS and p.parent.name != "traefik"
)


@pytest.mark.parametrize("path", OBJECT_FILES, ids=lambda p: str(p.relative_to(K8S)))
def test_objects_validate(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize(
    "path", sorted(K8S.rglob("kustomization.yaml")), ids=lambda p: str(p.relative_to(K8S))
)
def test_kustomizations_name_existing_files(path):
    k = yaml.safe_load(path.read_text())
    for entry in k.get("resources", []) + [p["path"] for p in k.get("patches", [])]:
        assert (path.parent / entry).exists(), entry


def test_role_is_limited_to_the_apps_namespace():
    role = next(
        d for d in yaml.safe_load_all((K8S / "base" / "rbac.yaml").read_text()) if d["kind"] == "Role"
    )
    assert role["metadata"]["namespace"] == "dormouse-apps"
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]


def load(relative: str, kind: str) -> dict:
    (doc,) = [d for d in yaml.safe_load_all((K8S / relative).read_text()) if d and d["kind"] == kind]
    return doc


def test_the_gate_middleware_is_in_the_apps_namespace_and_points_at_dormouse():
    middleware = load("base/auth-middleware.yaml", "Middleware")
    service = load("base/service.yaml", "Service")
    config = load("base/configmap.yaml", "ConfigMap")["data"]
    kube = KubeSettings.from_env(config, required=True)
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert "auth-middleware.yaml" in base["resources"]
    # exactly what the code would make, in the namespace the apps' routes are in
    address = middleware["spec"]["forwardAuth"]["address"]
    assert middleware == auth_middleware(kube, address)
    assert middleware["metadata"]["namespace"] == kube.namespace
    assert middleware["metadata"]["name"] == AUTH_MIDDLEWARE
    assert middleware["spec"]["forwardAuth"]["addAuthCookiesToResponse"] == [COOKIE]
    # the address is Dormouse's Service, by its cluster DNS name and port
    url = urlsplit(address)
    meta = service["metadata"]
    assert url.scheme == "http" and url.hostname == f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
    assert (url.port or 80) in [p["port"] for p in service["spec"]["ports"]]
    assert meta["namespace"] != kube.namespace  # Dormouse itself does not run among the apps


def test_dormouses_service_reaches_its_web_pods():
    service = load("base/service.yaml", "Service")
    deployment = load("base/deployment.yaml", "Deployment")
    template = deployment["spec"]["template"]
    assert service["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    container_ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports


def test_the_gate_answers_at_the_middlewares_address(app, wave, fake_backend):
    """Traefik's request as the Middleware makes it (the Service's host name,
    the gate's path, the app request in X-Forwarded-Uri) reaches the gate, and
    the cookie it sets is the one Traefik is told to copy to the browser."""
    forward_auth = load("base/auth-middleware.yaml", "Middleware")["spec"]["forwardAuth"]
    address = urlsplit(forward_auth["address"])
    dep = lifecycle.ensure_deployment(wave)
    fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    entry = tokens.issue(app.config["DORMOUSE"].jwt_keys, public_name=dep.public_name, subject="anonymous",
                         kind=tokens.ENTRY, ttl=60)  # fmt: skip
    client = app.test_client(use_cookies=False)
    base_url = f"{address.scheme}://{address.netloc}"
    prefix = f"/alice/wave/{dep.public_name}/"
    refused = client.get(address.path, base_url=base_url, headers={"X-Forwarded-Uri": prefix})
    assert refused.status_code == 401
    answer = client.get(
        address.path, base_url=base_url,
        headers={"X-Forwarded-Uri": f"{prefix}?{TOKEN_PARAM}={entry}", "X-Forwarded-Proto": "https"},
    )  # fmt: skip
    assert answer.status_code == 200
    cookies = [h.split("=", 1)[0] for h in answer.headers.getlist("Set-Cookie")]
    assert cookies == forward_auth["addAuthCookiesToResponse"]
