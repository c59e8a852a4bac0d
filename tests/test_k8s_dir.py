"""Every object in k8s/ validates against the official schemas, the
kustomizations only name files that exist, and the pieces agree: the apps'
forwardAuth Middleware reaches Dormouse's gate through Dormouse's Service, and
the guard rails around the apps' namespace (NetworkPolicies, ResourceQuota,
LimitRange) fit what Dormouse makes there and the caps it is configured with."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes.utils import parse_quantity

from app import lifecycle, tokens, traefik_config
from app.backends.base import AppSpec
from app.backends.kube_names import labels_for, name_for
from app.backends.kube_objects import PORT_NAME, auth_middleware, make_deployment
from app.kube_settings import KubeSettings
from app.traefik_config import AUTH_MIDDLEWARE
from app.views.gate import COOKIE, TOKEN_PARAM
from tests.factories import make_settings, make_spec
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
    entries = k.get("resources", []) + k.get("components", []) + [p["path"] for p in k.get("patches", [])]
    for entry in entries:
        assert (path.parent / entry).exists(), entry


def test_the_optional_component_is_one_line_away_in_the_example_overlay():
    component = yaml.safe_load((K8S / "components" / "internet-egress" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    overlay = K8S / "overlays" / "example" / "kustomization.yaml"
    commented = [
        line.lstrip("# ").strip() for line in overlay.read_text().splitlines() if line.startswith("#")
    ]
    assert "components:" in commented and "- ../../components/internet-egress" in commented
    assert "components" not in yaml.safe_load(overlay.read_text())  # off unless the operator opts in


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


# --- the guard rails around the apps' namespace ---------------------------------

TRAEFIK_NAMESPACE = "traefik"  # where the README's helm command installs it


def docs(relative: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / relative).read_text()) if d]


def base_config() -> KubeSettings:
    return KubeSettings.from_env(load("base/configmap.yaml", "ConfigMap")["data"], required=True)


def app_spec(framework: str = "dash", **fields) -> AppSpec:
    return make_spec(framework, image="ghcr.io/alice/wave:1.0", **fields)


def test_the_guard_rails_are_in_the_base_and_in_the_apps_namespace():
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    namespace = base_config().namespace
    for relative in ("apps-networkpolicy.yaml", "apps-quota.yaml", "apps-limitrange.yaml"):
        assert relative in base["resources"]
        for doc in docs(f"base/{relative}"):
            assert doc["metadata"]["namespace"] == namespace
    for doc in docs("components/internet-egress/networkpolicy.yaml"):
        assert doc["metadata"]["namespace"] == namespace


def policies(*relatives: str) -> list[dict]:
    return [d for r in relatives for d in docs(r) if d["kind"] == "NetworkPolicy"]


def selects(selector: dict, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # no matchExpressions here
    return selector.get("matchLabels", {}).items() <= labels.items()


def app_pod_labels() -> dict[str, str]:
    s = app_spec()
    return labels_for(s, name_for(s))


def peer_allows(peer: dict, address: str | None = None, namespace: str | None = None,
                labels: dict[str, str] | None = None) -> bool:  # fmt: skip
    """Does one ``from``/``to`` entry admit this peer (an address outside the
    cluster, or a pod with ``labels`` in ``namespace``)?"""
    if "ipBlock" in peer:
        if address is None:
            return False  # pods are matched by selectors (ipBlocks here leave pod ranges out)
        ip = ipaddress.ip_address(address)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if address is not None:
        return False
    ns_ok = selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}) if (
        "namespaceSelector" in peer) else namespace == "dormouse-apps"  # fmt: skip
    return ns_ok and selects(peer.get("podSelector", {}), labels or {})


def allowed(direction: str, pols: list[dict], port: int | str, protocol: str = "TCP", **peer) -> bool:
    """Is this connection to (egress) or from (ingress) an app pod allowed, by
    the rules of NetworkPolicy: no policy selecting the pod for a direction
    allows all; otherwise some rule must admit the peer and the port."""
    key, peers_key = {"egress": ("Egress", "to"), "ingress": ("Ingress", "from")}[direction]
    pod = app_pod_labels()
    mine = [p for p in pols if key in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod)]
    assert mine, f"no {key} policy selects the apps' pods"
    for pol in mine:
        for rule in pol["spec"].get(direction, []):
            ports = rule.get("ports")
            port_ok = ports is None or any(
                p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports
            )
            peers = rule.get(peers_key)
            if port_ok and (peers is None or any(peer_allows(x, **peer) for x in peers)):
                return True
    return False


TRAEFIK_POD = {"namespace": TRAEFIK_NAMESPACE, "labels": {"app.kubernetes.io/name": "traefik"}}
DORMOUSE_POD = {"namespace": "dormouse", "labels": {"app.kubernetes.io/name": "dormouse"}}
DNS_POD = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}
CLOSED = [
    "169.254.169.254", "100.100.100.200", "fd00:ec2::254", "10.96.0.1", "172.20.0.1", "192.168.1.10",
    "127.0.0.1", "::1", "fe80::1",
]  # fmt: skip
PUBLIC = ["1.1.1.1", "2606:4700:4700::1111"]


def test_only_traefik_reaches_an_app_and_only_its_port():
    base = policies("base/apps-networkpolicy.yaml")
    (deny,) = [p for p in base if p["spec"]["podSelector"] == {}]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}  # no rule: default deny
    with_egress = base + policies("components/internet-egress/networkpolicy.yaml")
    for pols in (base, with_egress):
        assert allowed("ingress", pols, PORT_NAME, **TRAEFIK_POD)
        # the port is the container's by name: whatever number the app listens on
        assert not allowed("ingress", pols, 9090, **TRAEFIK_POD)
        assert not allowed("ingress", pols, PORT_NAME, protocol="UDP", **TRAEFIK_POD)
        for other in (DORMOUSE_POD, {"namespace": "dormouse-apps", "labels": app_pod_labels()},
                      {"namespace": TRAEFIK_NAMESPACE, "labels": {"app": "other"}},
                      {"namespace": "default", "labels": {"app.kubernetes.io/name": "traefik"}}):  # fmt: skip
            assert not allowed("ingress", pols, PORT_NAME, **other), other
        assert not allowed("ingress", pols, PORT_NAME, address="203.0.113.7")


def test_the_container_port_the_policy_names_is_dormouses():
    d = make_deployment(app_spec("bokeh", port=5006), "n", base_config(), secret=None)
    (c,) = d["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in c["ports"]] == [PORT_NAME]
    assert selects(policies("base/apps-networkpolicy.yaml")[1]["spec"]["podSelector"],
                   d["spec"]["template"]["metadata"]["labels"])  # fmt: skip


def test_apps_reach_nothing_by_default():
    base = policies("base/apps-networkpolicy.yaml")
    for address in CLOSED + PUBLIC:
        assert not allowed("egress", base, 443, address=address), address
    for pod in (DORMOUSE_POD, DNS_POD, TRAEFIK_POD):
        assert not allowed("egress", base, 53, protocol="UDP", **pod), pod
        assert not allowed("egress", base, 8000, **pod), pod


def test_internet_egress_opens_public_addresses_and_dns_only():
    pols = policies("base/apps-networkpolicy.yaml", "components/internet-egress/networkpolicy.yaml")
    for address in PUBLIC:
        assert allowed("egress", pols, 443, address=address)
    # the metadata addresses, the cluster's pod/Service ranges (the API server's
    # in-cluster address among them), node networks, loopback, link-local
    for address in CLOSED:
        assert not allowed("egress", pols, 80, address=address), address
    assert allowed("egress", pols, 53, protocol="UDP", **DNS_POD)
    assert not allowed("egress", pols, 443, **DNS_POD)
    assert not allowed("egress", pols, 8000, **DORMOUSE_POD)
    assert not allowed("egress", pols, PORT_NAME, namespace="dormouse-apps", labels=app_pod_labels())


def quantity(value) -> float:
    return float(parse_quantity(value))


def test_the_limit_range_allows_exactly_what_publishing_does(tmp_path):
    settings = make_settings(tmp_path)
    (limits,) = load("base/apps-limitrange.yaml", "LimitRange")["spec"]["limits"]
    assert limits["type"] == "Container"
    assert quantity(limits["max"]["cpu"]) == settings.max_cpu_millicores / 1000
    assert quantity(limits["max"]["memory"]) == settings.max_memory_mib * 2**20
    assert quantity(limits["max"]["ephemeral-storage"]) == quantity(base_config().ephemeral_storage)
    # the fill-ins are an app's own defaults, within the maxima
    defaults = {f.name: f.default for f in dataclasses.fields(AppSpec)}
    for fill_in in (limits["default"], limits["defaultRequest"]):
        assert quantity(fill_in["cpu"]) == quantity(defaults["cpu"])
        assert quantity(fill_in["memory"]) == quantity(defaults["memory"])
        for resource, value in fill_in.items():
            assert quantity(value) <= quantity(limits["max"][resource])


def test_an_app_at_the_maxima_fits_the_limit_range_and_the_quota(tmp_path):
    settings = make_settings(tmp_path)
    kube = base_config()
    largest = app_spec(cpu=f"{settings.max_cpu_millicores}m", memory=f"{settings.max_memory_mib}Mi")
    d = make_deployment(largest, name_for(largest), kube, secret=None)
    validate(d)
    (c,) = d["spec"]["template"]["spec"]["containers"]
    (limits,) = load("base/apps-limitrange.yaml", "LimitRange")["spec"]["limits"]
    hard = load("base/apps-quota.yaml", "ResourceQuota")["spec"]["hard"]
    for resource, value in c["resources"]["limits"].items():
        assert quantity(value) <= quantity(limits["max"][resource]), resource
        assert quantity(value) <= quantity(hard[f"limits.{resource}"]), resource
    for resource, value in c["resources"]["requests"].items():
        assert quantity(value) <= quantity(c["resources"]["limits"][resource])
        assert quantity(value) <= quantity(hard[f"requests.{resource}"]), resource
    # the quota names every resource the pods declare, so none is left unbounded
    assert {f"{kind}.{r}" for kind in ("requests", "limits") for r in c["resources"]["limits"]} <= set(hard)


def test_the_quota_is_the_caps_times_the_maxima(tmp_path):
    settings = make_settings(tmp_path)
    kube = base_config()
    hard = {k: quantity(v) for k, v in load("base/apps-quota.yaml", "ResourceQuota")["spec"]["hard"].items()}
    live = hard["pods"]
    assert live == settings.max_live_deployments  # MAX_LIVE_DEPLOYMENTS's default
    assert hard["requests.cpu"] == hard["limits.cpu"] == live * settings.max_cpu_millicores / 1000
    assert hard["requests.memory"] == hard["limits.memory"] == live * settings.max_memory_mib * 2**20
    assert hard["limits.ephemeral-storage"] == live * quantity(kube.ephemeral_storage)
    (c,) = make_deployment(app_spec(), "n", kube, secret=None)["spec"]["template"]["spec"]["containers"]
    assert hard["requests.ephemeral-storage"] == live * quantity(
        c["resources"]["requests"]["ephemeral-storage"]
    )
    # Dormouse's objects, with room for those of stopped apps still being collected
    for objects in ("count/deployments.apps", "services", "count/ingressroutes.traefik.io", "secrets"):
        assert hard[objects] >= 2 * live, objects
    # and nothing Dormouse never makes
    assert hard["services.loadbalancers"] == hard["services.nodeports"] == hard["persistentvolumeclaims"] == 0


def test_traefik_drops_aliasing_header_names_and_refuses_encoded_characters_on_every_entry_point():
    """The same entry-point hardening as the front door's (app/traefik_config.py)."""
    refused = traefik_config.refused_encoded_characters()
    static = yaml.safe_load((K8S / "traefik" / "traefik.yml").read_text())
    for name, entry_point in static["entryPoints"].items():
        assert entry_point["http"]["aliasHeadersStrategy"] == "delete", name
        assert entry_point["http"]["encodedCharacters"] == refused, name
    values = yaml.safe_load((K8S / "traefik" / "values.yaml").read_text())
    arguments = values["additionalArguments"]
    for name in values["ports"]:
        assert f"--entryPoints.{name}.http.aliasHeadersStrategy=delete" in arguments, name
        for option, value in refused.items():
            assert f"--entryPoints.{name}.http.encodedCharacters.{option}={str(value).lower()}" in arguments


def test_traefik_allows_no_cross_namespace_reference():
    for name in ("values.yaml", "traefik.yml"):
        crd = yaml.safe_load((K8S / "traefik" / name).read_text())["providers"]["kubernetesCRD"]
        assert crd["allowCrossNamespace"] is False, name
    assert f"-n {TRAEFIK_NAMESPACE} " in (K8S / "traefik" / "values.yaml").read_text()
    # what Dormouse names from its routes is in the routes' namespace
    kube = base_config()
    assert load("base/auth-middleware.yaml", "Middleware")["metadata"]["namespace"] == kube.namespace
