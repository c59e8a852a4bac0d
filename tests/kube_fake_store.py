"""The object store behind tests/kube_fake.py: what a kube-apiserver 1.20, with its
deployment/replicaset controllers, garbage collector and namespace controller, does
with requests, minus the HTTP. Store methods take ``Store.lock``; the rules before
the class are pure functions."""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import random
import re
import threading
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
CRD_FILE = Path(__file__).parent / "schemas" / "traefik-crds-v3.7.yml"


class ApiError(Exception):
    """Answered as a Status body (``status: Failure``) with HTTP ``code``."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}

    def body(self) -> dict:
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": self.message, "reason": self.reason}
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
        return {"name": name, **({"group": self.group} if self.group else {}),
                "kind": self.plural, **extra}

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{self.qualified} "{name}" not found', self.details(name))


RESOURCES = {(r.group, r.version, r.plural): r for r in [
    Res("", "v1", "namespaces", "Namespace", namespaced=False, status_sub=True, name_rule="label"),
    Res("", "v1", "pods", "Pod", status_sub=True, returns_object=True),
    Res("", "v1", "services", "Service", status_sub=True, name_rule="1035"),
    Res("", "v1", "secrets", "Secret"),
    Res("", "v1", "configmaps", "ConfigMap"),
    Res("", "v1", "events", "Event"),
    Res("apps", "v1", "deployments", "Deployment", status_sub=True, generation=True),
    Res("apps", "v1", "replicasets", "ReplicaSet", status_sub=True, generation=True),
    *[Res(g, "v1alpha1", p, k, custom=True, generation=True)
      for g in ("traefik.io", "traefik.containo.us")
      for p, k in (("ingressroutes", "IngressRoute"), ("middlewares", "Middleware"))],
]}
R = {r.plural: r for r in RESOURCES.values() if not r.custom}

FIELD_LABELS = {  # field selectors each resource supports besides metadata.name/namespace
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
             "spec.serviceAccountName", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "secrets": {"type"}, "namespaces": {"status.phase"}, "replicasets": {"status.replicas"},
}


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
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in dig(pod, "status.conditions", []) or [])


# -- selectors -------------------------------------------------------------------------------
_REQUIREMENT = re.compile(r"^\s*(!)?\s*([A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
                          r"(?:(==|=|!=)\s*([-A-Za-z0-9_.]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


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
        if op in ("exists", "in") and not has or op == "!" and has \
                or op == "in" and labels[key] not in values \
                or op in ("!=", "notin") and has and labels[key] in values:
            return False
    return True


def selector_matches(sel: dict, labels: dict) -> bool:
    """A LabelSelector object (matchLabels + matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in (sel.get("matchLabels") or {}).items()):
        return False
    for e in sel.get("matchExpressions") or []:
        key, vals = e.get("key"), e.get("values") or []
        ok = {"In": key in labels and labels[key] in vals,
              "NotIn": key not in labels or labels[key] not in vals,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(e.get("operator"))
        if not ok:
            return False
    return True


# -- defaulting and admission ------------------------------------------------------------------
def _default_container(c: dict) -> None:
    image = c.get("image") or ""
    last = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in last or last.endswith(":latest"))
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    res = c.setdefault("resources", {})
    if res.get("limits"):
        res["requests"] = {**res["limits"], **(res.get("requests") or {})}
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe in (c.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe")):
        if isinstance(probe, dict):
            for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                         ("failureThreshold", 3)):
                probe.setdefault(k, v)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("scheme", "HTTP")


def _default_pod_spec(spec: dict) -> None:
    for k, v in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30),
                 ("dnsPolicy", "ClusterFirst"), ("securityContext", {}),
                 ("schedulerName", "default-scheduler"), ("enableServiceLinks", True)):
        spec.setdefault(k, v)
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)
    for vol in spec.get("volumes") or []:
        for source in ("secret", "configMap"):
            if isinstance(vol.get(source), dict):
                vol[source].setdefault("defaultMode", 420)


def _qos(spec: dict) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if all(not r.get("requests") and not r.get("limits") for r in resources):
        return "BestEffort"
    if all({"cpu", "memory"} <= set(r.get("limits") or {}) and
           all((r.get("requests") or {}).get(k) == r["limits"][k] for k in ("cpu", "memory"))
           for r in resources):
        return "Guaranteed"
    return "Burstable"


