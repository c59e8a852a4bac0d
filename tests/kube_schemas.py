"""Validate manifests against the official schemas: Kubernetes' own OpenAPI
(kubernetes-validate, strict, a pinned recent version) and Traefik's CRDs
(copied into tests/schemas/)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.37.0"
TRAEFIK_CRDS = Path(__file__).resolve().parent / "schemas" / "traefik-crds-v3.7.yml"


@lru_cache(maxsize=1)
def _traefik_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for doc in yaml.safe_load_all(TRAEFIK_CRDS.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
        for version in doc["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate(manifest: dict[str, Any]) -> None:
    """Raise if ``manifest`` is not valid for its apiVersion and kind."""
    key = (manifest["apiVersion"], manifest["kind"])
    if key[0].startswith(("traefik.io/", "traefik.containo.us/")):
        group_version = "traefik.io/" + key[0].split("/", 1)[1]  # same schema, older group
        schema = _traefik_schemas()[(group_version, key[1])]
        jsonschema.validate(manifest, schema)
        return
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
