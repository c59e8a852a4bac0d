"""Kubernetes object names and labels for a deployment.

Only validated slugs (app.slugs) and the random public name ever reach a name
or a label. Names are DNS-1123 labels of at most 63 characters; when the
natural name is longer, its head is cut and a short stable hash keeps it
unique. The public name (unique in the database) always stays whole, so two
deployments never share a name.
"""

from __future__ import annotations

import hashlib

from ..config import DNS_LABEL_RE
from .base import AppSpec

MAX_NAME = 63
MANAGED_BY = "dormouse"
LABEL_PREFIX = "dormouse.io"


def object_name(owner: str, title: str, public_name: str) -> str:
    """``<owner>-<title>-<public_name>``, shortened with a hash past 63 characters."""
    full = f"{owner}-{title}-{public_name}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    room = MAX_NAME - len(public_name) - len(digest) - 2
    head = f"{owner}-{title}"[:room].rstrip("-")
    return f"{head}-{digest}-{public_name}"


def name_for(spec: AppSpec) -> str:
    public_name = spec.prefix.rstrip("/").rsplit("/", 1)[-1]
    name = object_name(spec.owner, spec.title, public_name)
    if not DNS_LABEL_RE.match(name):  # unreachable with validated slugs; never trust it
        raise ValueError(f"not a DNS-1123 label: {name!r}")
    return name


def selector_labels(name: str) -> dict[str, str]:
    """The labels that pick this deployment's pods (immutable once created)."""
    return {"app.kubernetes.io/instance": name, f"{LABEL_PREFIX}/viz": name}


def labels_for(spec: AppSpec, name: str) -> dict[str, str]:
    public_name = spec.prefix.rstrip("/").rsplit("/", 1)[-1]
    return {
        "app.kubernetes.io/name": spec.framework,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "viz",
        "app.kubernetes.io/part-of": "dormouse",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{LABEL_PREFIX}/viz": name,
        f"{LABEL_PREFIX}/owner": spec.owner,
        f"{LABEL_PREFIX}/app": spec.title,
        f"{LABEL_PREFIX}/deployment": public_name,
        f"{LABEL_PREFIX}/deployment-id": str(spec.deployment_id),
    }


MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
