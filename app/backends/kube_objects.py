"""Kubernetes manifests for one viz deployment, as pure functions.

Each builder takes the app spec plus the few cluster settings it needs and
returns a plain dict, ready for the ``kubernetes`` client; nothing here does
I/O. The builders apply each framework's details, asked of its entry in
:mod:`app.backends.frameworks` (Dash's prefix variables, Bokeh's ``--prefix``
and ``--allow-websocket-origin``), so app authors never set them.

Every app's IngressRoute goes through Dormouse's forwardAuth Middleware
(:func:`auth_middleware`) first, then the operator's ``TRAEFIK_MIDDLEWARES``,
all in the apps' namespace: no reference crosses namespaces.

An app's container has a read-only root filesystem; ``/tmp`` is an
``emptyDir`` as large as its ephemeral-storage limit (``K8S_EPHEMERAL_STORAGE``).
The guard rails k8s/ puts around the apps' namespace (NetworkPolicies,
ResourceQuota, LimitRange) are sized for what these builders make.
"""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import urlsplit

from ..kube_settings import EPHEMERAL_STORAGE_REQUEST_MIB, KubeSettings
from ..slugs import is_hostname, is_prefix
from ..traefik_config import AUTH_MIDDLEWARE, forward_auth, route_rule
from . import frameworks
from .base import AppSpec
from .kube_names import labels_for, selector_labels

CONTAINER = "app"
PORT_NAME = "http"  # the container port: the Service's target, the NetworkPolicy's allowed port
SERVICE_PORT = 80
TMP_DIR = "/tmp"  # the one writable directory; TMPDIR and XDG_* point into it

Manifest = dict[str, Any]


def _checked_prefix(spec: AppSpec) -> str:
    if not is_prefix(spec.prefix):  # slugs only: nothing else may reach a rule
        raise ValueError(f"unsafe URL prefix {spec.prefix!r}")
    return spec.prefix


def app_path(spec: AppSpec) -> str:
    """The URL path the app answers at: the prefix (Dash) or prefix + app name (Bokeh).
    With a command override the app is the image's own: at the prefix."""
    prefix = _checked_prefix(spec)
    if spec.command:
        return prefix
    fw = frameworks.get(spec.framework)
    return fw.app_path(prefix, spec.source or fw.default_source)


def container_args(spec: AppSpec, viz_host: str) -> list[str]:
    """The container's command line (no shell is involved)."""
    if spec.command:
        return shlex.split(spec.command)
    prefix = _checked_prefix(spec)
    fw = frameworks.get(spec.framework)
    return fw.container_args(spec, spec.source or fw.default_source, prefix, viz_host)


