"""The Kubernetes manifests, as plain dicts, validated against the official
schemas (Kubernetes 1.37 strict, Traefik v3.7 CRDs)."""

from __future__ import annotations

import dataclasses

import jsonschema
import kubernetes_validate
import pytest

from app.backends.base import AppSpec
from app.backends.kube_names import name_for
from app.backends.kube_objects import (
    app_path,
    auth_middleware,
    container_args,
    make_deployment,
    make_ingress_route,
    make_secret,
    make_service,
    route_rule,
)
from app.backends.kube_status import pod_status
from app.config_env import ConfigError
from app.kube_settings import KubeSettings
from app.slugs import object_name
from app.traefik_config import AUTH_COOKIE, AUTH_MIDDLEWARE, shared_routes
from app.views import gate
from tests.factories import make_spec
from tests.kube_schemas import validate

KUBE = KubeSettings.from_env(
    {
        "VIZ_HOST": "viz.example.org",
        "K8S_NAMESPACE": "dormouse-apps",
        "TRAEFIK_MIDDLEWARES": "dormouse-apps/viz-auth",
    },
    required=True,
)
UID = "6a1c1b9e-51a0-4b3a-9f7d-1e6f9d7c0b11"
GATE = "http://dormouse.dormouse.svc.cluster.local:80/_auth/viz"


SPEC_FIELDS: dict[str, object] = {
    "source": "app.py",
    "callable": "server",
    "image": "ghcr.io/alice/wave:1.0",
    "port": 8050,
    "cpu": "250m",
    "memory": "256Mi",
    "env": {"API_KEY": "s3cret"},
    "deployment_id": 42,
}


def spec(framework="dash", **kw) -> AppSpec:
    return make_spec(framework, **{**SPEC_FIELDS, **kw})


def all_manifests(s: AppSpec, kube: KubeSettings = KUBE):
    name = name_for(s)
    return [
        make_deployment(s, name, kube, secret=name),
        make_secret(s, name, kube),
        make_service(s, name, kube, UID),
        make_ingress_route(s, name, kube, UID),
        auth_middleware(kube, GATE),
    ]


@pytest.mark.parametrize("framework", ["dash", "bokeh"])
def test_every_manifest_validates_against_the_official_schemas(framework):
    for manifest in all_manifests(spec(framework)):
        validate(manifest)


def test_older_traefik_group_and_scheduling_options_validate():
    kube = dataclasses.replace(
        KUBE,
        traefik_api="traefik.containo.us/v1alpha1",
        node_selector={"pool": "viz"},
        tolerations=({"key": "viz", "operator": "Exists", "effect": "NoSchedule"},),
        image_pull_secret="regcred",
    )
    manifests = all_manifests(spec(), kube)
    for manifest in manifests:
        validate(manifest)
    pod = manifests[0]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "viz"} and pod["tolerations"][0]["key"] == "viz"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert manifests[3]["apiVersion"] == manifests[4]["apiVersion"] == "traefik.containo.us/v1alpha1"


def test_the_validators_catch_mistakes():
    deployment = make_deployment(spec(), "x", KUBE, secret=None)
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    route = make_ingress_route(spec(), "x", KUBE, UID)
    del route["spec"]["routes"]
    with pytest.raises(jsonschema.ValidationError):
        validate(route)
    middleware = auth_middleware(KUBE, GATE)
    middleware["spec"]["forwardAuth"]["addAuthCookiesToResponse"] = AUTH_COOKIE
    with pytest.raises(jsonschema.ValidationError):
        validate(middleware)
    # a field the CRD does not know: the API server would drop it without a word
    middleware = auth_middleware(KUBE, GATE)
    middleware["spec"]["forwardAuth"]["addAuthCookieToResponse"] = [AUTH_COOKIE]
    with pytest.raises(jsonschema.ValidationError, match=r"\.spec\.forwardAuth\.addAuthCookieToResponse"):
        validate(middleware)