def _admit_pod(pod: dict) -> None:
    """What the ServiceAccount, Priority and DefaultTolerationSeconds admission plugins add."""
    spec = pod["spec"]
    spec["serviceAccount"] = spec.setdefault("serviceAccountName", "default")
    if spec.get("automountServiceAccountToken") is not False:
        volume = f"{spec['serviceAccountName']}-token-{rand5()}"
        spec.setdefault("volumes", []).append(
            {"name": volume, "secret": {"secretName": volume, "defaultMode": 420}})
        for c in spec.get("containers") or []:
            c.setdefault("volumeMounts", []).append(
                {"name": volume, "readOnly": True,
                 "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
    pod["status"] = {"phase": "Pending", "qosClass": _qos(spec)}


def default_object(plural: str, obj: dict, old: dict | None, store: Store) -> None:
    spec = obj.setdefault("spec", {}) if plural in (
        "pods", "services", "deployments", "replicasets", "namespaces") else None
    if plural in ("deployments", "replicasets"):
        spec.setdefault("replicas", 1)
        if plural == "deployments":
            strategy = spec.setdefault("strategy", {})
            if strategy.setdefault("type", "RollingUpdate") == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%"), ru.setdefault("maxSurge", "25%")
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
        template = spec.get("template")
        if isinstance(template, dict):
            template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
            if isinstance(template.get("spec"), dict):
                _default_pod_spec(template["spec"])
        obj.setdefault("status", {})
    elif plural == "pods":
        _default_pod_spec(spec)
        if old is None:
            _admit_pod(obj)
    elif plural == "services":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            if not spec.get("clusterIP"):
                if old is not None and dig(old, "spec.clusterIP"):
                    spec["clusterIP"] = old["spec"]["clusterIP"]
                else:
                    store.ips += 1
                    spec["clusterIP"] = f"10.96.{store.ips // 256}.{store.ips % 256}"
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        for i, port in enumerate(spec.get("ports") or []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                old_ports = dig(old or {}, "spec.ports", []) or []
                store.ips += 1
                port["nodePort"] = (old_ports[i].get("nodePort") if i < len(old_ports) else None) \
                    or 30000 + store.ips % 2768
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj.setdefault("status", {"loadBalancer": {}})
    elif plural == "secrets":
        obj.setdefault("type", "Opaque")
        data = obj.get("data") or {}
        for k, v in data.items():
            try:
                base64.b64decode(v, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ApiError(400, "BadRequest", "illegal base64 data in Secret.data") from None
        for k, v in (obj.pop("stringData", None) or {}).items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data
        if not data:  # an empty map is omitted
            del obj["data"]
    elif plural == "namespaces":
        spec.setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {"phase": "Active"})
    elif plural == "events":
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")


# -- validation ----------------------------------------------------------------------------
_SUBDOMAIN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1035 = "[a-z]([-a-z0-9]*[a-z0-9])?"
NAME_RULES = {  # regex, max length, the real error text
    "subdomain": (_SUBDOMAIN, 253, (
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
        f"regex used for validation is '{_SUBDOMAIN}')")),
    "label": (_LABEL, 63, (
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        f"regex used for validation is '{_LABEL}')")),
    "1035": (_DNS1035, 63, (
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        f"'abc-123', regex used for validation is '{_DNS1035}')")),
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
        if (prefix and _name_errors(prefix, "subdomain", "")) or len(name) > 63 \
                or not re.fullmatch(_QNAME, name):
            errs.append(_invalid("metadata.labels", key, (
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character")))
        if len(value) > 63 or not re.fullmatch(_LABEL_VALUE, value):
            errs.append(_invalid("metadata.labels", value, (
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character (regex "
                f"used for validation is '{_LABEL_VALUE}')")))
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
                errs.append(_invalid(f"{p}.ports[{j}].containerPort", port.get("containerPort"),
                                     "must be between 1 and 65535, inclusive"))
        if any("value" in env and not isinstance(env["value"], str) for env in c.get("env") or []):
            raise ApiError(400, "BadRequest", "json: cannot unmarshal number into Go struct field "
                           "EnvVar.spec.containers.env.value of type string")
    if deployment and spec.get("restartPolicy") != "Always":
        policy = _go(spec.get("restartPolicy"))
        errs.append((f"{path}.restartPolicy", "FieldValueNotSupported",
                     f'Unsupported value: {policy}: supported values: "Always"'))
    return errs


def _service_errors(spec: dict) -> list[tuple]:
    errs, ports = [], spec.get("ports") or []
    if spec.get("type") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        errs.append(("spec.type", "FieldValueNotSupported", (
            f"Unsupported value: {_go(spec.get('type'))}: supported values: \"ClusterIP\", "
            '"ExternalName", "LoadBalancer", "NodePort"')))
    if spec.get("type") != "ExternalName" and not ports and spec.get("clusterIP") != "None":
        errs.append(_required("spec.ports"))
    for i, port in enumerate(ports):
        if len(ports) > 1 and not port.get("name"):
            errs.append(_required(f"spec.ports[{i}].name"))
        if not 0 < (port.get("port") or 0) < 65536:
            errs.append(_invalid(f"spec.ports[{i}].port", port.get("port"),
                                 "must be between 1 and 65535, inclusive"))
        target = port.get("targetPort")
        if isinstance(target, str) and not (len(target) <= 15 and re.fullmatch(_LABEL, target)):
            errs.append(_invalid(f"spec.ports[{i}].targetPort", target, (
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")))
    return errs


def _workload_errors(res: Res, spec: dict, old: dict | None) -> list[tuple]:
    errs = []
    selector, labels = spec.get("selector"), dig(spec, "template.metadata.labels") or {}
    if not selector:
        errs.append(_required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        errs.append(_invalid("spec.selector", selector,
                             f"empty selector is invalid for {res.plural[:-1]}"))
    if selector and not selector_matches(selector, labels):
        errs.append(_invalid("spec.template.metadata.labels", labels,
                             "`selector` does not match template `labels`"))
    errs += _pod_spec_errors(dig(spec, "template.spec"), "spec.template.spec", True)
    if not isinstance(spec.get("replicas"), int) or spec["replicas"] < 0:
        errs.append(_invalid("spec.replicas", spec.get("replicas"),
                             "must be greater than or equal to 0"))
    if old is not None and selector != dig(old, "spec.selector"):
        errs.append(_invalid("spec.selector", selector, "field is immutable"))
    return errs


def validate_object(res: Res, obj: dict, old: dict | None, validator) -> None:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    name = meta.get("name") or ""
    if not name:
        errs = [("metadata.name", "FieldValueRequired",
                 "Required value: name or generateName is required")]
    else:
        errs = _name_errors(name, res.name_rule, "metadata.name")
    errs += _label_errors(meta.get("labels") or {})
    refs = meta.get("ownerReferences") or []
    for ref in refs:
        errs += [_invalid(f"metadata.ownerReferences.{f}", "",
                          f"{f.replace('apiVersion', 'version')} must not be empty")
                 for f in ("apiVersion", "kind", "name", "uid") if not ref.get(f)]
    if sum(bool(ref.get("controller")) for ref in refs) > 1:
        errs.append(_invalid("metadata.ownerReferences", refs,
                             "Only one reference can have Controller set to true"))
    if res.plural in ("deployments", "replicasets"):
        errs += _workload_errors(res, spec, old)
    elif res.plural == "pods":
        errs += _pod_spec_errors(spec, "spec", False)

        def image_free(s):
            return {**s, "containers": [{**c, "image": ""} for c in s.get("containers", [])]}
        if old is not None and image_free(spec) != image_free(old["spec"]):
            errs.append(("spec", "FieldValueForbidden", (
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                "`spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing "
                "tolerations)")))
    elif res.plural == "services":
        errs += _service_errors(spec)
        if old is not None and spec.get("clusterIP") != dig(old, "spec.clusterIP"):
            errs.append(_invalid("spec.clusterIP", spec.get("clusterIP"), "field is immutable"))
    elif res.plural == "secrets":
        errs += [_invalid(f"data[{key}]", key, "a valid config key must consist of alphanumeric "
                          "characters, '-', '_' or '.'")
                 for key in obj.get("data") or {} if not re.fullmatch(r"[-._a-zA-Z0-9]+", key)]
    elif res.plural == "events":
        involved = dig(obj, "involvedObject.namespace")
        if involved and involved != meta.get("namespace"):
            errs.append(_invalid("involvedObject.namespace", involved,
                                 "does not match event.namespace"))
    if validator is not None:
        errs += _schema_errors(validator, obj)
    if errs:
        text = [f"{field}: {msg}" for field, _, msg in errs]
        message = text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"
        raise ApiError(422, "Invalid", f'{res.qualified_kind} "{name}" is invalid: {message}', {
            "name": name, **({"group": res.group} if res.group else {}), "kind": res.kind,
            "causes": [{"reason": r, "message": m, "field": f} for f, r, m in errs]})


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
                    schema, jsonschema.Draft4Validator(_nullable(schema)))
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
            errs.append((path, "FieldValueNotSupported", f"Unsupported value: {_go(e.instance)}: "
                         "supported values: " + ", ".join(_go(v) for v in e.validator_value)))
        elif e.validator == "type":
            got = {str: "string", bool: "boolean", int: "integer", float: "number",
                   list: "array", dict: "object"}.get(type(e.instance), "null")
            errs.append((path, "FieldValueInvalid", (f'Invalid value: "{got}": {path} in body must '
                         f'be of type {e.validator_value}: "{got}"')))
        else:
            errs.append(_invalid(path, e.instance, e.message))
    return errs


# -- patches ---------------------------------------------------------------------------------
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
              "env": "name", "volumes": "name", "volumeMounts": "mountPath",
              "volumeDevices": "devicePath", "conditions": "type", "containerStatuses": "name",
              "initContainerStatuses": "name", "imagePullSecrets": "name", "ownerReferences": "uid",
              "hostAliases": "ip", "readinessGates": "conditionType", "ports": None}


def strategic_merge(orig, patch):
    """Strategic merge patch: lists with a patchMergeKey merge by that key, ``finalizers``
    merge as a set, ``$patch: replace|delete`` and ``$deleteFromPrimitiveList`` work."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            out[field] = [x for x in out.get(field, []) if x not in v]
        if k.startswith("$"):
            continue
        cur = out.get(k)
        if v is None or (isinstance(v, dict) and v.get("$patch") == "delete"):
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(cur, list) and k == "finalizers":
            out[k] = cur + [x for x in v if x not in cur]
        elif isinstance(v, list) and isinstance(cur, list) and k in MERGE_KEYS:
            key = MERGE_KEYS[k] or ("containerPort" if any(
                isinstance(x, dict) and "containerPort" in x for x in cur + v) else "port")
            out[k] = _merge_list(cur, v, key)
        elif isinstance(v, dict):
            out[k] = strategic_merge(cur, v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _merge_list(cur: list, patch: list, key: str) -> list:
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [x for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    out = copy.deepcopy(cur)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            out.append(copy.deepcopy(item))
            continue
        at = next((i for i, x in enumerate(out)
                   if isinstance(x, dict) and x.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                out.pop(at)
        elif at is None:
            out.append(strategic_merge({}, item))
        else:
            out[at] = strategic_merge(out[at], item)
    return out


def merge_patch(orig, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc, ops: list):
    """RFC 6902 JSON patch."""
    doc = copy.deepcopy(doc)

    def walk(pointer: str):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        return parent, parts[-1]

    def get(pointer):
        parent, last = walk(pointer)
        return copy.deepcopy(parent[int(last)] if isinstance(parent, list) else parent[last])

    def add(pointer, value):
        parent, last = walk(pointer)
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), value)
        else:
            parent[last] = value

    def remove(pointer):
        parent, last = walk(pointer)
        del parent[int(last) if isinstance(parent, list) else last]

    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        try:
            if kind == "add":
                add(path, copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(path)
            elif kind == "replace":
                remove(path)
                add(path, copy.deepcopy(op["value"]))
            elif kind in ("move", "copy"):
                value = get(op["from"])
                if kind == "move":
                    remove(op["from"])
                add(path, value)
            elif kind == "test":
                if get(path) != op.get("value"):
                    raise ValueError(f"testing value {path} failed")
            else:
                raise ValueError(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in "
                           f"our request: {kind} operation does not apply: {e}") from None
    return doc


def apply_patch(res: Res, old: dict, content_type: str, raw: bytes) -> dict:
    ctype = (content_type or "").split(";")[0].strip()
    accepted = ["application/json-patch+json", "application/merge-patch+json",
                *([] if res.custom else ["application/strategic-merge-patch+json"])]
    if ctype not in accepted:
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                       f"format - accepted media types include: {', '.join(accepted)}")
    try:
        patch = json.loads(raw or b"null")
    except ValueError as e:
        raise ApiError(400, "BadRequest", f"error decoding patch: {e}") from None
    if ctype == "application/json-patch+json":
        if not isinstance(patch, list):
            raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of "
                           "type jsonpatch.Patch")
        return json_patch(old, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "BadRequest", "json: cannot unmarshal into Go value of type "
                       "map[string]interface {}")
    return (merge_patch if ctype == "application/merge-patch+json" else strategic_merge)(old, patch)


class Store:
    def __init__(self, gc_delay: float = 0.0, crd_file: Path | None = CRD_FILE):
        self.lock = threading.RLock()
        self.objs: dict[tuple, dict] = {}  # (group, plural, namespace, name) -> object
        self.uids: dict[str, tuple] = {}
        self.rv, self.ips, self.gc_delay = 0, 10, gc_delay
        self.timers: list[threading.Timer] = []
        self.schemas = load_crd_schemas(crd_file)
        self._collecting = self._dirty = False
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.add_namespace(ns)

    @staticmethod
    def key(res: Res, ns: str | None, name: str) -> tuple:
        return (res.group, res.plural, ns or "", name)

    def _write(self, res: Res, obj: dict) -> dict:
        self.rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.rv)
        self.objs[self.key(res, meta.get("namespace"), meta["name"])] = obj
        self.uids[meta["uid"]] = self.key(res, meta.get("namespace"), meta["name"])
        return obj

    def _find(self, res: Res, ns: str | None, name: str) -> dict:
        obj = self.objs.get(self.key(res, ns, name))
        if obj is None:
            raise res.not_found(name)
        return obj

    def _by_uid(self, uid: str) -> dict | None:
        return self.objs.get(self.uids.get(uid, ()))

    @staticmethod
    def _res_of(obj: dict) -> Res:
        group = obj["apiVersion"].rpartition("/")[0]
        return next(r for r in RESOURCES.values() if r.group == group and r.kind == obj["kind"])

    def _owned(self, ns: str, plural: str, uid: str) -> list[dict]:
        return [o for (_, p, n, _), o in sorted(self.objs.items()) if p == plural and n == ns
                and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))]

    def _later(self, fn) -> None:
        if self.gc_delay <= 0:
            return fn()

        def run():
            with self.lock:
                fn()
        timer = threading.Timer(self.gc_delay, run)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def add_namespace(self, name: str) -> dict:
        with self.lock:
            if self.key(R["namespaces"], None, name) not in self.objs:
                self.create(R["namespaces"], None, {"metadata": {"name": name}})
            return self.get(R["namespaces"], None, name)

    def objects(self, plural: str, namespace: str | None = None) -> list[dict]:
        """Stored objects of a resource ("pods", "ingressroutes.traefik.io", ...), for tests."""
        with self.lock:
            return [copy.deepcopy(o) for (g, p, n, _), o in sorted(self.objs.items())
                    if plural in (p, f"{p}.{g}") and namespace in (None, n)]

    # -- the REST verbs --------------------------------------------------------------------
    def get(self, res: Res, ns: str | None, name: str) -> dict:
        with self.lock:
            return copy.deepcopy(self._find(res, ns, name))

    def list(self, res: Res, ns: str | None, query: dict) -> dict:
        with self.lock:
            labels = parse_label_selector(query.get("labelSelector", ""))
            fields = []
            allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get(res.plural, set())
            for part in filter(None, map(str.strip, query.get("fieldSelector", "").split(","))):
                m = re.fullmatch(r"([^=!]+)(==|=|!=)(.*)", part)
                if not m or m.group(1) not in allowed:
                    label = part.split("=")[0]
                    raise ApiError(400, "BadRequest", f"field label not supported: {label}")
                fields.append(({"source": "source.component"}.get(m[1], m[1]), m[2], m[3]))
            items = []
            for (g, p, n, _), o in sorted(self.objs.items()):
                if (g, p) == (res.group, res.plural) and (not ns or n == ns) \
                        and match_labels(labels, o["metadata"].get("labels") or {}) \
                        and all((str(dig(o, f, "")) == v) == (op != "!=") for f, op, v in fields):
                    item = copy.deepcopy(o)
                    if not res.custom:  # items of built-in lists carry no kind/apiVersion
                        del item["kind"], item["apiVersion"]
                    items.append(item)
            meta = {"resourceVersion": str(self.rv), **({"continue": ""} if res.custom else {})}
            return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta,
                    "items": items}

    def create(self, res: Res, ns: str | None, body, manager: str = "fake",
               react: bool = True) -> dict:
        with self.lock:
            obj = self._decode(res, ns, body)
            meta = obj["metadata"]
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + rand5()
            if meta.get("resourceVersion"):
                msg = "resourceVersion should not be set on objects to be created"
                raise ApiError(500, "InternalError", f"Internal error occurred: {msg}",
                               {"causes": [{"message": msg}]})
            for k in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
                      "managedFields", "creationTimestamp", "generation"):
                meta.pop(k, None)
            if res.status_sub and not res.custom:
                obj.pop("status", None)
            default_object(res.plural, obj, None, self)
            validate_object(res, obj, None, self._validator(res))
            nsobj = self.objs.get(self.key(R["namespaces"], None, ns)) if ns else None
            if ns and nsobj is None:
                raise R["namespaces"].not_found(ns)
            if nsobj and nsobj["metadata"].get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", f'{res.qualified} "{meta["name"]}" is forbidden: '
                               f"unable to create new content in namespace {ns} because it is "
                               "being terminated", res.details(meta["name"]))
            if self.key(res, ns, meta["name"]) in self.objs:
                raise ApiError(409, "AlreadyExists", f'{res.qualified} "{meta["name"]}" already '
                               "exists", res.details(meta["name"]))
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
            if res.generation:
                meta["generation"] = 1
            meta["managedFields"] = [{"manager": manager, "operation": "Update",
                                      "apiVersion": res.api_version,
                                      "time": meta["creationTimestamp"],
                                      "fieldsType": "FieldsV1", "fieldsV1": {}}]
            created = copy.deepcopy(self._write(res, obj))
            if react:
                self._react(res, obj)
            if meta.get("ownerReferences"):
                self._later(self.collect)
            return created

    def _validator(self, res: Res):
        return self.schemas.get((res.group, res.plural), (None, None))[1]

    def _decode(self, res: Res, ns: str | None, body) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "the object provided is unrecognized")
        if res.custom and not body.get("kind"):
            raise ApiError(400, "BadRequest", f"Object 'Kind' is missing in '{json.dumps(body)}'")
        obj = copy.deepcopy(body)
        for field, want in (("apiVersion", res.api_version), ("kind", res.kind)):
            if obj.setdefault(field, want) != want:
                raise ApiError(400, "BadRequest", f"the {field} of the provided object "
                               f"({obj[field]}) does not match the expected {want}")
        meta = obj.setdefault("metadata", {})
        if res.namespaced and meta.setdefault("namespace", ns) != ns:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match "
                           "the namespace sent on the request")
        if not res.namespaced:
            meta.pop("namespace", None)
        for field in ("labels", "annotations"):
            if any(not isinstance(v, str) for v in (meta.get(field) or {}).values()):
                raise ApiError(400, "BadRequest", "json: cannot unmarshal non-string into Go "
                               f"struct field ObjectMeta.metadata.{field} of type string")
        if res.custom and (res.group, res.plural) in self.schemas:
            obj = prune(obj, self.schemas[(res.group, res.plural)][0], root=True)
        return obj

    def update(self, res: Res, ns: str | None, name: str, body, sub: str | None = None,
               patch: tuple[str, bytes] | None = None) -> dict:
        """PUT (``body``) or PATCH (``patch`` = (content type, raw body)) of an object or of
        its ``status``/``scale`` subresource; answers the object as written."""
        with self.lock:
            old = self._find(res, ns, name)
            if sub == "scale":
                return self._scale(res, old, body, patch)
            if patch:
                body = apply_patch(res, old, *patch)
            new = self._decode(res, ns, body)
            meta, old_meta = new["metadata"], old["metadata"]
            if meta.get("name", name) != name:
                raise ApiError(400, "BadRequest", f"the name of the object ({meta['name']}) does "
                               f"not match the name on the URL ({name})")
            if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
                raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {res.qualified} "
                               f'"{name}": the object has been modified; please apply your changes '
                               "to the latest version and try again", res.details(name))
            if res.custom and not patch and not meta.get("resourceVersion"):
                raise ApiError(422, "Invalid", f'{res.qualified_kind} "{name}" is invalid: metadata'
                               ".resourceVersion: Invalid value: 0x0: must be specified for an "
                               "update", {**res.details(name), "kind": res.kind})
            for k in ("name", "uid", "creationTimestamp", "generation", "managedFields",
                      "deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
                meta.pop(k, None)
                if k in old_meta:
                    meta[k] = copy.deepcopy(old_meta[k])
            if sub == "status":
                new = {**copy.deepcopy(old), "status": new.get("status") or {}}
            elif res.status_sub:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
            default_object(res.plural, new, old, self)
            validate_object(res, new, old, self._validator(res))
            if new == old:
                return copy.deepcopy(old)
            if res.generation and new.get("spec") != old.get("spec"):
                meta["generation"] = old_meta.get("generation", 1) + 1
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                gone = self._remove(res, new)  # the last finalizer went: deletion completes
                self._later(self.collect)
                return gone
            answer = copy.deepcopy(self._write(res, new))
            if sub != "status" or res.plural == "pods":
                self._react(res, new)
            if meta.get("ownerReferences") or old_meta.get("ownerReferences"):
                self._later(self.collect)
            return answer

    def _scale(self, res: Res, obj: dict, body, patch) -> dict:
        m = obj["metadata"]
        if res.plural not in ("deployments", "replicasets"):
            raise res.not_found(m["name"])
        scale = {"kind": "Scale", "apiVersion": "autoscaling/v1",
                 "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                "creationTimestamp")},
                 "spec": {"replicas": obj["spec"].get("replicas", 1)},
                 "status": {"replicas": dig(obj, "status.replicas", 0), "selector": ",".join(
                     f"{k}={v}" for k, v in sorted(dig(obj, "spec.selector.matchLabels").items()))}}
        body = apply_patch(res, scale, *patch) if patch else body
        if body is None:
            return scale
        new = copy.deepcopy(obj)
        new["spec"]["replicas"] = dig(body, "spec.replicas")
        self.update(res, m["namespace"], m["name"], new)
        return self._scale(res, self._find(res, m["namespace"], m["name"]), None, None)

    def delete(self, res: Res, ns: str | None, name: str, opts: dict) -> tuple[int, dict]:
        with self.lock:
            obj = self._find(res, ns, name)
            meta = obj["metadata"]
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                want = (opts.get("preconditions") or {}).get(field)
                if want and want != meta[field]:
                    raise ApiError(409, "Conflict", (
                        f'Operation cannot be fulfilled on {res.qualified} "{name}": Precondition '
                        f"failed: {label} in precondition: {want}, {label} in object meta: "
                        f"{meta[field]}"), res.details(name))
            policy = opts.get("propagationPolicy")
            if policy is None and opts.get("orphanDependents") is not None:
                policy = "Orphan" if opts["orphanDependents"] else "Background"
            if policy not in (None, "Orphan", "Background", "Foreground"):
                raise ApiError(422, "Invalid", (
                    'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                    f'value: "{policy}": supported values: "Foreground", "Background", "Orphan", '
                    '"nil"'),
                    {"kind": "DeleteOptions"})
            if meta.get("deletionTimestamp"):  # already on its way out
                return 200, copy.deepcopy(obj)
            finalizers = list(meta.get("finalizers") or [])
            if policy in ("Foreground", "Orphan") and res.plural != "namespaces":
                finalizers.append({"Foreground": "foregroundDeletion", "Orphan": "orphan"}[policy])
            if finalizers or res.plural == "namespaces":  # deleted later, answered with the object
                meta.update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
                if finalizers:
                    meta["finalizers"] = finalizers
                if res.plural == "namespaces":
                    obj["status"] = {"phase": "Terminating"}
                answer = copy.deepcopy(self._write(res, obj))
                self._later(self.collect)
                return (202 if opts.get("orphanDependents") is False else 200), answer
            gone = self._remove(res, obj)
            self._later(self.collect)
            if res.returns_object:
                return 200, gone
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": res.details(name, uid=meta["uid"])}

    def _remove(self, res: Res, obj: dict, react: bool = True) -> dict:
        meta = obj["metadata"]
        self.objs.pop(self.key(res, meta.get("namespace"), meta["name"]), None)
        self.uids.pop(meta["uid"], None)
        if react and res.plural == "pods":
            self._pod_changed(obj)
        elif react and res.plural == "replicasets":
            self._owner_sync(obj)
        return copy.deepcopy(obj)

    # -- garbage collector and namespace controller --------------------------------------------
    def collect(self) -> None:
        """The garbage collector, run until nothing changes: dependents whose owners are all gone
        (or being deleted in the foreground) go, references to vanished or orphaning owners are
        dropped, and deletions waiting on that (and terminating namespaces) complete."""
        if self._collecting:
            self._dirty = True
            return
        self._collecting = self._dirty = True
        try:
            while self._dirty:
                self._dirty = False
                for key in sorted(self.objs):
                    if key in self.objs:
                        self._collect_one(self.objs[key])
        finally:
            self._collecting = False

    def _collect_one(self, obj: dict) -> None:
        meta, res = obj["metadata"], self._res_of(obj)
        if res.plural == "namespaces" and meta.get("deletionTimestamp"):
            for k in [k for k in self.objs if k[2] == meta["name"]]:
                self._remove(self._res_of(self.objs[k]), self.objs[k], react=False)
            self._remove(res, obj)
            self._dirty = True
            return
        refs = meta.get("ownerReferences") or []
        states = [self._owner_state(ref, meta.get("namespace", "")) for ref in refs]
        solid = [ref for ref, state in zip(refs, states) if state == "solid"]
        # with a solid owner, references to the others go; without, the object goes unless
        # every owner is orphaning it
        keep = solid or [ref for ref, state in zip(refs, states) if state != "orphan"]
        if refs and not solid and keep:
            self._remove(res, obj)
            self._dirty = True
            return
        if keep != refs:
            meta["ownerReferences"] = keep
            if not keep:
                del meta["ownerReferences"]
            self._write(res, obj)
            self._dirty = True
        waiting = [f for f in meta.get("finalizers") or [] if f in ("orphan", "foregroundDeletion")]
        if meta.get("deletionTimestamp") and waiting and not any(
                r.get("uid") == meta["uid"] for o in self.objs.values()
                for r in o["metadata"].get("ownerReferences", [])):
            meta["finalizers"] = [f for f in meta["finalizers"] if f not in waiting]
            if not meta["finalizers"]:
                self._remove(res, obj)
            else:
                self._write(res, obj)
            self._dirty = True

    def _owner_state(self, ref: dict, namespace: str) -> str:
        owner = self._by_uid(ref.get("uid", ""))
        if owner is None or owner["metadata"].get("namespace", "") not in ("", namespace):
            return "gone"  # a namespaced owner must be in the dependent's namespace
        finalizers = owner["metadata"].get("finalizers") or []
        if owner["metadata"].get("deletionTimestamp"):
            if "orphan" in finalizers:
                return "orphan"
            if "foregroundDeletion" in finalizers:
                return "waiting"
        return "solid"

    # -- deployment and replicaset controllers -------------------------------------------------
    def _react(self, res: Res, obj: dict) -> None:
        if res.plural == "deployments":
            self._sync_deployment(obj)
        elif res.plural == "replicasets":
            self._sync_replicaset(obj)
        elif res.plural == "pods":
            self._pod_changed(obj)

    def _controller(self, obj: dict, kind: str) -> dict | None:
        for ref in obj["metadata"].get("ownerReferences", []):
            owner = self._by_uid(ref.get("uid", ""))
            if ref.get("controller") and ref.get("kind") == kind and owner \
                    and not owner["metadata"].get("deletionTimestamp"):
                return owner
        return None

    def _pod_changed(self, pod: dict) -> None:
        rs = self._controller(pod, "ReplicaSet")
        if rs is not None:
            self._sync_replicaset(rs)

    def _owner_sync(self, rs: dict) -> None:
        dep = self._controller(rs, "Deployment")
        if dep is not None:
            self._sync_deployment(dep)

    def _sync_deployment(self, dep: dict) -> None:
        meta, spec = dep["metadata"], dep["spec"]
        if meta.get("deletionTimestamp"):
            return
        ns, desired, template = meta["namespace"], spec.get("replicas", 1), spec["template"]
        digest = str(zlib.crc32(json.dumps(template, sort_keys=True).encode()))
        pod_hash = "".join(ALNUM[ord(c) % len(ALNUM)] for c in digest)
        rss = self._owned(ns, "replicasets", meta["uid"])
        new = next((rs for rs in rss
                    if dig(rs, "metadata.labels.pod-template-hash") == pod_hash), None)
        olds = [rs for rs in rss if rs is not new]
        recreate = dig(spec, "strategy.type") == "Recreate"
        if new is None:
            revision = str(1 + max((int(dig(rs, "metadata.annotations", {}).get(
                "deployment.kubernetes.io/revision", "0")) for rs in rss), default=0))
            if recreate:
                for rs in olds:
                    self._scale_rs(rs, 0)
            labels = {**(template["metadata"].get("labels") or {}), "pod-template-hash": pod_hash}
            selector = copy.deepcopy(spec["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
            rs_template = copy.deepcopy(template)
            rs_template["metadata"]["labels"] = labels
            annotations = {"deployment.kubernetes.io/desired-replicas": str(desired),
                           "deployment.kubernetes.io/max-replicas": str(desired + 1),
                           "deployment.kubernetes.io/revision": revision}
            created = self.create(R["replicasets"], ns, {"metadata": {
                "name": f"{meta['name']}-{pod_hash}", "labels": labels, "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": meta["name"], "uid": meta["uid"], "controller": True,
                                     "blockOwnerDeletion": True}]},
                "spec": {"replicas": desired, "selector": selector, "template": rs_template}},
                manager="kube-controller-manager", react=False)
            new = self._find(R["replicasets"], ns, created["metadata"]["name"])
            self._sync_replicaset(new, notify=False)
            meta.setdefault("annotations", {})["deployment.kubernetes.io/revision"] = revision
            self._write(R["deployments"], dep)
        elif new["spec"].get("replicas") != desired:
            self._scale_rs(new, desired)
        ready = sum(is_ready(p) for p in self._active_pods(new))
        for rs in olds:
            if recreate or ready >= desired:
                self._scale_rs(rs, 0)
        history = [rs for rs in olds if not rs["spec"].get("replicas")]
        for rs in history[:max(0, len(history) - spec.get("revisionHistoryLimit", 10))]:
            self._remove(R["replicasets"], rs, react=False)
        self._deployment_status(dep, new)

    def _deployment_status(self, dep: dict, new: dict) -> None:
        spec, old = dep["spec"], dep.get("status") or {}
        desired = spec.get("replicas", 1)
        rss = self._owned(dep["metadata"]["namespace"], "replicasets", dep["metadata"]["uid"])
        pods = [p for rs in rss for p in self._active_pods(rs)]
        ready, updated = sum(is_ready(p) for p in pods), len(self._active_pods(new))
        max_unavailable = 0
        if dig(spec, "strategy.type") != "Recreate":
            ru = dig(spec, "strategy.rollingUpdate", {})
            surge = self._percent(ru.get("maxSurge", "25%"), desired, True)
            max_unavailable = self._percent(ru.get("maxUnavailable", "25%"), desired, False)
            max_unavailable = 1 if surge == max_unavailable == 0 else max_unavailable
        stamp = now()

        def condition(kind, status, reason, message):
            prev = next((c for c in old.get("conditions", []) if c["type"] == kind), {})
            same = prev.get("status") == status
            updated_at = prev["lastUpdateTime"] if same and prev["reason"] == reason else stamp
            return {"type": kind, "status": status, "lastUpdateTime": updated_at,
                    "lastTransitionTime": prev["lastTransitionTime"] if same else stamp,
                    "reason": reason, "message": message}
        available = ready >= desired - max_unavailable
        complete = updated == desired == len(pods) and ready >= desired
        rs_name = new["metadata"]["name"]
        wanted = sum(rs["spec"].get("replicas", 0) for rs in rss)
        status = {"observedGeneration": dep["metadata"].get("generation", 1),
                  "replicas": len(pods), "updatedReplicas": updated, "readyReplicas": ready,
                  "availableReplicas": ready, "unavailableReplicas": max(wanted - ready, 0),
                  "conditions": [
                      condition("Available", str(available), *(
                          ("MinimumReplicasAvailable", "Deployment has minimum availability.")
                          if available else ("MinimumReplicasUnavailable",
                                             "Deployment does not have minimum availability."))),
                      condition("Progressing", "True", *(
                          ("NewReplicaSetAvailable",
                           f'ReplicaSet "{rs_name}" has successfully progressed.') if complete else
                          ("ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')))]}
        status = {k: v for k, v in status.items() if v}  # the real status omits zero counts
        if status != old:
            dep["status"] = status
            self._write(R["deployments"], dep)

    @staticmethod
    def _percent(value, total: int, round_up: bool) -> int:
        if isinstance(value, int):
            return value
        share = int(str(value).rstrip("%")) * total
        return -(-share // 100) if round_up else share // 100

    def _active_pods(self, rs: dict) -> list[dict]:
        return [p for p in self._owned(rs["metadata"]["namespace"], "pods", rs["metadata"]["uid"])
                if dig(p, "status.phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")]

    def _scale_rs(self, rs: dict, replicas: int) -> None:
        if rs["spec"].get("replicas") != replicas:
            rs["spec"]["replicas"] = replicas
            rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
            rs["metadata"].setdefault("annotations", {})[
                "deployment.kubernetes.io/desired-replicas"] = str(replicas)
            self._write(R["replicasets"], rs)
        self._sync_replicaset(rs, notify=False)

    def _sync_replicaset(self, rs: dict, notify: bool = True) -> None:
        meta, want = rs["metadata"], rs["spec"].get("replicas", 1)
        if meta.get("deletionTimestamp") or self._by_uid(meta["uid"]) is not rs:
            return
        pods, template = self._active_pods(rs), rs["spec"]["template"]
        while len(pods) < want:
            pods.append(self.create(R["pods"], meta["namespace"], {
                "metadata": {"generateName": f"{meta['name']}-", **{
                    k: copy.deepcopy(v) for k, v in template["metadata"].items()
                    if k in ("labels", "annotations") and v},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                         "name": meta["name"], "uid": meta["uid"],
                                         "controller": True, "blockOwnerDeletion": True}]},
                "spec": copy.deepcopy(template["spec"])}, manager="kube-controller-manager",
                react=False))
        for pod in sorted(pods, key=is_ready)[:max(0, len(pods) - want)]:
            self._remove(R["pods"], self.objs[self.uids[pod["metadata"]["uid"]]], react=False)
        pods = self._active_pods(rs)
        ready = sum(is_ready(p) for p in pods)
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": meta.get("generation", 1)}
        status = {k: v for k, v in status.items() if v}
        if status != rs.get("status"):
            rs["status"] = status
            self._write(R["replicasets"], rs)
        if notify:
            self._owner_sync(rs)
