"""Label and field selectors, as the fake apiserver (tests/kube_fake/server.py) parses and
matches them: ``labelSelector``/``fieldSelector`` query strings and LabelSelector objects."""

from __future__ import annotations

import re

from .resources import ApiError, dig

FIELD_LABELS = {  # field selectors each resource supports besides metadata.name/namespace
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "secrets": {"type"},
    "namespaces": {"status.phase"},
    "replicasets": {"status.replicas"},
}

# -- label selectors ---------------------------------------------------------------------------
_REQUIREMENT = re.compile(
    r"^\s*(!)?\s*([A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(==|=|!=)\s*([-A-Za-z0-9_.]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


def parse_label_selector(sel: str) -> list[tuple]:
    reqs = []
    for part in re.split(r",(?![^(]*\))", sel) if sel.strip() else []:
        m = _REQUIREMENT.match(part)
        if not m or (m.group(1) and (m.group(3) or m.group(5))):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
        neg, key, op, value, setop, values = m.groups()
        if neg:
            reqs.append((key, "!", None))
        elif op:
            reqs.append((key, "!=" if op == "!=" else "in", {value}))
        elif setop:
            reqs.append((key, setop, {v.strip() for v in values.split(",")}))
        else:
            reqs.append((key, "exists", None))
    return reqs


def match_labels(reqs: list[tuple], labels: dict) -> bool:
    for key, op, values in reqs:
        has = key in labels
        if (
            op in ("exists", "in")
            and not has
            or op == "!"
            and has
            or op == "in"
            and labels[key] not in values
            or op in ("!=", "notin")
            and has
            and labels[key] in values
        ):
            return False
    return True


def selector_matches(sel: dict, labels: dict) -> bool:
    """A LabelSelector object (matchLabels + matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in (sel.get("matchLabels") or {}).items()):
        return False
    for e in sel.get("matchExpressions") or []:
        key, vals = e.get("key"), e.get("values") or []
        ok = {
            "In": key in labels and labels[key] in vals,
            "NotIn": key not in labels or labels[key] not in vals,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(e.get("operator"))
        if not ok:
            return False
    return True


# -- field selectors ---------------------------------------------------------------------------
def parse_field_selector(sel: str, plural: str) -> list[tuple]:
    fields = []
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get(plural, set())
    for part in filter(None, map(str.strip, sel.split(","))):
        m = re.fullmatch(r"([^=!]+)(==|=|!=)(.*)", part)
        if not m or m.group(1) not in allowed:
            label = part.split("=")[0]
            raise ApiError(400, "BadRequest", f"field label not supported: {label}")
        fields.append(({"source": "source.component"}.get(m[1], m[1]), m[2], m[3]))
    return fields


def match_fields(reqs: list[tuple], obj: dict) -> bool:
    return all((str(dig(obj, f, "")) == v) == (op != "!=") for f, op, v in reqs)
