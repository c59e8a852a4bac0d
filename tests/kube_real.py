"""A real Kubernetes control plane for tests: etcd + kube-apiserver +
kube-controller-manager 1.20 on loopback, run by scripts/kube-test-cluster.sh.

    cluster = RealCluster.start(tmp_path, rbac=True)
    apps = kubernetes.client.AppsV1Api(cluster.api_client())
    ...
    cluster.stop()

There is no kubelet and no scheduler: Pods stay Pending until a test plays the
kubelet with tests/kubelet.py. The first start on a machine builds the binaries
(several minutes; `scripts/kube-test-cluster.sh build` does it ahead of time).

Kubernetes 1.20 is older than what client 37 targets: a few of 1.20's answers
do not fit client 37's models (see tests/test_kube_real_cluster.py), so the
helpers here read raw JSON (``_preload_content=False``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "kube-test-cluster.sh"
TRAEFIK_CRDS = Path(__file__).resolve().parent / "schemas" / "traefik-crds-v3.7.yml"

REQUEST_TIMEOUT = 10  # seconds, for every API call made here
BUILD_TIMEOUT = 60 * 60
START_TIMEOUT = 240


class ClusterError(RuntimeError):
    pass


def _run(args: list[str], timeout: float, env: dict[str, str] | None = None, quiet: bool = True) -> str:
    """Run the script; its progress (stderr) is kept for the error message, or
    passed through with ``quiet=False`` (the long build)."""
    try:
        proc = subprocess.run(
            [str(SCRIPT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if quiet else None,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"kube-test-cluster.sh {' '.join(args)} timed out after {timeout}s") from exc
    if proc.returncode != 0:
        stderr = (proc.stderr or "")[-4000:]
        raise ClusterError(f"kube-test-cluster.sh {' '.join(args)} failed ({proc.returncode}):\n{stderr}")
    return proc.stdout.strip()


def _discard(resp: Any) -> None:
    """Read a `_preload_content=False` response to its end and return the
    connection to the pool (an unread body would corrupt the next request)."""
    try:
        resp.read()
    finally:
        resp.release_conn()


def _json(resp: Any) -> dict[str, Any]:
    """The body of a `_preload_content=False` response, as a dict."""
    try:
        return json.loads(resp.data)
    finally:
        resp.release_conn()


class RealCluster:
    """One running control plane, its state in ``state_dir``."""

    def __init__(self, state_dir: Path, rbac: bool) -> None:
        self.state_dir = state_dir
        self.rbac = rbac
        self.kubeconfig: Path = state_dir / "kubeconfig"
        self.sa_kubeconfig: Path | None = state_dir / "kubeconfig-sa" if rbac else None
        env = dict(
            line.split("=", 1) for line in (state_dir / "cluster.env").read_text().splitlines() if "=" in line
        )
        self.server: str = env["SERVER"]
        self._clients: list[client.ApiClient] = []
        self._admin_client: client.ApiClient | None = None
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------

    @staticmethod
    def is_built() -> bool:
        """Are the binaries in the cache (so :meth:`start` takes seconds)?"""
        return subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0

    @staticmethod
    def build() -> Path:
        """Build the binaries once (a no-op when cached); returns the cache dir."""
        return Path(_run(["build"], timeout=BUILD_TIMEOUT, quiet=False))

    @classmethod
    def start(cls, tmp_dir: Path, rbac: bool = False) -> RealCluster:
        """Build if needed, then start a cluster with its state in ``tmp_dir``.

        A watchdog stops the cluster if this Python process dies without
        calling :meth:`stop`."""
        cls.build()
        tmp_dir = Path(tmp_dir)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, DORMOUSE_KUBE_WATCH_PID=str(os.getpid()))
        args = ["start", str(tmp_dir)] + (["--rbac"] if rbac else [])
        try:
            _run(args, timeout=START_TIMEOUT, env=env)
        except ClusterError:
            # The script cleans up after its own failures, not after a timeout.
            _run(["stop", str(tmp_dir)], timeout=60)
            raise
        return cls(tmp_dir.resolve(), rbac)

    def stop(self) -> None:
        """Stop every process of this cluster (idempotent)."""
        for api in self._clients:
            try:
                api.close()
            except Exception:
                pass
        self._clients.clear()
        self._admin_client = None
        if not self._stopped:
            _run(["stop", str(self.state_dir)], timeout=60)
            self._stopped = True

    def __enter__(self) -> RealCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ------------------------------------------------------------

    def api_client(self, sa: bool = False) -> client.ApiClient:
        """A client authenticated as the admin (group system:masters) or, with
        ``sa=True``, as the ServiceAccount dormouse/dormouse (--rbac only).
        Closed by :meth:`stop`."""
        path = self.kubeconfig
        if sa:
            if self.sa_kubeconfig is None:
                raise ValueError("this cluster was started without --rbac: no ServiceAccount kubeconfig")
            path = self.sa_kubeconfig
        api = config.new_client_from_config(config_file=str(path))
        self._clients.append(api)
        return api

    # -- set-up helpers -----------------------------------------------------

    def create_namespace(self, name: str, timeout: float = 30) -> str:
        """Create ``name`` (already there is fine) and wait until its default
        ServiceAccount has a token, so Pods of a Deployment are admitted at
        once (1.20's ServiceAccount admission refuses them before that)."""
        core = client.CoreV1Api(self._admin())
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            _discard(
                core.create_namespace(body=body, _request_timeout=REQUEST_TIMEOUT, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

        def has_token() -> bool:
            sa = _json(
                core.read_namespaced_service_account(
                    "default", name, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
                )
            )
            return bool(sa.get("secrets"))

        wait_for(has_token, timeout, f"namespace {name}: a token for its default ServiceAccount")
        return name

    def delete_namespace(self, name: str) -> None:
        """Delete ``name`` and what is in it (already gone is fine); does not
        wait for the namespace controller to finish."""
        core = client.CoreV1Api(self._admin())
        try:
            _discard(core.delete_namespace(name, _request_timeout=REQUEST_TIMEOUT, _preload_content=False))
        except ApiException as exc:
            if exc.status != 404:
                raise

    def install_crds(self, path: Path = TRAEFIK_CRDS, timeout: float = 60) -> list[str]:
        """Create every CustomResourceDefinition in the multi-document YAML at
        ``path`` (already there is fine), wait until each is Established and
        its resource answers; returns their names."""
        ext = client.ApiextensionsV1Api(self._admin())
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
        if not crds:
            raise ValueError(f"no CustomResourceDefinition in {path}")
        for crd in crds:
            if not crd.get("apiVersion", "").startswith("apiextensions.k8s.io/v1"):
                raise ValueError(f"{crd['metadata']['name']}: only apiextensions.k8s.io/v1 is supported")
            try:
                # Raw responses: 1.20's answers need not fit client 37's models.
                _discard(
                    ext.create_custom_resource_definition(
                        body=crd, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
                    )
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
        custom = client.CustomObjectsApi(self._admin())

        def serves(group: str, version: str, plural: str) -> bool:
            _discard(
                custom.list_cluster_custom_object(
                    group, version, plural, limit=1, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
                )
            )
            return True

        deadline = time.monotonic() + timeout
        for crd in crds:
            name, spec = crd["metadata"]["name"], crd["spec"]
            wait_for(
                partial(self._crd_established, ext, name),
                deadline - time.monotonic(),
                f"CRD {name} to be Established",
            )
            # Established comes a moment before the endpoint serves.
            version = next(v["name"] for v in spec["versions"] if v.get("served", True))
            wait_for(
                partial(serves, spec["group"], version, spec["names"]["plural"]),
                deadline - time.monotonic(),
                f"the endpoint of CRD {name} to serve",
            )
        return [crd["metadata"]["name"] for crd in crds]

    # -- internals ----------------------------------------------------------

    def _admin(self) -> client.ApiClient:
        if self._admin_client is None:
            self._admin_client = self.api_client()
        return self._admin_client

    @staticmethod
    def _crd_established(ext: client.ApiextensionsV1Api, name: str) -> bool:
        crd = _json(
            ext.read_custom_resource_definition(
                name, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
            )
        )
        return any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )
