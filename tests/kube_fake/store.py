"""The object store behind tests/kube_fake/server.py: what a kube-apiserver 1.20 does with
requests, minus the HTTP. Its rules live in defaults, validation,
selectors and patches (pure functions), its controllers and garbage
collector in controllers. Store methods take ``Store.lock``."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from pathlib import Path

from .controllers import Controllers
from .defaults import default_object
from .patches import apply_patch
from .resources import CRD_FILE, RESOURCES, ApiError, R, Res, dig, now, rand5
from .selectors import (
    match_fields,
    match_labels,
    parse_field_selector,
    parse_label_selector,
)
from .validation import load_crd_schemas, prune, validate_object


class Store(Controllers):
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
        return [
            o
            for (_, p, n, _), o in sorted(self.objs.items())
            if p == plural
            and n == ns
            and any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))
        ]

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
            return [
                copy.deepcopy(o)
                for (g, p, n, _), o in sorted(self.objs.items())
                if plural in (p, f"{p}.{g}") and namespace in (None, n)
            ]

    # -- the REST verbs --------------------------------------------------------------------
    def get(self, res: Res, ns: str | None, name: str) -> dict:
        with self.lock:
            return copy.deepcopy(self._find(res, ns, name))

    def list(self, res: Res, ns: str | None, query: dict) -> dict:
        with self.lock:
            labels = parse_label_selector(query.get("labelSelector", ""))
            fields = parse_field_selector(query.get("fieldSelector", ""), res.plural)
            items = []
            for (g, p, n, _), o in sorted(self.objs.items()):
                if (
                    (g, p) == (res.group, res.plural)
                    and (not ns or n == ns)
                    and match_labels(labels, o["metadata"].get("labels") or {})
                    and match_fields(fields, o)
                ):
                    item = copy.deepcopy(o)
                    if not res.custom:  # items of built-in lists carry no kind/apiVersion
                        del item["kind"], item["apiVersion"]
                    items.append(item)
            meta = {"resourceVersion": str(self.rv), **({"continue": ""} if res.custom else {})}
            return {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": meta,
                "items": items,
            }

    def create(self, res: Res, ns: str | None, body, manager: str = "fake", react: bool = True) -> dict:
        with self.lock:
            obj = self._decode(res, ns, body)
            meta = obj["metadata"]
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + rand5()
            if meta.get("resourceVersion"):
                msg = "resourceVersion should not be set on objects to be created"
                raise ApiError(
                    500, "InternalError", f"Internal error occurred: {msg}", {"causes": [{"message": msg}]}
                )
            for k in (
                "uid",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
                "creationTimestamp",
                "generation",
            ):
                meta.pop(k, None)
            if res.status_sub and not res.custom:
                obj.pop("status", None)
            default_object(res.plural, obj, None, self)
            validate_object(res, obj, None, self._validator(res))
            nsobj = self.objs.get(self.key(R["namespaces"], None, ns)) if ns else None
            if ns and nsobj is None:
                raise R["namespaces"].not_found(ns)
            if nsobj and nsobj["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{res.qualified} "{meta["name"]}" is forbidden: '
                    f"unable to create new content in namespace {ns} because it is "
                    "being terminated",
                    res.details(meta["name"]),
                )
            if self.key(res, ns, meta["name"]) in self.objs:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{res.qualified} "{meta["name"]}" already exists',
                    res.details(meta["name"]),
                )
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
            if res.generation:
                meta["generation"] = 1
            meta["managedFields"] = [
                {
                    "manager": manager,
                    "operation": "Update",
                    "apiVersion": res.api_version,
                    "time": meta["creationTimestamp"],
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {},
                }
            ]
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
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the {field} of the provided object ({obj[field]}) does not match the expected {want}",
                )
        meta = obj.setdefault("metadata", {})
        if res.namespaced and meta.setdefault("namespace", ns) != ns:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if not res.namespaced:
            meta.pop("namespace", None)
        for field in ("labels", "annotations"):
            if any(not isinstance(v, str) for v in (meta.get(field) or {}).values()):
                raise ApiError(
                    400,
                    "BadRequest",
                    "json: cannot unmarshal non-string into Go "
                    f"struct field ObjectMeta.metadata.{field} of type string",
                )
        if res.custom and (res.group, res.plural) in self.schemas:
            obj = prune(obj, self.schemas[(res.group, res.plural)][0], root=True)
        return obj

    def update(
        self,
        res: Res,
        ns: str | None,
        name: str,
        body,
        sub: str | None = None,
        patch: tuple[str, bytes] | None = None,
    ) -> dict:
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
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})",
                )
            if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {res.qualified} "
                    f'"{name}": the object has been modified; please apply your changes '
                    "to the latest version and try again",
                    res.details(name),
                )
            if res.custom and not patch and not meta.get("resourceVersion"):
                raise ApiError(
                    422,
                    "Invalid",
                    f'{res.qualified_kind} "{name}" is invalid: metadata'
                    ".resourceVersion: Invalid value: 0x0: must be specified for an "
                    "update",
                    {**res.details(name), "kind": res.kind},
                )
            for k in (
                "name",
                "uid",
                "creationTimestamp",
                "generation",
                "managedFields",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
            ):
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
        scale = {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": dig(obj, "status.replicas", 0),
                "selector": ",".join(
                    f"{k}={v}" for k, v in sorted(dig(obj, "spec.selector.matchLabels").items())
                ),
            },
        }
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
                    raise ApiError(
                        409,
                        "Conflict",
                        (
                            f'Operation cannot be fulfilled on {res.qualified} "{name}": Precondition '
                            f"failed: {label} in precondition: {want}, {label} in object meta: "
                            f"{meta[field]}"
                        ),
                        res.details(name),
                    )
            policy = opts.get("propagationPolicy")
            if policy is None and opts.get("orphanDependents") is not None:
                policy = "Orphan" if opts["orphanDependents"] else "Background"
            if policy not in (None, "Orphan", "Background", "Foreground"):
                raise ApiError(
                    422,
                    "Invalid",
                    (
                        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                        f'value: "{policy}": supported values: "Foreground", "Background", "Orphan", '
                        '"nil"'
                    ),
                    {"kind": "DeleteOptions"},
                )
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
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": res.details(name, uid=meta["uid"]),
            }

    def _remove(self, res: Res, obj: dict, react: bool = True) -> dict:
        meta = obj["metadata"]
        self.objs.pop(self.key(res, meta.get("namespace"), meta["name"]), None)
        self.uids.pop(meta["uid"], None)
        if react and res.plural == "pods":
            self._pod_changed(obj)
        elif react and res.plural == "replicasets":
            self._owner_sync(obj)
        return copy.deepcopy(obj)
