"""Settings of the Kubernetes backend (``BACKEND=kubernetes``), from the environment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .config_env import ConfigError, env_float, env_int, env_json, env_str
from .slugs import DNS_LABEL_RE, HOSTNAME_RE

TRAEFIK_APIS = ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1")
# An app's scratch space: its request, and the least a limit may be.
EPHEMERAL_STORAGE_REQUEST_MIB = 64
_STORAGE_RE = re.compile(r"^([1-9][0-9]{0,6})(Mi|Gi)\Z")


def storage_mib(quantity: str) -> int | None:
    """MiB in a quantity like ``512Mi`` or ``1Gi``; None for anything else."""
    m = _STORAGE_RE.match(quantity)
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1) if m else None


def _middlewares(raw: str, namespace: str) -> tuple[str, ...]:
    """``TRAEFIK_MIDDLEWARES`` as names. Traefik runs without cross-namespace
    references (``allowCrossNamespace: false`` in k8s/traefik/), so a route may
    only name Middlewares of its own namespace: ``name``, or
    ``<K8S_NAMESPACE>/name`` spelled out; any other namespace is refused here,
    where Traefik would only log it and drop the route."""
    names = []
    for m in raw.replace(",", " ").split():
        space, slash, name = m.rpartition("/")
        if not DNS_LABEL_RE.match(name) or (slash and not DNS_LABEL_RE.match(space)):
            raise ConfigError(f"TRAEFIK_MIDDLEWARES: {m!r} is not a middleware name")
        if space and space != namespace:
            raise ConfigError(
                f"TRAEFIK_MIDDLEWARES: {m!r} is in namespace {space}; Traefik is set up without "
                f"cross-namespace references, so your middlewares must be in K8S_NAMESPACE ({namespace})"
            )
        names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class KubeSettings:
    """Settings of the Kubernetes backend (``BACKEND=kubernetes``)."""

    namespace: str
    viz_host: str
    viz_scheme: str
    context: str | None
    traefik_api: str
    entrypoint: str
    cert_resolver: str
    middlewares: tuple[str, ...]  # names of Middlewares in ``namespace``
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, Any], ...]
    image_pull_secret: str | None
    ephemeral_storage: str  # each app's limit: its logs and its /tmp
    request_timeout: float
    retries: int

    @classmethod
    def from_env(cls, env: dict[str, str], required: bool) -> KubeSettings:
        namespace = env_str(env, "K8S_NAMESPACE", "dormouse-apps")
        if not DNS_LABEL_RE.match(namespace):
            raise ConfigError(f"K8S_NAMESPACE must be a DNS-1123 label, got {namespace!r}")
        viz_host = env_str(env, "VIZ_HOST", "").lower()
        if required and not viz_host:
            raise ConfigError("VIZ_HOST must be set with BACKEND=kubernetes (e.g. viz.example.org)")
        if viz_host and not HOSTNAME_RE.match(viz_host):
            raise ConfigError(f"VIZ_HOST must be a host name, got {viz_host!r}")
        traefik_api = env_str(env, "TRAEFIK_API", TRAEFIK_APIS[0])
        if traefik_api not in TRAEFIK_APIS:
            raise ConfigError(f"TRAEFIK_API must be one of {', '.join(TRAEFIK_APIS)}")
        entrypoint = env_str(env, "TRAEFIK_ENTRYPOINT", "websecure")
        cert_resolver = env_str(env, "TRAEFIK_CERT_RESOLVER", "letsencrypt")
        for name, value in (("TRAEFIK_ENTRYPOINT", entrypoint), ("TRAEFIK_CERT_RESOLVER", cert_resolver)):
            if not re.match(r"^[A-Za-z0-9_-]{1,63}$", value):
                raise ConfigError(f"{name} must be a simple name, got {value!r}")
        ephemeral_storage = env_str(env, "K8S_EPHEMERAL_STORAGE", "1Gi")
        if (storage_mib(ephemeral_storage) or 0) < EPHEMERAL_STORAGE_REQUEST_MIB:
            raise ConfigError(
                f"K8S_EPHEMERAL_STORAGE must be like 512Mi or 2Gi, at least "
                f"{EPHEMERAL_STORAGE_REQUEST_MIB}Mi, got {ephemeral_storage!r}"
            )
        return cls(
            namespace=namespace,
            viz_host=viz_host,
            viz_scheme=env_str(env, "VIZ_SCHEME", "https"),
            context=env_str(env, "K8S_CONTEXT", "") or None,
            traefik_api=traefik_api,
            entrypoint=entrypoint,
            cert_resolver=cert_resolver,
            middlewares=_middlewares(env_str(env, "TRAEFIK_MIDDLEWARES", ""), namespace),
            node_selector=env_json(env, "K8S_NODE_SELECTOR", {}, dict),
            tolerations=tuple(env_json(env, "K8S_TOLERATIONS", [], list)),
            image_pull_secret=env_str(env, "K8S_IMAGE_PULL_SECRET", "") or None,
            ephemeral_storage=ephemeral_storage,
            request_timeout=env_float(env, "K8S_REQUEST_TIMEOUT", 10.0, minimum=0.1),
            retries=env_int(env, "K8S_RETRIES", 3, minimum=0),
        )
