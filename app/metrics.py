"""Prometheus metrics: every metric Dormouse exports, defined once here, the
helpers the lifecycle, the sweep and the Kubernetes calls record through, and
``GET /metrics``.

What is exported (all named ``dormouse_*``):

* ``live_deployments{status}``: deployments starting and running now, read
  from the database at scrape time (one grouped count), so it is the same in
  every worker and replica: aggregate it with ``max``, not ``sum``.
* ``deployment_starts_total``, ``deployment_stops_total{reason}`` (idle,
  gone, failed, admin, owner), ``cold_start_seconds`` (from the start to the app
  answering), ``pings_total`` (every ping of a live deployment, written or
  coalesced).
* ``sweep_duration_seconds`` and ``sweep_stopped`` (deployments one pass
  stopped, failed or found gone), per pass that held the sweep lease.
* ``kube_calls_total{verb, result}``: every attempt at a Kubernetes API call
  (retries included); ``result`` is ``ok``, the HTTP status of an
  ``ApiException`` (``404``, ``409``, ``503``...) or a transport error's name.
* ``gate_decisions_total{decision}``: the forwardAuth check's answers:
  ``cookie`` (a valid app cookie), ``entry`` (an entry token exchanged for
  one), ``denied``.

Several processes: gunicorn's workers each count on their own, so under
gunicorn prometheus_client's multiprocess mode is on (``gunicorn.conf.py``
points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before any worker
starts, and it must be set before prometheus_client is first imported); a
scrape, answered by any worker, adds up the files of all of them. Without it
(``flask run``, the tests, the CLI) the process's own default registry is
exported, process and Python metrics included.

Who may scrape: only a request carrying ``Authorization: Bearer
<METRICS_TOKEN>``. Behind the front door every request reaches gunicorn from
Traefik on loopback, so a peer's address proves nothing; with no token
configured ``/metrics`` does not exist (404).
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from sqlalchemy import func, select

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Chosen once, as prometheus_client chooses how to keep values when imported.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
TOKEN_ENV = "METRICS_TOKEN"
PATH = "/metrics"
GATE_ENDPOINT = "gate.check"

STOP_REASONS = ("idle", "gone", "failed", "admin", "owner")
GATE_DECISIONS = ("cookie", "entry", "denied")
KUBE_VERBS = frozenset({"create", "read", "list", "delete", "patch", "replace", "get", "watch"})

# --- the metrics -------------------------------------------------------------------

STARTS = Counter("dormouse_deployment_starts_total", "Deployments started (a new deployment row).")
STOPS = Counter(
    "dormouse_deployment_stops_total",
    "Live deployments that ended, by reason: idle, gone (vanished from the backend), failed, admin, owner.",
    ["reason"],
)
COLD_START = Histogram(
    "dormouse_cold_start_seconds",
    "Seconds from a deployment's start to its app answering (ready_at - created_at).",
    buckets=(0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300),
)
PINGS = Counter("dormouse_pings_total", "Pings of a live deployment from a focused page.")
SWEEP_DURATION = Histogram(
    "dormouse_sweep_duration_seconds",
    "Seconds one sweep pass took (reconcile included).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SWEEP_STOPPED = Histogram(
    "dormouse_sweep_stopped",
    "Deployments one sweep pass stopped as idle, failed or found gone.",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100),
)
KUBE_CALLS = Counter(
    "dormouse_kube_calls_total",
    "Kubernetes API call attempts, by verb and result (ok, an HTTP status, or an error's name).",
    ["verb", "result"],
)
GATE = Counter(
    "dormouse_gate_decisions_total",
    "forwardAuth answers: cookie (valid app cookie), entry (entry token exchanged), denied.",
    ["decision"],
)
for _reason in STOP_REASONS:  # known series show 0 before their first event
    STOPS.labels(_reason)
#: The gate's children made once: ``labels()`` costs as much as the count itself.
_GATE_BY_DECISION = {decision: GATE.labels(decision) for decision in GATE_DECISIONS}


# --- recording ---------------------------------------------------------------------


def record_start() -> None:
    STARTS.inc()


def record_stop(reason: str) -> None:
    STOPS.labels(reason).inc()


def observe_cold_start(seconds: float) -> None:
    COLD_START.observe(max(0.0, seconds))


def record_ping() -> None:
    PINGS.inc()


def observe_sweep(duration: float, stopped: int) -> None:
    SWEEP_DURATION.observe(duration)
    SWEEP_STOPPED.observe(stopped)


def record_backend_call(verb: str, result: str) -> None:
    KUBE_CALLS.labels(verb, result).inc()


def record_gate(decision: str) -> None:
    _GATE_BY_DECISION[decision].inc()


def timed_sweep(sweep: Callable[..., Any]) -> Callable[..., Any]:
    """Decorates :func:`app.sweep.sweep`: observe each pass's duration and how
    many deployments its report says it stopped, failed or found gone."""

    @functools.wraps(sweep)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        report = sweep(*args, **kwargs)
        observe_sweep(
            time.perf_counter() - started, len(report.stopped) + len(report.failed) + len(report.vanished)
        )
        return report

    return timed


def kube_verb(fn: Callable[..., Any]) -> str:
    """The verb of a Kubernetes client method (``read_namespaced_pod`` -> read)."""
    verb = getattr(fn, "__name__", "").split("_", 1)[0]
    return verb if verb in KUBE_VERBS else "other"


def counted_kube_call(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` that records each call's verb and result (``ok``, an
    ApiException's status, or the error's class name), then answers or
    raises as ``fn`` does."""
    verb = kube_verb(fn)

    @functools.wraps(fn)
    def counted(*args: Any, **kwargs: Any) -> T:
        try:
            answer = fn(*args, **kwargs)
        except Exception as exc:
            status = getattr(exc, "status", None)  # ApiException, matched without importing kubernetes
            record_backend_call(verb, str(status) if isinstance(status, int) else type(exc).__name__)
            raise
        record_backend_call(verb, "ok")
        return answer

    return counted


