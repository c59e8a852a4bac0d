"""How the Kubernetes backend talks to the API server.

Every call goes through :func:`call`: it passes ``_request_timeout``, retries
only what is worth retrying (timeouts, dropped connections, 5xx and 429) with
bounded, jittered backoff (honouring ``Retry-After`` up to a cap), and matches
errors on ``ApiException.status`` only. :func:`create` treats 409 as "already
there" and adopts the existing object; :func:`delete` treats 404 as done.
The client's own urllib3 retries are switched off (see :func:`make_api_client`)
so that this is the one retry policy.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .. import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
MAX_BACKOFF = 4.0


class KubeUnavailable(Exception):
    """The API server could not be reached or kept failing after retries."""


def make_api_client(context: str | None = None) -> client.ApiClient:
    """In-cluster configuration first, else the kubeconfig (KUBECONFIG, context)."""
    try:
        config.load_incluster_config()
        configuration = client.Configuration.get_default_copy()
    except config.ConfigException:
        configuration = client.Configuration()
        # The client reads KUBECONFIG once, at import; read it now instead.
        config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None,
            context=context,
            client_configuration=configuration,
        )
    configuration.retries = False  # ours are in call(); urllib3's would hide faults
    return client.ApiClient(configuration)


def as_json(fn: Callable[..., Any], *bound: Any, **bound_kw: Any) -> Callable[..., dict[str, Any]]:
    """``fn`` with leading arguments bound, answering the response body as a
    plain dict (``_preload_content=False``, read in full, connection released):
    independent of the client's model classes and the server's version."""

    def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        response = fn(*bound, *args, _preload_content=False, **bound_kw, **kwargs)
        try:
            return json.loads(response.data or b"{}")
        finally:
            response.release_conn()

    run.__name__ = getattr(fn, "__name__", "call")
    return run


def as_bytes(fn: Callable[..., Any], *bound: Any, **bound_kw: Any) -> Callable[..., bytes]:
    """Like :func:`as_json`, for an answer that is not JSON (a pod's log): the
    body's raw bytes, read in full, connection released."""

    def run(*args: Any, **kwargs: Any) -> bytes:
        response = fn(*bound, *args, _preload_content=False, **bound_kw, **kwargs)
        try:
            return bytes(response.data or b"")
        finally:
            response.release_conn()

    run.__name__ = getattr(fn, "__name__", "call")
    return run


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def call(
    fn: Callable[..., T],
    *args: Any,
    timeout: float,
    retries: int,
    what: str = "",
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs, _request_timeout=timeout)``, retried on transient errors.

    ApiExceptions that are not transient (4xx but 429) are raised at once for
    the caller to match on ``.status``. Transient failures that outlast the
    retries raise :class:`KubeUnavailable`."""
    fn = metrics.counted_kube_call(fn)  # every attempt, by verb and result
    attempt = 0
    while True:
        try:
            return fn(*args, _request_timeout=timeout, **kwargs)
        except ApiException as exc:
            if exc.status not in RETRY_STATUSES:
                raise
            error: Exception = exc
            wait = _retry_after(exc)
        except TRANSPORT_ERRORS as exc:
            error, wait = exc, None
        attempt += 1
        if attempt > retries:
            raise KubeUnavailable(f"{what or fn.__name__}: {error}") from error
        backoff = min(MAX_BACKOFF, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        delay = min(MAX_BACKOFF, wait) if wait is not None else backoff
        log.warning(
            "kubernetes %s failed (%s); retry %d/%d in %.1fs",
            what or fn.__name__,
            _describe(error),
            attempt,
            retries,
            delay,
        )
        sleep(delay)


def _describe(error: Exception) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status}"
    return type(error).__name__


def create(
    create_fn: Callable[..., Any],
    read_fn: Callable[..., Any],
    body: dict[str, Any],
    *,
    timeout: float,
    retries: int,
) -> Any:
    """``create_fn(body)``; if the object already exists (409), adopt it with
    ``read_fn(name)``. Never check-then-act."""
    name = body["metadata"]["name"]
    what = f"create {body['kind']} {name}"
    try:
        return call(create_fn, body, timeout=timeout, retries=retries, what=what)
    except ApiException as exc:
        if exc.status != 409:
            raise
    log.info("%s: already exists, adopting it", what)
    return call(read_fn, name, timeout=timeout, retries=retries, what=f"read {body['kind']} {name}")


def delete(delete_fn: Callable[..., Any], name: str, *, timeout: float, retries: int, **kwargs: Any) -> bool:
    """``delete_fn(name)``; report whether it was there. 404 is success."""
    try:
        call(delete_fn, name, timeout=timeout, retries=retries, what=f"delete {name}", **kwargs)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
