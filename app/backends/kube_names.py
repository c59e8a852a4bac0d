"""Kubernetes object names and labels for a deployment.

Only validated slugs (app.slugs) and the random public name ever reach a name
or a label. The naming rule itself (a DNS-1123 label of at most 63
characters, shortened with a stable hash) is :func:`app.slugs.object_name`.
"""

from __future__ import annotations

from ..slugs import is_dns_label, object_name
from .base import AppSpec

MANAGED_BY = "dormouse"
LABEL_PREFIX = "dormouse.io"


def name_for(spec: AppSpec) -> str:
    name = object_name(spec.owner, spec.title, spec.public_name)
    # unreachable with validated slugs and a public name; never trust it
    if not is_dns_label(spec.public_name) or not is_dns_label(name):
        raise ValueError(f"not a DNS-1123 label: {name!r} (public name {spec.public_name!r})")
    return name


def selector_labels(name: str) -> dict[str, str]:
    """The labels that pick this deployment's pods (immutable once created)."""
    return {"app.kubernetes.io/instance": name, f"{LABEL_PREFIX}/viz": name}


def labels_for(spec: AppSpec, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.framework,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "viz",
        "app.kubernetes.io/part-of": "dormouse",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{LABEL_PREFIX}/viz": name,
        f"{LABEL_PREFIX}/owner": spec.owner,
        f"{LABEL_PREFIX}/app": spec.title,
        f"{LABEL_PREFIX}/deployment": spec.public_name,
        f"{LABEL_PREFIX}/deployment-id": str(spec.deployment_id),
    }


MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
