"""The controllers of the fake apiserver (tests/kube_fake/server.py): the garbage collector and
namespace controller, and the deployment and replicaset controllers. They run synchronously
inside the request that triggers them (``Store.gc_delay`` defers collection)."""

from __future__ import annotations

import copy
import json
import zlib

from .resources import ALNUM, R, Res, dig, is_ready, now


class Controllers:
    """Mixed into ``Store``: the controllers work on its objects through its methods
    (``create``, ``_write``, ``_remove``, ``_find``, ``_by_uid``, ``_res_of``, ``_owned``,
    ``_later``), under its lock."""

    objs: dict[tuple, dict]
    _collecting: bool
    _dirty: bool

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
        solid = [ref for ref, state in zip(refs, states, strict=True) if state == "solid"]
        # with a solid owner, references to the others go; without, the object goes unless
        # every owner is orphaning it
        keep = solid or [ref for ref, state in zip(refs, states, strict=True) if state != "orphan"]
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
        if (
            meta.get("deletionTimestamp")
            and waiting
            and not any(
                r.get("uid") == meta["uid"]
                for o in self.objs.values()
                for r in o["metadata"].get("ownerReferences", [])
            )
        ):
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
            if (
                ref.get("controller")
                and ref.get("kind") == kind
                and owner
                and not owner["metadata"].get("deletionTimestamp")
            ):
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
        new = next((rs for rs in rss if dig(rs, "metadata.labels.pod-template-hash") == pod_hash), None)
        olds = [rs for rs in rss if rs is not new]
        recreate = dig(spec, "strategy.type") == "Recreate"
        if new is None:
            revision = str(
                1
                + max(
                    (
                        int(dig(rs, "metadata.annotations", {}).get("deployment.kubernetes.io/revision", "0"))
                        for rs in rss
                    ),
                    default=0,
                )
            )
            if recreate:
                for rs in olds:
                    self._scale_rs(rs, 0)
            labels = {**(template["metadata"].get("labels") or {}), "pod-template-hash": pod_hash}
            selector = copy.deepcopy(spec["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
            rs_template = copy.deepcopy(template)
            rs_template["metadata"]["labels"] = labels
            annotations = {
                "deployment.kubernetes.io/desired-replicas": str(desired),
                "deployment.kubernetes.io/max-replicas": str(desired + 1),
                "deployment.kubernetes.io/revision": revision,
            }
            created = self.create(
                R["replicasets"],
                ns,
                {
                    "metadata": {
                        "name": f"{meta['name']}-{pod_hash}",
                        "labels": labels,
                        "annotations": annotations,
                        "ownerReferences": [
                            {
                                "apiVersion": "apps/v1",
                                "kind": "Deployment",
                                "name": meta["name"],
                                "uid": meta["uid"],
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "spec": {"replicas": desired, "selector": selector, "template": rs_template},
                },
                manager="kube-controller-manager",
                react=False,
            )
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
        for rs in history[: max(0, len(history) - spec.get("revisionHistoryLimit", 10))]:
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
            return {
                "type": kind,
                "status": status,
                "lastUpdateTime": updated_at,
                "lastTransitionTime": prev["lastTransitionTime"] if same else stamp,
                "reason": reason,
                "message": message,
            }

        available = ready >= desired - max_unavailable
        complete = updated == desired == len(pods) and ready >= desired
        rs_name = new["metadata"]["name"]
        wanted = sum(rs["spec"].get("replicas", 0) for rs in rss)
        status = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(wanted - ready, 0),
            "conditions": [
                condition(
                    "Available",
                    str(available),
                    *(
                        ("MinimumReplicasAvailable", "Deployment has minimum availability.")
                        if available
                        else ("MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
                    ),
                ),
                condition(
                    "Progressing",
                    "True",
                    *(
                        ("NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
                        if complete
                        else ("ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
                    ),
                ),
            ],
        }
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
        return [
            p
            for p in self._owned(rs["metadata"]["namespace"], "pods", rs["metadata"]["uid"])
            if dig(p, "status.phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]

    def _scale_rs(self, rs: dict, replicas: int) -> None:
        if rs["spec"].get("replicas") != replicas:
            rs["spec"]["replicas"] = replicas
            rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
            rs["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(
                replicas
            )
            self._write(R["replicasets"], rs)
        self._sync_replicaset(rs, notify=False)

    def _sync_replicaset(self, rs: dict, notify: bool = True) -> None:
        meta, want = rs["metadata"], rs["spec"].get("replicas", 1)
        if meta.get("deletionTimestamp") or self._by_uid(meta["uid"]) is not rs:
            return
        pods, template = self._active_pods(rs), rs["spec"]["template"]
        while len(pods) < want:
            pods.append(
                self.create(
                    R["pods"],
                    meta["namespace"],
                    {
                        "metadata": {
                            "generateName": f"{meta['name']}-",
                            **{
                                k: copy.deepcopy(v)
                                for k, v in template["metadata"].items()
                                if k in ("labels", "annotations") and v
                            },
                            "ownerReferences": [
                                {
                                    "apiVersion": "apps/v1",
                                    "kind": "ReplicaSet",
                                    "name": meta["name"],
                                    "uid": meta["uid"],
                                    "controller": True,
                                    "blockOwnerDeletion": True,
                                }
                            ],
                        },
                        "spec": copy.deepcopy(template["spec"]),
                    },
                    manager="kube-controller-manager",
                    react=False,
                )
            )
        for pod in sorted(pods, key=is_ready)[: max(0, len(pods) - want)]:
            self._remove(R["pods"], self.objs[self.uids[pod["metadata"]["uid"]]], react=False)
        pods = self._active_pods(rs)
        ready = sum(is_ready(p) for p in pods)
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta.get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v}
        if status != rs.get("status"):
            rs["status"] = status
            self._write(R["replicasets"], rs)
        if notify:
            self._owner_sync(rs)