def test_deployment_dash():
    s = spec()
    d = make_deployment(s, "alice-wave-default-abc234", KUBE, secret="alice-wave-default-abc234")
    assert d["spec"]["replicas"] == 1
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/alice/wave:1.0"
    assert c["args"] == [
        "gunicorn",
        "--bind",
        "0.0.0.0:8050",
        "--workers",
        "2",
        "--threads",
        "4",
        "--access-logfile",
        "-",
        "app:server",
    ]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["DASH_ROUTES_PATHNAME_PREFIX"] == env["DASH_REQUESTS_PATHNAME_PREFIX"] == s.prefix
    assert "s3cret" not in str(d)  # secrets only through the Secret
    assert c["envFrom"] == [{"secretRef": {"name": "alice-wave-default-abc234"}}]
    assert c["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "64Mi"},
        "limits": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
    }
    assert c["readinessProbe"]["httpGet"] == {"path": s.prefix, "port": "http"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"] and not sc["privileged"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "dormouse"
    assert labels["dormouse.io/owner"] == "alice" and labels["dormouse.io/app"] == "wave"
    assert labels["dormouse.io/deployment-id"] == "42"
    assert set(d["spec"]["selector"]["matchLabels"].items()) <= set(labels.items())


@pytest.mark.parametrize("framework, command", [("dash", ""), ("bokeh", ""), ("dash", "python serve.py")])
def test_a_read_only_root_and_a_tmp_of_bounded_size(framework, command):
    """The one writable place is /tmp, an emptyDir no larger than the
    container's ephemeral-storage limit; temporary files and caches go there."""
    kube = dataclasses.replace(KUBE, ephemeral_storage="2Gi")
    d = make_deployment(spec(framework, command=command), "n", kube, secret=None)
    validate(d)
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}]
    assert c["resources"]["limits"]["ephemeral-storage"] == "2Gi"
    assert c["resources"]["requests"]["ephemeral-storage"] == "64Mi"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["TMPDIR"] == env["XDG_RUNTIME_DIR"] == "/tmp" and env["XDG_CACHE_HOME"].startswith("/tmp/")
    assert len(env) == len(c["env"])  # each variable once


@pytest.mark.parametrize("value", ["1Gi", "64Mi", "512Mi", "20Gi"])
def test_ephemeral_storage_setting(value):
    kube = KubeSettings.from_env({"VIZ_HOST": "v.example.org", "K8S_EPHEMERAL_STORAGE": value}, required=True)
    assert kube.ephemeral_storage == value
    assert KubeSettings.from_env({"VIZ_HOST": "v.example.org"}, required=True).ephemeral_storage == "1Gi"


@pytest.mark.parametrize("value", ["63Mi", "1G", "1.5Gi", "0Gi", "-1Gi", "1Gi; x", "lots"])
def test_ephemeral_storage_setting_refused(value):
    with pytest.raises(ConfigError, match="K8S_EPHEMERAL_STORAGE"):
        KubeSettings.from_env({"VIZ_HOST": "v.example.org", "K8S_EPHEMERAL_STORAGE": value}, required=True)


def test_deployment_bokeh_owns_prefix_and_origin():
    s = spec("bokeh", source="sliders/main.py", port=5006, env={})
    d = make_deployment(s, "n", KUBE, secret=None)
    (c,) = d["spec"]["template"]["spec"]["containers"]
    args = c["args"]
    assert args[:3] == ["bokeh", "serve", "sliders"]
    assert args[args.index("--prefix") + 1] == s.prefix
    assert args[args.index("--allow-websocket-origin") + 1] == "viz.example.org"
    assert "envFrom" not in c
    assert app_path(s) == s.prefix + "sliders"
    assert app_path(spec("bokeh", source="plot.py")) == s.prefix + "plot"


def test_command_override_is_an_argv_not_a_shell():
    s = spec(command="python -m myapp --port 8050 '; rm -rf /'")
    assert container_args(s, "viz.example.org") == ["python", "-m", "myapp", "--port", "8050", "; rm -rf /"]
    c = make_deployment(s, "n", KUBE, secret=None)["spec"]["template"]["spec"]["containers"][0]
    assert "command" in c and "args" not in c


def test_service_and_route_point_at_the_deployment():
    s = spec()
    name = name_for(s)
    svc = make_service(s, name, KUBE, UID)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    route = make_ingress_route(s, name, KUBE, UID)
    r = route["spec"]["routes"][0]
    assert r["match"] == "Host(`viz.example.org`) && PathPrefix(`/alice/wave/default-abc234/`)"
    assert r["services"] == [{"name": name, "port": 80}]
    assert r["middlewares"] == [{"name": AUTH_MIDDLEWARE}, {"name": "viz-auth"}]  # same namespace
    assert route["spec"]["entryPoints"] == ["websecure"]
    assert route["spec"]["tls"] == {"certResolver": "letsencrypt"}
    for manifest in (svc, route, make_secret(s, name, KUBE) | {"metadata": svc["metadata"]}):
        (ref,) = manifest["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "uid": UID,
            "controller": True,
        }


