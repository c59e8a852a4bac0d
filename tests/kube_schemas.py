"""Validate manifests against the official schemas: Kubernetes' own OpenAPI
(kubernetes-validate, strict, a pinned recent version) and Traefik's CRDs
(copied into tests/schemas/), strictly too: a field the CRD's structural schema
does not know is an error here, where the API server would drop it silently."""

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
        unknown = _unknown_fields({k: v for k, v in manifest.items() if k != "metadata"}, schema)
        if unknown:
            raise jsonschema.ValidationError(f"unknown fields (the API server would drop them): {unknown}")
        return
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def _unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """The paths in ``value`` that ``schema`` (structural) has no place for."""
    if isinstance(value, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        found = []
        for key, sub_value in value.items():
            sub = props.get(key) if props is not None else extra
            if not isinstance(sub, dict):
                found.append(f"{path}.{key}")
            else:
                found += _unknown_fields(sub_value, sub, f"{path}.{key}")
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [p for i, v in enumerate(value) for p in _unknown_fields(v, schema["items"], f"{path}[{i}]")]
    return []
