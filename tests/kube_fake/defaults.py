"""Defaulting and admission in the fake apiserver (tests/kube_fake/server.py): the fields a
kube-apiserver 1.20 fills in on create and update, and what its admission plugins add to
new pods."""

from __future__ import annotations

import base64
import binascii
from typing import Protocol

from .resources import ApiError, dig, rand5


class Addresses(Protocol):
    """Where service defaulting counts the cluster IPs and node ports it hands out."""

    ips: int


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
            for k, v in (
                ("timeoutSeconds", 1),
                ("periodSeconds", 10),
                ("successThreshold", 1),
                ("failureThreshold", 3),
            ):
                probe.setdefault(k, v)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("scheme", "HTTP")


def _default_pod_spec(spec: dict) -> None:
    for k, v in (
        ("restartPolicy", "Always"),
        ("terminationGracePeriodSeconds", 30),
        ("dnsPolicy", "ClusterFirst"),
        ("securityContext", {}),
        ("schedulerName", "default-scheduler"),
        ("enableServiceLinks", True),
    ):
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
    if all(
        {"cpu", "memory"} <= set(r.get("limits") or {})
        and all((r.get("requests") or {}).get(k) == r["limits"][k] for k in ("cpu", "memory"))
        for r in resources
    ):
        return "Guaranteed"
    return "Burstable"


def _admit_pod(pod: dict) -> None:
    """What the ServiceAccount, Priority and DefaultTolerationSeconds admission plugins add."""
    spec = pod["spec"]
    spec["serviceAccount"] = spec.setdefault("serviceAccountName", "default")
    if spec.get("automountServiceAccountToken") is not False:
        volume = f"{spec['serviceAccountName']}-token-{rand5()}"
        spec.setdefault("volumes", []).append(
            {"name": volume, "secret": {"secretName": volume, "defaultMode": 420}}
        )
        for c in spec.get("containers") or []:
            c.setdefault("volumeMounts", []).append(
                {
                    "name": volume,
                    "readOnly": True,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                }
            )
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    pod["status"] = {"phase": "Pending", "qosClass": _qos(spec)}


def default_object(plural: str, obj: dict, old: dict | None, store: Addresses) -> None:
    spec = (
        obj.setdefault("spec", {})
        if plural in ("pods", "services", "deployments", "replicasets", "namespaces")
        else None
    )
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
                port["nodePort"] = (
                    old_ports[i].get("nodePort") if i < len(old_ports) else None
                ) or 30000 + store.ips % 2768
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj.setdefault("status", {"loadBalancer": {}})
    elif plural == "secrets":
        obj.setdefault("type", "Opaque")
        data = obj.get("data") or {}
        for v in data.values():
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
