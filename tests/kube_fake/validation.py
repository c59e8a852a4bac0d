"""Validation in the fake apiserver (tests/kube_fake/server.py): the checks kube-apiserver 1.20
makes before storing an object, answered as 422 Invalid with the real field causes, and
the structural schemas (pruning and validation) of the custom resources."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from .resources import ApiError, Res, dig
from .selectors import selector_matches

_SUBDOMAIN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1035 = "[a-z]([-a-z0-9]*[a-z0-9])?"
NAME_RULES = {  # regex, max length, the real error text
    "subdomain": (
        _SUBDOMAIN,
        253,
        (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
            "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
            f"regex used for validation is '{_SUBDOMAIN}')"
        ),
    ),
    "label": (
        _LABEL,
        63,
        (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
            f"regex used for validation is '{_LABEL}')"
        ),
    ),
    "1035": (
        _DNS1035,
        63,
        (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
            "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
            f"'abc-123', regex used for validation is '{_DNS1035}')"
        ),
    ),
}
_QNAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = f"({_QNAME})?"


def _go(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _invalid(field: str, value, detail: str, reason: str = "FieldValueInvalid") -> tuple:
    return (field, reason, f"Invalid value: {_go(value)}: {detail}")


def _required(field: str) -> tuple:
    return (field, "FieldValueRequired", "Required value")


def _name_errors(value: str, rule: str, field: str) -> list[tuple]:
    pattern, limit, text = NAME_RULES[rule]
    if len(value) > limit:
        return [_invalid(field, value, f"must be no more than {limit} characters")]
    return [] if re.fullmatch(pattern, value) else [_invalid(field, value, text)]


def _label_errors(labels: dict) -> list[tuple]:
    errs = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (
            (prefix and _name_errors(prefix, "subdomain", ""))
            or len(name) > 63
            or not re.fullmatch(_QNAME, name)
        ):
            errs.append(
                _invalid(
                    "metadata.labels",
                    key,
                    (
                        "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                        "start and end with an alphanumeric character"
                    ),
                )
            )
        if len(value) > 63 or not re.fullmatch(_LABEL_VALUE, value):
            errs.append(
                _invalid(
                    "metadata.labels",
                    value,
                    (
                        "a valid label must be an empty string or consist of alphanumeric characters, "
                        "'-', '_' or '.', and must start and end with an alphanumeric character (regex "
                        f"used for validation is '{_LABEL_VALUE}')"
                    ),
                )
            )
    return errs


def _pod_spec_errors(spec, path: str, deployment: bool) -> list[tuple]:
    spec = spec if isinstance(spec, dict) else {}
    containers, errs, seen = spec.get("containers") or [], [], set()
    if not containers:
        errs.append(_required(f"{path}.containers"))
    for i, c in enumerate(containers):
        p, name = f"{path}.containers[{i}]", c.get("name") or ""
        if not name:
            errs.append(_required(f"{p}.name"))
        elif name in seen:
            errs.append((f"{p}.name", "FieldValueDuplicate", f"Duplicate value: {_go(name)}"))
        else:
            errs += _name_errors(name, "label", f"{p}.name")
        seen.add(name)
        if not c.get("image"):
            errs.append(_required(f"{p}.image"))
        for j, port in enumerate(c.get("ports") or []):
            if not 0 < (port.get("containerPort") or 0) < 65536:
                errs.append(
                    _invalid(
                        f"{p}.ports[{j}].containerPort",
                        port.get("containerPort"),
                        "must be between 1 and 65535, inclusive",
                    )
                )
        if any("value" in env and not isinstance(env["value"], str) for env in c.get("env") or []):
            raise ApiError(
                400,
                "BadRequest",
                "json: cannot unmarshal number into Go struct field "
                "EnvVar.spec.containers.env.value of type string",
            )
    if deployment and spec.get("restartPolicy") != "Always":
        policy = _go(spec.get("restartPolicy"))
        errs.append(
            (
                f"{path}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: {policy}: supported values: "Always"',
            )
        )
    return errs


def _service_errors(spec: dict) -> list[tuple]:
    errs, ports = [], spec.get("ports") or []
    if spec.get("type") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        errs.append(
            (
                "spec.type",
                "FieldValueNotSupported",
                (
                    f'Unsupported value: {_go(spec.get("type"))}: supported values: "ClusterIP", '
                    '"ExternalName", "LoadBalancer", "NodePort"'
                ),
            )
        )
    if spec.get("type") != "ExternalName" and not ports and spec.get("clusterIP") != "None":
        errs.append(_required("spec.ports"))
    for i, port in enumerate(ports):
        if len(ports) > 1 and not port.get("name"):
            errs.append(_required(f"spec.ports[{i}].name"))
        if not 0 < (port.get("port") or 0) < 65536:
            errs.append(
                _invalid(f"spec.ports[{i}].port", port.get("port"), "must be between 1 and 65535, inclusive")
            )
        target = port.get("targetPort")
        if isinstance(target, str) and not (len(target) <= 15 and re.fullmatch(_LABEL, target)):
            errs.append(
                _invalid(
                    f"spec.ports[{i}].targetPort",
                    target,
                    ("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
                )
            )
    return errs


def _workload_errors(res: Res, spec: dict, old: dict | None) -> list[tuple]:
    errs = []
    selector, labels = spec.get("selector"), dig(spec, "template.metadata.labels") or {}
    if not selector:
        errs.append(_required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        errs.append(_invalid("spec.selector", selector, f"empty selector is invalid for {res.plural[:-1]}"))
    if selector and not selector_matches(selector, labels):
        errs.append(
            _invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
        )
    errs += _pod_spec_errors(dig(spec, "template.spec"), "spec.template.spec", True)
    if not isinstance(spec.get("replicas"), int) or spec["replicas"] < 0:
        errs.append(_invalid("spec.replicas", spec.get("replicas"), "must be greater than or equal to 0"))
    if old is not None and selector != dig(old, "spec.selector"):
        errs.append(_invalid("spec.selector", selector, "field is immutable"))
    return errs


def validate_object(res: Res, obj: dict, old: dict | None, validator) -> None:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    name = meta.get("name") or ""
    if not name:
        errs = [("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")]
    else:
        errs = _name_errors(name, res.name_rule, "metadata.name")
    errs += _label_errors(meta.get("labels") or {})
    refs = meta.get("ownerReferences") or []
    for ref in refs:
        errs += [
            _invalid(
                f"metadata.ownerReferences.{f}", "", f"{f.replace('apiVersion', 'version')} must not be empty"
            )
            for f in ("apiVersion", "kind", "name", "uid")
            if not ref.get(f)
        ]
    if sum(bool(ref.get("controller")) for ref in refs) > 1:
        errs.append(
            _invalid("metadata.ownerReferences", refs, "Only one reference can have Controller set to true")
        )
    if res.plural in ("deployments", "replicasets"):
        errs += _workload_errors(res, spec, old)
    elif res.plural == "pods":
        errs += _pod_spec_errors(spec, "spec", False)

        def image_free(s):
            return {**s, "containers": [{**c, "image": ""} for c in s.get("containers", [])]}

        if old is not None and image_free(spec) != image_free(old["spec"]):
            errs.append(
                (
                    "spec",
                    "FieldValueForbidden",
                    (
                        "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                        "`spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing "
                        "tolerations)"
                    ),
                )
            )
    elif res.plural == "services":
        errs += _service_errors(spec)
        if old is not None and spec.get("clusterIP") != dig(old, "spec.clusterIP"):
            errs.append(_invalid("spec.clusterIP", spec.get("clusterIP"), "field is immutable"))
    elif res.plural == "secrets":
        errs += [
            _invalid(
                f"data[{key}]",
                key,
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            )
            for key in obj.get("data") or {}
            if not re.fullmatch(r"[-._a-zA-Z0-9]+", key)
        ]
    elif res.plural == "events":
        involved = dig(obj, "involvedObject.namespace")
        if involved and involved != meta.get("namespace"):
            errs.append(_invalid("involvedObject.namespace", involved, "does not match event.namespace"))
    if validator is not None:
        errs += _schema_errors(validator, obj)
    if errs:
        text = [f"{field}: {msg}" for field, _, msg in errs]
        message = text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"
        raise ApiError(
            422,
            "Invalid",
            f'{res.qualified_kind} "{name}" is invalid: {message}',
            {
                "name": name,
                **({"group": res.group} if res.group else {}),
                "kind": res.kind,
                "causes": [{"reason": r, "message": m, "field": f} for f, r, m in errs],
            },
        )


# -- custom resources: structural schema pruning and validation --------------------------------
@functools.cache
def load_crd_schemas(path: Path | None) -> dict:
    """(group, plural) -> (openAPIV3Schema, validator) for the CRDs in ``path`` (YAML)."""
    if path is None or not Path(path).exists():
        return {}
    import jsonschema
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = {}
    for doc in yaml.load_all(Path(path).read_text(), Loader=loader):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            for version in doc["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                out[(doc["spec"]["group"], doc["spec"]["names"]["plural"])] = (
                    schema,
                    jsonschema.Draft4Validator(_nullable(schema)),
                )
    return out


def _nullable(schema):
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _nullable(v) for k, v in schema.items() if k != "x-kubernetes-validations"}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def prune(value, schema: dict, root: bool = False):
    """Drop what the structural schema doesn't know, and nulls it doesn't allow (as 1.20 does)."""
    if isinstance(value, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            if root and k in ("apiVersion", "kind", "metadata"):
                out[k] = v
                continue
            sub = props.get(k) if props is not None else extra
            sub = sub if isinstance(sub, dict) else None
            if sub is not None and (v is not None or sub.get("nullable")):
                out[k] = prune(v, sub)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"]) for v in value]
    return value


def _schema_errors(validator, obj: dict) -> list[tuple]:
    errs = []
    for e in sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path]):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)[1:]
        if e.validator == "required":
            missing = re.search(r"'([^']+)' is a required property", e.message)
            field = ".".join(filter(None, (path, missing and missing.group(1))))
            errs.append((field, "FieldValueRequired", "Required value"))
        elif e.validator == "enum":
            errs.append(
                (
                    path,
                    "FieldValueNotSupported",
                    f"Unsupported value: {_go(e.instance)}: "
                    "supported values: " + ", ".join(_go(v) for v in e.validator_value),
                )
            )
        elif e.validator == "type":
            got = {
                str: "string",
                bool: "boolean",
                int: "integer",
                float: "number",
                list: "array",
                dict: "object",
            }.get(type(e.instance), "null")
            errs.append(
                (
                    path,
                    "FieldValueInvalid",
                    (f'Invalid value: "{got}": {path} in body must be of type {e.validator_value}: "{got}"'),
                )
            )
        else:
            errs.append(_invalid(path, e.instance, e.message))
    return errs
