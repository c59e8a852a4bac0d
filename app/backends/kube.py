"""The Kubernetes backend: each viz deployment is a Deployment, a Service, a
Traefik IngressRoute (and a Secret for its environment), made with the
official ``kubernetes`` client straight from the Flask process.

Manifests come from :mod:`kube_objects` (pure), calls go through
:mod:`kube_calls` (timeouts, retries, 409 adopts, 404 is done), and pod
states are read by :mod:`kube_status` (pure). Responses are handled as plain
JSON dicts (:func:`kube_calls.as_json`), which keeps the backend independent
of the client's model classes and of the API server's version.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..kube_settings import KubeSettings
from . import kube_calls, kube_objects
from .base import AppSpec, BackendError, BackendStatus
from .kube_calls import KubeUnavailable, as_json
from .kube_names import MANAGED_SELECTOR, name_for
from .kube_status import current_pod, pod_status

log = logging.getLogger(__name__)

LOG_LINE_GUESS = 100  # bytes per log line, for the first tailLines asked for
LOG_READS = 4  # pods/log reads at most per logs() call


def _api_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body or "{}").get("message") or str(exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


class KubeBackend:
    name = "kubernetes"

    def __init__(self, settings: KubeSettings, api_client: client.ApiClient | None = None) -> None:
        self.kube = settings
        self._api_client = api_client

    # the client is made on first use, so creating the app makes no connection
    @property
    def api(self) -> client.ApiClient:
        if self._api_client is None:
            self._api_client = kube_calls.make_api_client(self.kube.context)
        return self._api_client

    def _call(self, fn: Any, *args: Any, what: str = "", **kwargs: Any) -> dict[str, Any]:
        return kube_calls.call(
            as_json(fn),
            *args,
            timeout=self.kube.request_timeout,
            retries=self.kube.retries,
            what=what,
            **kwargs,
        )

    # ------------------------------------------------------------------ create
    def create(self, spec: AppSpec) -> str:
        if not spec.image:
            raise BackendError(
                "This app has no container image; publish it with an image to run it on the cluster."
            )
        name = name_for(spec)
        ns, kube = self.kube.namespace, self.kube
        apps, core = client.AppsV1Api(self.api), client.CoreV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        group, version = kube.traefik_api.split("/")
        opts = {"timeout": kube.request_timeout, "retries": kube.retries}
        secret = name if spec.env else None
        try:
            if secret:
                kube_calls.create(
                    as_json(core.create_namespaced_secret, ns),
                    as_json(core.read_namespaced_secret, namespace=ns),
                    kube_objects.make_secret(spec, name, kube),
                    **opts,
                )
            deployment = kube_calls.create(
                as_json(apps.create_namespaced_deployment, ns),
                as_json(apps.read_namespaced_deployment, namespace=ns),
                kube_objects.make_deployment(spec, name, kube, secret=secret),
                **opts,
            )
            uid = deployment["metadata"]["uid"]
            if secret:
                owner = {"metadata": {"ownerReferences": [kube_objects.owner_reference(name, uid)]}}
                self._call(core.patch_namespaced_secret, name, ns, owner, what=f"own Secret {name}")
            kube_calls.create(
                as_json(core.create_namespaced_service, ns),
                as_json(core.read_namespaced_service, namespace=ns),
                kube_objects.make_service(spec, name, kube, uid),
                **opts,
            )
            kube_calls.create(
                as_json(custom.create_namespaced_custom_object, group, version, ns, "ingressroutes"),
                as_json(custom.get_namespaced_custom_object, group, version, ns, "ingressroutes"),
                kube_objects.make_ingress_route(spec, name, kube, uid),
                **opts,
            )
        except (ApiException, KubeUnavailable) as exc:
            self._cleanup(name, secret)
            if isinstance(exc, ApiException):
                if exc.status in (401, 403):
                    raise BackendError(
                        "Dormouse is not allowed to create this app's objects in "
                        f"namespace {ns}: {_api_message(exc)}"
                    ) from exc
                raise BackendError(
                    f"The cluster refused this app (HTTP {exc.status}): {_api_message(exc)}"
                ) from exc
            raise BackendError(f"The cluster could not be reached: {exc}") from exc
        log.info("created Deployment, Service and IngressRoute %s in %s", name, ns)
        return self._ref(name, kube_objects.app_path(spec))

    def _cleanup(self, name: str, secret: str | None) -> None:
        """Remove what a failed create made. The Deployment owns the rest."""
        try:
            self._delete_deployment(name)
            if secret:
                core = client.CoreV1Api(self.api)
                kube_calls.delete(
                    as_json(core.delete_namespaced_secret, namespace=self.kube.namespace),
                    secret,
                    timeout=self.kube.request_timeout,
                    retries=self.kube.retries,
                )
        except (ApiException, KubeUnavailable):
            log.exception("cleanup of %s failed; reconcile will remove leftovers", name)

    @staticmethod
    def _ref(name: str, path: str) -> str:
        return json.dumps({"name": name, "path": path}, separators=(",", ":"))

    @staticmethod
    def _parse(ref: str) -> dict[str, str]:
        try:
            r = json.loads(ref)
            return {"name": str(r["name"]), "path": str(r["path"])}
        except (ValueError, TypeError, KeyError):
            raise BackendError("Unreadable deployment reference.") from None

    # ------------------------------------------------------------------ status
    def status(self, ref: str) -> BackendStatus:
        name = self._parse(ref)["name"]
        ns, core = self.kube.namespace, client.CoreV1Api(self.api)
        try:
            pod = current_pod(self._pods(name))
            if pod is None:
                apps = client.AppsV1Api(self.api)
                try:
                    self._call(apps.read_namespaced_deployment, name, ns, what=f"read Deployment {name}")
                except ApiException as exc:
                    if exc.status == 404:
                        return BackendStatus("gone", reason="The app's Deployment no longer exists.")
                    raise
                return BackendStatus("starting", phase="Waiting for the app's pod to be created")
            state = pod_status(pod)
            if state.state == "starting" and state.phase.startswith("Scheduled"):
                events = self._call(
                    core.list_namespaced_event,
                    ns,
                    what=f"events of {name}",
                    field_selector=f"involvedObject.name={pod['metadata']['name']}",
                )
                state = pod_status(pod, events.get("items") or [])
            return state
        except (ApiException, KubeUnavailable) as exc:
            log.warning("status of %s unavailable: %s", name, exc)
            return BackendStatus("starting", phase="Waiting for the cluster to answer")

    def _pods(self, name: str) -> list[dict[str, Any]]:
        core = client.CoreV1Api(self.api)
        return self._call(
            core.list_namespaced_pod,
            self.kube.namespace,
            what=f"list pods of {name}",
            label_selector=f"app.kubernetes.io/instance={name}",
        )["items"]

    # -------------------------------------------------------------------- logs
    def logs(self, ref: str, max_bytes: int) -> str:
        """The tail of the current pod's log (``pods/log``, read through the API
        server from the node). No pod, or a pod gone meanwhile (404), or a
        container not started yet (400), is "": a pod's log goes with the pod."""
        name = self._parse(ref)["name"]
        if max_bytes <= 0:
            return ""
        try:
            pod = current_pod(self._pods(name))
            if pod is None:
                return ""
            data = self._log_tail(pod["metadata"]["name"], max_bytes)
        except ApiException as exc:
            if exc.status in (400, 404):
                return ""
            if exc.status in (401, 403):
                raise BackendError(
                    f"Dormouse is not allowed to read this app's log in namespace "
                    f"{self.kube.namespace}: {_api_message(exc)}"
                ) from exc
            raise BackendError(f"The cluster did not give the app's log (HTTP {exc.status}).") from exc
        except KubeUnavailable as exc:
            raise BackendError(f"The cluster could not be reached: {exc}") from exc
        return data.decode("utf-8", "replace")

    def _log_tail(self, pod: str, max_bytes: int) -> bytes:
        """The last lines of ``pod``'s log that fit in ``max_bytes``.

        The kubelet applies ``limitBytes`` from the start of the ``tailLines``
        it selected, so a full answer may have cut off the newest lines: then
        ask again for fewer lines, sized from the lines that came, a few times
        at most (a single line longer than ``max_bytes`` is answered cut)."""
        core = client.CoreV1Api(self.api)
        read = kube_calls.as_bytes(core.read_namespaced_pod_log)
        lines = max(1, max_bytes // LOG_LINE_GUESS)
        for _ in range(LOG_READS):
            data = kube_calls.call(
                read,
                pod,
                self.kube.namespace,
                container=kube_objects.CONTAINER,
                tail_lines=lines,
                limit_bytes=max_bytes,
                timeout=self.kube.request_timeout,
                retries=self.kube.retries,
                what=f"read the log of pod {pod}",
            )
            if len(data) < max_bytes or lines == 1:
                break
            lines = max(1, min(lines - 1, data.count(b"\n") * 3 // 4))
        return data

    # -------------------------------------------------------------------- stop
    def _delete_deployment(self, name: str) -> bool:
        apps = client.AppsV1Api(self.api)
        return kube_calls.delete(
            as_json(apps.delete_namespaced_deployment, namespace=self.kube.namespace),
            name,
            timeout=self.kube.request_timeout,
            retries=self.kube.retries,
            body={"propagationPolicy": "Background"},
        )

    def stop(self, ref: str) -> None:
        """Delete the Deployment; its Service, IngressRoute and Secret go with
        it (ownerReferences). Gone already is success."""
        name = self._parse(ref)["name"]
        try:
            self._delete_deployment(name)
        except (ApiException, KubeUnavailable) as exc:
            raise BackendError(f"Could not delete {name}: {exc}") from exc

    # -------------------------------------------------------------------- list
    def list(self) -> dict[str, str]:
        apps = client.AppsV1Api(self.api)
        items = self._call(
            apps.list_namespaced_deployment,
            self.kube.namespace,
            what="list Deployments",
            label_selector=MANAGED_SELECTOR,
        )["items"]
        found = {}
        for item in items:
            meta = item.get("metadata") or {}
            notes = meta.get("annotations") or {}
            key = notes.get("dormouse.io/deployment-name") or meta["name"]
            found[key] = self._ref(meta["name"], notes.get("dormouse.io/app-path", "/"))
        return found

    # --------------------------------------------------------------------- url
    def url(self, ref: str) -> str:
        return f"{self.kube.viz_scheme}://{self.kube.viz_host}{self._parse(ref)['path']}"
