"""Every object in k8s/ validates against the official schemas, and the
kustomizations only name files that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
    for entry in k.get("resources", []) + [p["path"] for p in k.get("patches", [])]:
        assert (path.parent / entry).exists(), entry


def test_role_is_limited_to_the_apps_namespace():
    role = next(
        d for d in yaml.safe_load_all((K8S / "base" / "rbac.yaml").read_text()) if d["kind"] == "Role"
    )
    assert role["metadata"]["namespace"] == "dormouse-apps"
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