def owner_reference(deployment_name: str, deployment_uid: str) -> dict[str, Any]:
    """Points an object at its Deployment, so deleting that collects it."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment_name,
        "uid": deployment_uid,
        "controller": True,
    }


def _meta(spec: AppSpec, name: str, namespace: str, owner_uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels_for(spec, name),
        "annotations": {
            "dormouse.io/deployment-name": spec.deployment_name,
            "dormouse.io/app-path": app_path(spec),
        },
    }
    if owner_uid:
        meta["ownerReferences"] = [owner_reference(name, owner_uid)]
    return meta


def make_deployment(spec: AppSpec, name: str, kube: KubeSettings, *, secret: str | None) -> Manifest:
    prefix = _checked_prefix(spec)
    fw = frameworks.get(spec.framework)
    env = [
        {"name": "PORT", "value": str(spec.port)},
        {"name": "DORMOUSE_PREFIX", "value": prefix},
        {"name": "DORMOUSE_VIZ_HOST", "value": kube.viz_host},
    ]
    env += [{"name": k, "value": v} for k, v in fw.prefix_env(prefix).items()]
    # The root filesystem is read-only: temporary files (gunicorn's worker
    # heartbeat files among them), caches and gunicorn's control socket (25.1+:
    # in XDG_RUNTIME_DIR, else under a HOME it cannot write) go to /tmp. An
    # app's own environment cannot set these (app.app_environment refuses them).
    env += [
        {"name": "TMPDIR", "value": TMP_DIR},
        {"name": "XDG_CACHE_HOME", "value": f"{TMP_DIR}/.cache"},
        {"name": "XDG_RUNTIME_DIR", "value": TMP_DIR},
    ]
    storage = kube.ephemeral_storage
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "args" if not spec.command else "command": container_args(spec, kube.viz_host),
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {
                "cpu": spec.cpu,
                "memory": spec.memory,
                "ephemeral-storage": f"{EPHEMERAL_STORAGE_REQUEST_MIB}Mi",
            },
            "limits": {"cpu": spec.cpu, "memory": spec.memory, "ephemeral-storage": storage},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_DIR}],
        # Ready once the app answers where its framework says (Bokeh answers
        # its bare prefix with a redirect to the app, which counts as success).
        "readinessProbe": {
            "httpGet": {"path": fw.readiness_path(prefix, app_path(spec)), "port": PORT_NAME},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": PORT_NAME},
            "initialDelaySeconds": 30,
            "periodSeconds": 15,
            "failureThreshold": 4,
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if secret:
        container["envFrom"] = [{"secretRef": {"name": secret}}]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        # counted against the container's ephemeral-storage limit too
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": storage}}],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 10,
    }
    if kube.node_selector:
        pod_spec["nodeSelector"] = dict(kube.node_selector)
    if kube.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in kube.tolerations]
    if kube.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": kube.image_pull_secret}]
    labels = labels_for(spec, name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, name, kube.namespace),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 1,
            "progressDeadlineSeconds": 600,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(name)},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def make_secret(spec: AppSpec, name: str, kube: KubeSettings) -> Manifest:
    """The app's environment, kept out of the Deployment's literal values.
    Made before the Deployment (so its pod never waits for it) and given its
    ownerReference once the Deployment exists."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(spec, name, kube.namespace),
        "stringData": dict(spec.env),
    }


def make_service(spec: AppSpec, name: str, kube: KubeSettings, owner_uid: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, name, kube.namespace, owner_uid),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def auth_middleware(kube: KubeSettings, address: str) -> Manifest:
    """The forwardAuth Middleware in front of every app: Traefik asks Dormouse's
    gate at ``address`` (its ``/_auth/viz`` on Dormouse's Service) about each
    request, and copies the gate's cookie to the browser on the first one.

    It lives in the apps namespace, so routes name it without a cross-namespace
    reference. ``k8s/`` ships it (the operator's object, like Dormouse's own
    Service it points at); tests/test_k8s_dir.py holds that file to this."""
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not is_hostname(parts.hostname or ""):
        raise ValueError(f"not an http(s) address: {address!r}")
    if not parts.path.startswith("/") or parts.query or parts.fragment:
        raise ValueError(f"the gate's address has a path and nothing after it, not {address!r}")
    return {
        "apiVersion": kube.traefik_api,
        "kind": "Middleware",
        "metadata": {
            "name": AUTH_MIDDLEWARE,
            "namespace": kube.namespace,
            "labels": {
                "app.kubernetes.io/name": "dormouse",
                "app.kubernetes.io/component": "auth",
                "app.kubernetes.io/part-of": "dormouse",
            },
        },
        "spec": {"forwardAuth": forward_auth(address)},
    }


def middleware_refs(kube: KubeSettings) -> list[dict[str, str]]:
    """An IngressRoute's middlewares, by name in the route's own namespace
    (Traefik allows no other): the gate first, then ``TRAEFIK_MIDDLEWARES`` in
    order. The gate named there again is left out: a second check would
    present the one-time entry token twice and be refused."""
    return [{"name": AUTH_MIDDLEWARE}] + [{"name": m} for m in kube.middlewares if m != AUTH_MIDDLEWARE]


def make_ingress_route(spec: AppSpec, name: str, kube: KubeSettings, owner_uid: str) -> Manifest:
    route: dict[str, Any] = {
        "kind": "Rule",
        "match": route_rule(kube.viz_host, _checked_prefix(spec)),
        "services": [{"name": name, "port": SERVICE_PORT}],
        "middlewares": middleware_refs(kube),
    }
    return {
        "apiVersion": kube.traefik_api,
        "kind": "IngressRoute",
        "metadata": _meta(spec, name, kube.namespace, owner_uid),
        "spec": {
            "entryPoints": [kube.entrypoint],
            "routes": [route],
            "tls": {"certResolver": kube.cert_resolver},
        },
    }
