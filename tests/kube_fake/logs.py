"""``GET .../pods/<name>/log``: what kube-apiserver 1.20 and a kubelet answer, as a pure
function of the pod, the log the test wrote for it (tests play the container runtime with
``FakeKubeAPI.write_log``) and the query.

As the real thing: the answer is ``text/plain``; ``container`` must name one of the pod's
containers (and may be left out only when it has one); ``tailLines`` (>= 0) picks the last
lines, then ``limitBytes`` (> 0) keeps the first that many bytes of them (the kubelet's
order: a byte limit can cut off the newest lines); invalid options are 422 Invalid. A pod
no kubelet has written a log for answers an empty log, as the API server does for a pod
with no node (its pods are never scheduled). ``follow``, ``timestamps``, ``sinceSeconds``,
``sinceTime`` and ``previous`` are not supported and fail loudly.
"""

from __future__ import annotations

import re

from .resources import ApiError, dig

LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")
UNSUPPORTED = ("follow", "timestamps", "sinceSeconds", "sinceTime", "previous")


def _invalid(name: str, field: str, value: str, why: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'PodLogOptions "{name}" is invalid: {field}: Invalid value: {value}: {why}',
        {"name": name, "kind": "PodLogOptions", "causes": [{"field": field, "message": why}]},
    )


def _number(query: dict, field: str) -> int | None:
    value = query.get(field)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "BadRequest", f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def pod_log(pod: dict, log: bytes, query: dict) -> bytes:
    name = pod["metadata"]["name"]
    for option in UNSUPPORTED:
        if query.get(option) not in (None, "", "false", "0"):
            raise ApiError(400, "BadRequest", f"{option} is not supported by the fake apiserver")
    containers = [c["name"] for c in dig(pod, "spec.containers", []) or []]
    containers += [c["name"] for c in dig(pod, "spec.initContainers", []) or []]
    container = query.get("container") or ""
    if not container:
        if len(containers) != 1:
            raise ApiError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]",
            )
    elif container not in containers:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
    tail = _number(query, "tailLines")
    limit = _number(query, "limitBytes")
    if tail is not None and tail < 0:
        raise _invalid(name, "tailLines", str(tail), "must be greater than or equal to 0")
    if limit is not None and limit < 1:
        raise _invalid(name, "limitBytes", str(limit), "must be greater than 0")
    if tail is not None:
        log = b"".join(LINE.findall(log)[-tail:]) if tail else b""
    return log[:limit] if limit is not None else log
