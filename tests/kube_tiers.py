"""The two Kubernetes test tiers behind one interface.

* ``real``: a real kube-apiserver + etcd + kube-controller-manager on loopback
  (tests/kube_real.py); the tests play the kubelet (tests/kubelet.py).
* ``fake``: the in-process fake API server (tests/kube_fake/), for faults
  the real one cannot produce.

The same lifecycle tests run against both, so the real one keeps the fake
honest. Every API request the backend makes is counted, on both tiers, by
wrapping the client's REST layer.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config

from app.backends.kube import KubeBackend
from app.kube_settings import KubeSettings


@dataclass
class ShortTimeout:
    """Give the next ``times`` requests matching ``method`` and ``path_re`` a
    timeout of ``seconds`` instead of the backend's own."""

    method: str
    path_re: str
    seconds: float
    times: int = 1


@dataclass
class RequestLog:
    """(method, path) of every request made through one ApiClient; and the
    requests to be given a short timeout (the ones a test faults)."""

    entries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    short_timeouts: list[ShortTimeout] = field(default_factory=list)

    def count(self, method: str | None = None, path_re: str = "") -> int:
        with self.lock:
            return sum(
                1 for m, p in self.entries if (method is None or m == method) and re.search(path_re, p)
            )

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def shorten(self, method: str, path_re: str, seconds: float, times: int = 1) -> None:
        """Time out the next ``times`` matching requests after ``seconds``
        (only those: every other request keeps the backend's timeout)."""
        with self.lock:
            self.short_timeouts.append(ShortTimeout(method, path_re, seconds, times))

    def _record(self, method: str, path: str) -> float | None:
        with self.lock:
            self.entries.append((method, path))
            for short in self.short_timeouts:
                if short.times and short.method == method and re.search(short.path_re, path):
                    short.times -= 1
                    return short.seconds
        return None


def counting_client(kubeconfig: str) -> tuple[client.ApiClient, RequestLog]:
    """An ApiClient from ``kubeconfig`` with urllib3's retries off (the backend
    has its own) that logs every request (and shortens the timeouts asked for
    with :meth:`RequestLog.shorten`)."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.retries = False
    api = client.ApiClient(configuration)
    log = RequestLog()
    original = api.rest_client.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        path = url.split("://", 1)[-1]
        path = path[path.find("/") :] if "/" in path else "/"
        short = log._record(method, path.split("?", 1)[0])
        if short is not None:
            kwargs["_request_timeout"] = short
        return original(method, url, *args, **kwargs)

    api.rest_client.request = request  # type: ignore[method-assign]
    return api, log


def new_namespace_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@dataclass
class Tier:
    name: str  # "real" or "fake"
    kubeconfig: str
    namespace: str
    admin: client.ApiClient  # for the tests' own calls (the kubelet's role, checks)
    fake: Any = None  # FakeKubeAPI on the fake tier

    def settings(self, **env: str) -> KubeSettings:
        values = {
            "VIZ_HOST": "viz.test",
            "K8S_NAMESPACE": self.namespace,
            "K8S_REQUEST_TIMEOUT": "5",
            "K8S_RETRIES": "3",
        }
        values.update(env)
        return KubeSettings.from_env(values, required=True)

    def backend(self, kubeconfig: str | None = None, **env: str) -> tuple[KubeBackend, RequestLog]:
        api, log = counting_client(kubeconfig or self.kubeconfig)
        return KubeBackend(self.settings(**env), api_client=api), log

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.admin)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.admin)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.admin)
