"""What a pod's state means for a person waiting on the viz page.

A pure function of the pod (and its recent events) as plain dicts, as the API
server sends them: no I/O, so every case is a table test.
"""

from __future__ import annotations

from typing import Any

from .base import BackendStatus

PULL_FAILURES = {
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
}
CONFIG_FAILURES = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
MESSAGE_CAP = 400


def _short(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= MESSAGE_CAP else text[: MESSAGE_CAP - 1] + "…"


ENDED_PHASES = ("Failed", "Succeeded")


def current_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The pod that speaks for a deployment, of all that carry its labels.

    Pods being deleted are left out. A pod still in play wins over one that
    has ended (an evicted pod and the replacement its ReplicaSet made are
    often created in the same second, which ``creationTimestamp`` cannot tell
    apart), then the newest, then by name so the choice never depends on the
    listing's order. Only when every pod has ended does an ended one speak.
    None when there is no pod."""
    candidates = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not candidates:
        return None

    def rank(pod: dict[str, Any]) -> tuple[bool, str, str]:
        meta = pod.get("metadata") or {}
        in_play = (pod.get("status") or {}).get("phase") not in ENDED_PHASES
        return in_play, meta.get("creationTimestamp") or "", meta.get("name") or ""

    return max(candidates, key=rank)


def pod_status(pod: dict[str, Any], events: list[dict[str, Any]] | None = None) -> BackendStatus:
    """``running`` when the pod is Ready; ``failed`` fast, with a reason, when
    it cannot get there (image, crash loop, unschedulable, bad config);
    otherwise ``starting`` with the phase it is in."""
    status = pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    containers = status.get("containerStatuses") or []
    images = {c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}

    if status.get("phase") == "Failed":
        why = _short(status.get("message") or status.get("reason")) or "the cluster gave no reason"
        return BackendStatus("failed", reason=f"The app's pod failed: {why}")
    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return BackendStatus(
            "failed",
            reason="No node in the cluster can run this app (it asks for more CPU or memory "
            f"than any node has free, or no node matches): {_short(scheduled.get('message'))}",
        )
    for cs in containers:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason"), _short(waiting.get("message"))
        image = cs.get("image") or images.get(cs.get("name")) or "the image"
        if reason in PULL_FAILURES:
            return BackendStatus(
                "failed",
                reason=f"The image {image} could not be pulled "
                f"({reason}). Check the image name and that the cluster may "
                f"pull it. {message}".strip(),
            )
        if reason == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            exit_info = f" Last exit code {last.get('exitCode')}." if last else ""
            return BackendStatus(
                "failed",
                reason=f"The app keeps crashing on start (restarted "
                f"{cs.get('restartCount', 0)} times).{exit_info} {message}".strip(),
            )
        if reason in CONFIG_FAILURES:
            return BackendStatus("failed", reason=f"The container could not be started ({reason}): {message}")
    if (conditions.get("Ready") or {}).get("status") == "True":
        return BackendStatus("running", phase="Ready")
    if scheduled.get("status") != "True":
        return BackendStatus("starting", phase="Waiting for a node to run the app")
    if any("running" in (cs.get("state") or {}) for cs in containers):
        return BackendStatus("starting", phase="Starting the app, waiting for it to answer")
    latest = _latest_event(events or [])
    if latest == "Pulling":
        return BackendStatus("starting", phase=f"Pulling the image {next(iter(images.values()), '')}".strip())
    if latest in ("Pulled", "Created", "Started"):
        return BackendStatus("starting", phase="Image ready, starting the container")
    return BackendStatus("starting", phase="Scheduled, preparing the container")


def _latest_event(events: list[dict[str, Any]]) -> str | None:
    def when(event: dict[str, Any]) -> str:
        return (
            event.get("lastTimestamp")
            or event.get("eventTime")
            or (event.get("metadata") or {}).get("creationTimestamp")
            or ""
        )

    relevant = [e for e in events if e.get("reason") in ("Pulling", "Pulled", "Created", "Started")]
    return max(relevant, key=when).get("reason") if relevant else None
