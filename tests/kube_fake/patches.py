"""The PATCH types of the fake apiserver (tests/kube_fake/server.py): strategic merge, JSON merge
(RFC 7386) and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
import json

from .resources import ApiError, Res

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "readinessGates": "conditionType",
    "ports": None,
}


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
            key = MERGE_KEYS[k] or (
                "containerPort"
                if any(isinstance(x, dict) and "containerPort" in x for x in cur + v)
                else "port"
            )
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
        at = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None)
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
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in "
                f"our request: {kind} operation does not apply: {e}",
            ) from None
    return doc


def apply_patch(res: Res, old: dict, content_type: str, raw: bytes) -> dict:
    ctype = (content_type or "").split(";")[0].strip()
    accepted = [
        "application/json-patch+json",
        "application/merge-patch+json",
        *([] if res.custom else ["application/strategic-merge-patch+json"]),
    ]
    if ctype not in accepted:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown "
            f"format - accepted media types include: {', '.join(accepted)}",
        )
    try:
        patch = json.loads(raw or b"null")
    except ValueError as e:
        raise ApiError(400, "BadRequest", f"error decoding patch: {e}") from None
    if ctype == "application/json-patch+json":
        if not isinstance(patch, list):
            raise ApiError(
                400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
            )
        return json_patch(old, patch)
    if not isinstance(patch, dict):
        raise ApiError(
            400, "BadRequest", "json: cannot unmarshal into Go value of type map[string]interface {}"
        )
    return (merge_patch if ctype == "application/merge-patch+json" else strategic_merge)(old, patch)
