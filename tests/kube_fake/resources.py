"""The fake apiserver's resource table (tests/kube_fake/server.py), the Status errors it answers
with, and small helpers on stored objects."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
CRD_FILE = Path(__file__).parent.parent / "schemas" / "traefik-crds-v3.7.yml"


class ApiError(Exception):
    """Answered as a Status body (``status: Failure``) with HTTP ``code``."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict | None = None, headers: dict | None = None
    ):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}

    def body(self) -> dict:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            status["details"] = self.details
        return {**status, "code": self.code}


@dataclass(frozen=True)
class Res:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_sub: bool = False  # has /status: writes to the main resource keep the old status
    returns_object: bool = False  # DELETE answers the deleted object instead of a Status
    custom: bool = False
    generation: bool = False
    name_rule: str = "subdomain"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:  # "deployments.apps", "pods"
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:  # "Deployment.apps", "Pod"
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def details(self, name: str, **extra) -> dict:
        return {"name": name, **({"group": self.group} if self.group else {}), "kind": self.plural, **extra}

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{self.qualified} "{name}" not found', self.details(name))


RESOURCES = {
    (r.group, r.version, r.plural): r
    for r in [
        Res("", "v1", "namespaces", "Namespace", namespaced=False, status_sub=True, name_rule="label"),
        Res("", "v1", "pods", "Pod", status_sub=True, returns_object=True),
        Res("", "v1", "services", "Service", status_sub=True, name_rule="1035"),
        Res("", "v1", "secrets", "Secret"),
        Res("", "v1", "configmaps", "ConfigMap"),
        Res("", "v1", "events", "Event"),
        Res("apps", "v1", "deployments", "Deployment", status_sub=True, generation=True),
        Res("apps", "v1", "replicasets", "ReplicaSet", status_sub=True, generation=True),
        *[
            Res(g, "v1alpha1", p, k, custom=True, generation=True)
            for g in ("traefik.io", "traefik.containo.us")
            for p, k in (("ingressroutes", "IngressRoute"), ("middlewares", "Middleware"))
        ],
    ]
}
R = {r.plural: r for r in RESOURCES.values() if not r.custom}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rand5() -> str:
    return "".join(random.choice(ALNUM) for _ in range(5))


def dig(obj, path: str, default=None):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


def is_ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in dig(pod, "status.conditions", []) or []
    )