@pytest.mark.parametrize(
    "operator, after_the_gate",
    [
        ("", []),
        ("ratelimit", [{"name": "ratelimit"}]),
        # the apps' own namespace, spelled out, is the same reference
        ("dormouse-apps/viz-headers, ratelimit", [{"name": "viz-headers"}, {"name": "ratelimit"}]),
        # the gate named again would check (and spend) one entry token twice
        (f"{AUTH_MIDDLEWARE} dormouse-apps/{AUTH_MIDDLEWARE} ratelimit", [{"name": "ratelimit"}]),
    ],
)
def test_every_route_goes_through_the_gate_first(operator, after_the_gate):
    kube = KubeSettings.from_env(
        {"VIZ_HOST": "viz.example.org", "K8S_NAMESPACE": "dormouse-apps", "TRAEFIK_MIDDLEWARES": operator},
        required=True,
    )
    route = make_ingress_route(spec(), "n", kube, UID)
    validate(route)
    (r,) = route["spec"]["routes"]
    assert r["middlewares"] == [{"name": AUTH_MIDDLEWARE}, *after_the_gate]
    assert all("namespace" not in m for m in r["middlewares"])


@pytest.mark.parametrize(
    "operator, error",
    [
        # Traefik allows no cross-namespace reference (k8s/traefik/): refused at start,
        # not a route Traefik drops with a line in its log
        ("dormouse/viz-headers", "must be in K8S_NAMESPACE"),
        (f"elsewhere/{AUTH_MIDDLEWARE}", "must be in K8S_NAMESPACE"),
        ("ratelimit@file", "not a middleware name"),
        ("a/b/c", "not a middleware name"),
        ("/ratelimit", "not a middleware name"),
        ("Dormouse-Apps/x", "not a middleware name"),
    ],
)
def test_operator_middlewares_from_other_namespaces_are_refused(operator, error):
    env = {"VIZ_HOST": "viz.example.org", "K8S_NAMESPACE": "dormouse-apps", "TRAEFIK_MIDDLEWARES": operator}
    with pytest.raises(ConfigError, match=error):
        KubeSettings.from_env(env, required=True)


def test_the_gate_middleware_lives_in_the_apps_namespace():
    m = auth_middleware(KUBE, GATE)
    validate(m)
    assert m["kind"] == "Middleware" and m["apiVersion"] == KUBE.traefik_api
    assert m["metadata"]["name"] == AUTH_MIDDLEWARE and m["metadata"]["namespace"] == KUBE.namespace
    forward_auth = {"address": GATE, "trustForwardHeader": False, "addAuthCookiesToResponse": [AUTH_COOKIE],
                    "maxResponseBodySize": 4096}  # fmt: skip
    assert m["spec"] == {"forwardAuth": forward_auth}
    assert AUTH_COOKIE == gate.COOKIE  # the cookie Traefik copies is the one the gate sets


def test_both_providers_configure_the_gate_alike():
    """The local backend's file provider and the cluster's Middleware differ in
    the gate's address only."""
    local = shared_routes(auth_url="http://127.0.0.1:8000/_auth/viz", dormouse_url="http://127.0.0.1:8000")
    local_auth = local["http"]["middlewares"][AUTH_MIDDLEWARE]["forwardAuth"]
    kube_auth = auth_middleware(KUBE, GATE)["spec"]["forwardAuth"]
    assert {**local_auth, "address": None} == {**kube_auth, "address": None}


@pytest.mark.parametrize(
    "address",
    [
        "dormouse.dormouse.svc:80/_auth/viz",
        "ftp://dormouse.dormouse.svc/_auth/viz",
        "http://dormouse dormouse/_auth/viz",
        "http://dormouse.dormouse.svc:80",
        "http://dormouse.dormouse.svc/_auth/viz?x=1",
        "http://dormouse.dormouse.svc/_auth/viz#x",
    ],
)
def test_the_gate_address_is_an_http_url_with_a_path(address):
    with pytest.raises(ValueError):
        auth_middleware(KUBE, address)