def gate_decision(response: Response) -> str:
    """What the gate answered: an app cookie handed out means an entry token
    was exchanged; any other 200 passed on a valid cookie."""
    if response.status_code != 200:
        return "denied"
    # not ``in response.headers``: a missing key costs Werkzeug an exception, and
    # the hot path (a cookie) has no Set-Cookie; its few headers are quick to scan
    return "entry" if any(key == "Set-Cookie" for key, _ in response.headers) else "cookie"


def _counting_gate(view: Callable[..., Response]) -> Callable[..., Response]:
    @functools.wraps(view)
    def counted(*args: Any, **kwargs: Any) -> Response:
        response = view(*args, **kwargs)
        record_gate(gate_decision(response))
        return response

    return counted


# --- exporting ---------------------------------------------------------------------


class LiveDeployments:
    """``dormouse_live_deployments{status}``, counted in the database at
    scrape time. A database that cannot be read leaves the family empty
    rather than failing the scrape."""

    def collect(self) -> Iterator[Metric]:
        from .extensions import db
        from .models import LIVE_STATUSES, Deployment

        family = GaugeMetricFamily(
            "dormouse_live_deployments", "Deployments starting or running now, by status.", labels=["status"]
        )
        try:
            counts = dict(
                db.session.execute(
                    select(Deployment.status, func.count())
                    .where(Deployment.status.in_(LIVE_STATUSES))
                    .group_by(Deployment.status)
                ).all()
            )
        except Exception:
            db.session.rollback()
            log.warning("metrics: counting live deployments failed", exc_info=True)
        else:
            for status in LIVE_STATUSES:
                family.add_metric([status], counts.get(status, 0))
        yield family


class _ThisProcess:
    """The default registry (this process's own metrics), as a collector."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """What one scrape exports: every worker's metrics under gunicorn (summed
    from the multiprocess files), or this process's own, plus the live count."""
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS:
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(LiveDeployments())
    return registry


def configured_token(app: Flask) -> str:
    """The bearer token a scrape must carry (``METRICS_TOKEN``); empty means no ``/metrics``."""
    return app.config.get(TOKEN_ENV) or app.config["DORMOUSE"].metrics_token


def authorized(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


bp = Blueprint("metrics", __name__)


@bp.get(PATH)
def scrape() -> Response:
    token = current_app.extensions["dormouse.metrics_token"]
    if not token:
        abort(404)
    if not authorized(request.headers.get("Authorization", ""), token):
        response = Response("A bearer token is required.\n", 401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encode(scrape_registry()), 200, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Register ``/metrics`` and count the gate's decisions by wrapping its
    view (as :mod:`app.rate_limits` wraps the views it limits), so the hot
    path stays as it is. Call after the blueprints are registered."""
    app.extensions["dormouse.metrics_token"] = configured_token(app)
    app.register_blueprint(bp)
    app.view_functions[GATE_ENDPOINT] = _counting_gate(app.view_functions[GATE_ENDPOINT])
