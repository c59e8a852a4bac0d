"""Settings of the Kubernetes backend (``BACKEND=kubernetes``), from the environment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .config_env import ConfigError, env_float, env_int, env_json, env_str
from .slugs import DNS_LABEL_RE, HOSTNAME_RE

TRAEFIK_APIS = ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1")


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
    middlewares: tuple[str, ...]
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, Any], ...]
    image_pull_secret: str | None
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
        middlewares = tuple(m for m in env_str(env, "TRAEFIK_MIDDLEWARES", "").replace(",", " ").split() if m)
        for m in middlewares:
            if not DNS_LABEL_RE.match(m.split("/")[-1]):
                raise ConfigError(f"TRAEFIK_MIDDLEWARES: {m!r} is not a middleware name")
        return cls(
            namespace=namespace,
            viz_host=viz_host,
            viz_scheme=env_str(env, "VIZ_SCHEME", "https"),
            context=env_str(env, "K8S_CONTEXT", "") or None,
            traefik_api=traefik_api,
            entrypoint=entrypoint,
            cert_resolver=cert_resolver,
            middlewares=middlewares,
            node_selector=env_json(env, "K8S_NODE_SELECTOR", {}, dict),
            tolerations=tuple(env_json(env, "K8S_TOLERATIONS", [], list)),
            image_pull_secret=env_str(env, "K8S_IMAGE_PULL_SECRET", "") or None,
            request_timeout=env_float(env, "K8S_REQUEST_TIMEOUT", 10.0, minimum=0.1),
            retries=env_int(env, "K8S_RETRIES", 3, minimum=0),
        )