@pytest.mark.parametrize(
    "host, prefix",
    [
        ("viz.example.org`) || Host(`evil", "/a/b/c/"),
        ("viz example.org", "/a/b/c/"),
        ("viz.example.org", "/a/b`)/c/"),
        ("viz.example.org", "/a/b (c)/d/"),
        ("viz.example.org", "/a/B/c/"),
    ],
)
def test_nothing_unsafe_reaches_a_traefik_rule(host, prefix):
    with pytest.raises(ValueError):
        route_rule(host, prefix)


def test_names_are_dns_labels_with_a_hash_when_long():
    assert object_name("alice", "wave", "default-abc234") == "alice-wave-default-abc234"
    long = object_name("o" * 40, "t" * 40, "default-abc234")
    assert len(long) == 63 and long.endswith("-default-abc234")
    assert long != object_name("o" * 40, "t" * 39 + "x", "default-abc234")
    assert object_name("o" * 40, "t" * 40, "default-abc234") == long  # stable
    # the natural concatenation cannot collide: the public name is unique
    assert object_name("alice-b", "x", "default-aaaaaa") != object_name("alice", "b-x", "default-bbbbbb")


def pod(phase="Pending", conditions=(), containers=()):
    return {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": "img:1"}]},
        "status": {"phase": phase, "conditions": list(conditions), "containerStatuses": list(containers)},
    }


def waiting(reason, message="", restarts=0, last=None):
    cs = {
        "name": "app",
        "image": "img:1",
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
    }
    if last:
        cs["lastState"] = {"terminated": last}
    return cs


SCHEDULED = {"type": "PodScheduled", "status": "True"}


@pytest.mark.parametrize(
    "p, events, state, text",
    [
        (pod(), [], "starting", "Waiting for a node"),
        (
            pod(
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient memory.",
                    }
                ]
            ),
            [],
            "failed",
            "Insufficient memory",
        ),
        (pod(conditions=[SCHEDULED], containers=[waiting("ContainerCreating")]), [], "starting", "Scheduled"),
        (
            pod(conditions=[SCHEDULED], containers=[waiting("ContainerCreating")]),
            [{"reason": "Pulling", "lastTimestamp": "2026-01-01T00:00:01Z"}],
            "starting",
            "Pulling the image img:1",
        ),
        (
            pod(conditions=[SCHEDULED], containers=[waiting("ContainerCreating")]),
            [
                {"reason": "Pulling", "lastTimestamp": "2026-01-01T00:00:01Z"},
                {"reason": "Pulled", "lastTimestamp": "2026-01-01T00:00:05Z"},
            ],
            "starting",
            "Image ready",
        ),
        (
            pod(conditions=[SCHEDULED], containers=[waiting("ImagePullBackOff", "Back-off pulling image")]),
            [],
            "failed",
            "could not be pulled (ImagePullBackOff)",
        ),
        (
            pod(conditions=[SCHEDULED], containers=[waiting("ErrImagePull", "not found")]),
            [],
            "failed",
            "could not be pulled (ErrImagePull)",
        ),
        (
            pod(
                conditions=[SCHEDULED],
                containers=[
                    waiting("CrashLoopBackOff", "back-off 10s", 3, {"exitCode": 1, "reason": "Error"})
                ],
            ),
            [],
            "failed",
            "keeps crashing on start (restarted 3 times). Last exit code 1",
        ),
        (
            pod(
                conditions=[SCHEDULED],
                containers=[
                    waiting(
                        "CreateContainerConfigError", "container has runAsNonRoot and image will run as root"
                    )
                ],
            ),
            [],
            "failed",
            "runAsNonRoot",
        ),
        (
            pod("Running", [SCHEDULED], [{"name": "app", "ready": False, "state": {"running": {}}}]),
            [],
            "starting",
            "waiting for it to answer",
        ),
        (
            pod(
                "Running",
                [SCHEDULED, {"type": "Ready", "status": "True"}],
                [{"name": "app", "ready": True, "state": {"running": {}}}],
            ),
            [],
            "running",
            "Ready",
        ),
    ],
)
def test_pod_status(p, events, state, text):
    result = pod_status(p, events)
    assert result.state == state
    assert text in (result.reason if state == "failed" else result.phase)
