"""Play the kubelet: drive Pod status the way a node would, through the real
`kubernetes` client (CoreV1Api), so the helpers work against any API server —
the real control plane of tests/kube_real.py (which has no kubelet) or a fake.

Each helper replaces the Pod's whole status with one JSON merge patch (lists
such as ``conditions`` and ``containerStatuses`` are replaced, not merged), so
the helpers can be called in any order on the same Pod.

    pod = wait_for_pod(core, "apps", "app.kubernetes.io/instance=demo")
    make_pulling(core, "apps", pod.metadata.name)
    emit_event(core, "apps", pod, "Pulling", 'Pulling image "example/app:1"')
    make_ready(core, "apps", pod.metadata.name)
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client import CoreV1Api, V1Pod

from tests.waiting import wait_for

REQUEST_TIMEOUT = 10  # seconds, passed to every API call
NODE_NAME = "dormouse-test-node"
HOST_IP = "10.0.0.10"
MERGE_PATCH = "application/merge-patch+json"


def pods_for(core: CoreV1Api, namespace: str, label_selector: str) -> list[V1Pod]:
    """The Pods matching ``label_selector``, oldest first."""
    pods = core.list_namespaced_pod(
        namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT
    ).items
    return sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))


def wait_for_pod(core: CoreV1Api, ns: str, selector: str, timeout: float = 30) -> V1Pod:
    """Wait until the controllers have created a (not terminating) Pod matching
    ``selector`` and return the oldest one."""

    def live_pod() -> V1Pod | None:
        live = [p for p in pods_for(core, ns, selector) if p.metadata.deletion_timestamp is None]
        return live[0] if live else None

    return wait_for(live_pod, timeout, f"a Pod matching {selector!r} in namespace {ns}")


def make_ready(core: CoreV1Api, ns: str, pod_name: str) -> V1Pod:
    """Running and Ready: every container running and ready, no restarts."""
    pod = _read(core, ns, pod_name)
    now = _now()
    statuses = [
        _container_status(pod, c, ready=True, state={"running": {"startedAt": now}})
        for c in pod.spec.containers
    ]
    return _set_status(core, ns, pod, _scheduled(pod, now, "Running", statuses, ready=True))


def make_waiting(
    core: CoreV1Api,
    ns: str,
    pod_name: str,
    reason: str,
    message: str,
    restart_count: int | None = None,
) -> V1Pod:
    """Every container waiting with ``reason`` (CrashLoopBackOff,
    ImagePullBackOff, ErrImagePull, ...). A CrashLoopBackOff Pod is Running
    with restarts (default 3) and a last state that terminated with an error;
    the image-pull reasons leave it Pending with no restarts."""
    pod = _read(core, ns, pod_name)
    now = _now()
    crash = reason == "CrashLoopBackOff"
    if restart_count is None:
        restart_count = 3 if crash else 0
    statuses = []
    for c in pod.spec.containers:
        status = _container_status(
            pod,
            c,
            ready=False,
            state={"waiting": {"reason": reason, "message": message}},
            restart_count=restart_count,
        )
        if crash:
            status["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": now,
                    "finishedAt": now,
                    "containerID": status["containerID"],
                }
            }
        else:
            _not_created(status)
        statuses.append(status)
    return _set_status(core, ns, pod, _scheduled(pod, now, "Running" if crash else "Pending", statuses))


def make_unschedulable(core: CoreV1Api, ns: str, pod_name: str, message: str) -> V1Pod:
    """Pending, never scheduled: PodScheduled=False, reason Unschedulable
    (e.g. message "0/3 nodes are available: 3 Insufficient memory.")."""
    pod = _read(core, ns, pod_name)
    return _set_status(
        core,
        ns,
        pod,
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": None,
                    "lastTransitionTime": _now(),
                }
            ],
            "containerStatuses": None,
            "hostIP": None,
            "podIP": None,
            "podIPs": None,
            "startTime": None,
        },
    )


def make_pulling(core: CoreV1Api, ns: str, pod_name: str) -> V1Pod:
    """Scheduled, images still being pulled: Pending, containers waiting with
    reason ContainerCreating."""
    pod = _read(core, ns, pod_name)
    now = _now()
    statuses = [
        _not_created(
            _container_status(pod, c, ready=False, state={"waiting": {"reason": "ContainerCreating"}})
        )
        for c in pod.spec.containers
    ]
    return _set_status(core, ns, pod, _scheduled(pod, now, "Pending", statuses, pod_ip=False))


def emit_event(
    core: CoreV1Api,
    ns: str,
    pod: V1Pod | str,
    reason: str,
    message: str,
    type: str = "Normal",
    container: str | None = None,
) -> client.CoreV1Event:
    """Record a core/v1 Event about ``pod`` from the kubelet, as a node does
    (e.g. reason "Pulling", "Failed", "BackOff"). ``pod`` is a V1Pod or a name;
    ``container`` (default: the first container) goes in the fieldPath."""
    if type not in ("Normal", "Warning"):
        raise ValueError(f"event type must be Normal or Warning, not {type!r}")
    if isinstance(pod, str):
        pod = _read(core, ns, pod)
    if container is None and pod.spec and pod.spec.containers:
        container = pod.spec.containers[0].name
    now = datetime.now(UTC)
    body = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{pod.metadata.name}.", namespace=ns),
        involved_object=client.V1ObjectReference(
            api_version="v1",
            kind="Pod",
            namespace=ns,
            name=pod.metadata.name,
            uid=pod.metadata.uid,
            resource_version=pod.metadata.resource_version,
            field_path=f"spec.containers{{{container}}}" if container else None,
        ),
        reason=reason,
        message=message,
        type=type,
        count=1,
        first_timestamp=now,
        last_timestamp=now,
        source=client.V1EventSource(component="kubelet", host=NODE_NAME),
        reporting_component="kubelet",
        reporting_instance=NODE_NAME,
    )
    return core.create_namespaced_event(ns, body, _request_timeout=REQUEST_TIMEOUT)


# -- internals ---------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(core: CoreV1Api, ns: str, name: str) -> V1Pod:
    return core.read_namespaced_pod(name, ns, _request_timeout=REQUEST_TIMEOUT)


def _set_status(core: CoreV1Api, ns: str, pod: V1Pod, status: dict[str, Any]) -> V1Pod:
    # A merge patch replaces lists wholesale; null removes a field.
    # qosClass (set by the API server at creation) is left as it is.
    return core.patch_namespaced_pod_status(
        pod.metadata.name,
        ns,
        {"status": status},
        _request_timeout=REQUEST_TIMEOUT,
        _content_type=MERGE_PATCH,
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _pod_ip(pod: V1Pod) -> str:
    h = int(_digest(pod.metadata.uid or pod.metadata.name)[:4], 16)
    return f"10.244.{h // 254 % 254 + 1}.{h % 254 + 1}"


def _container_status(
    pod: V1Pod, container: Any, *, ready: bool, state: dict[str, Any], restart_count: int = 0
) -> dict[str, Any]:
    image = container.image or ""
    return {
        "name": container.name,
        "image": image,
        "imageID": f"docker-pullable://{image.split(':')[0]}@sha256:{_digest(image)}",
        "containerID": f"containerd://{_digest((pod.metadata.uid or '') + container.name)}",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restart_count,
        "state": state,
        "lastState": {},
    }


def _not_created(status: dict[str, Any]) -> dict[str, Any]:
    """A container status before its container exists: no container ID, no image ID."""
    status.pop("containerID")
    status["imageID"] = ""
    return status


def _scheduled(
    pod: V1Pod,
    now: str,
    phase: str,
    statuses: list[dict[str, Any]],
    *,
    ready: bool = False,
    pod_ip: bool = True,
) -> dict[str, Any]:
    """The status of a Pod on the node since ``now``: ``phase``, ``statuses``
    for its containers, Ready or not (naming the unready containers), with its
    IP or (still being set up) none."""
    names = ",".join(c.name for c in pod.spec.containers)
    ip = _pod_ip(pod) if pod_ip else None
    return {
        "phase": phase,
        "conditions": _conditions(
            now,
            scheduled=True,
            initialized=True,
            ready=ready,
            not_ready_message=f"containers with unready status: [{names}]",
        ),
        "containerStatuses": statuses,
        "hostIP": HOST_IP,
        "podIP": ip,
        "podIPs": [{"ip": ip}] if pod_ip else None,
        "startTime": now,
    }


def _conditions(
    now: str, *, scheduled: bool, initialized: bool, ready: bool, not_ready_message: str = ""
) -> list[dict[str, Any]]:
    def cond(type_: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "type": type_,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
        if not ok and reason:
            c["reason"] = reason
            c["message"] = message
        return c

    return [
        cond("Initialized", initialized),
        cond("Ready", ready, "ContainersNotReady", not_ready_message),
        cond("ContainersReady", ready, "ContainersNotReady", not_ready_message),
        cond("PodScheduled", scheduled),
    ]
