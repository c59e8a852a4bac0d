"""Prometheus metrics (app/metrics.py): each metric moves when its event
happens (in-process, the scripted FakeBackend, the default registry), who may
scrape ``/metrics``, the gunicorn hooks that set up multiprocess mode, and one
live test under real gunicorn with two workers where every worker's counts add
up in one scrape.

Metrics live in the process, across the many apps tests make, so every check
compares a value before and after its event."""

from __future__ import annotations

import os
import runpy
import signal
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app import lifecycle, metrics, sweep, tokens
from app.auth import get_user
from app.backends import kube_calls
from app.extensions import db
from app.idle import IdleLimits
from app.models import utcnow
from app.views.gate import COOKIE, TOKEN_PARAM
from tests.factories import CSRFClient, build_app, make_app, make_settings, make_user
from tests.fakes import FakeBackend
from tests.serving import REPO, free_port, serve

TOKEN = "s3cret-metrics-token-for-tests"
TINY = IdleLimits(load_timeout=60, ping_timeout=30, start_timeout=120)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """A sample's change since this was made: ``Delta(name, **labels)()``."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.before = value(name, **labels)

    def __call__(self) -> float:
        return value(self.name, **self.labels) - self.before


def started(fake, title: str = "wave", *, ago: float = 0):
    owner = get_user("alice") or make_user("alice")
    when = utcnow() - timedelta(seconds=ago)
    return lifecycle.ensure_deployment(make_app(owner, title), now=when), when


# --- the lifecycle -------------------------------------------------------------------


def test_a_start_and_its_cold_start_are_recorded(app, fake_backend):
    starts = Delta("dormouse_deployment_starts_total")
    cold = Delta("dormouse_cold_start_seconds_count")
    cold_sum = Delta("dormouse_cold_start_seconds_sum")
    cold_le_10 = Delta("dormouse_cold_start_seconds_bucket", le="10.0")
    dep, began = started(fake_backend, ago=0)
    assert starts() == 1 and cold() == 0
    lifecycle.ensure_deployment(dep.app)  # the live one again: no new start
    assert starts() == 1
    fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, now=began + timedelta(seconds=7), force=True)
    assert dep.status == "running"
    assert cold() == 1 and cold_sum() == pytest.approx(7.0) and cold_le_10() == 1
    lifecycle.refresh(dep, now=began + timedelta(seconds=9), force=True)  # already running
    assert cold() == 1


def test_pings_are_counted_written_or_coalesced(app, fake_backend):
    pings = Delta("dormouse_pings_total")
    dep, _ = started(fake_backend)
    now = utcnow()
    assert lifecycle.record_ping(dep, now=now) is True
    assert lifecycle.record_ping(dep, now=now) is False  # within ACTIVITY_RESOLUTION: not written
    assert pings() == 2


def test_stops_are_counted_by_reason(app, fake_backend):
    idle_, admin, failed = (
        Delta("dormouse_deployment_stops_total", reason=r) for r in ("idle", "admin", "failed")
    )
    dep, _ = started(fake_backend, "one")
    assert lifecycle.stop(dep, reason="admin")
    assert not lifecycle.stop(dep, reason="admin")  # already stopped: not counted again
    dep, _ = started(fake_backend, "two")
    fake_backend.set(dep.backend_ref, "failed", reason="exit 1")
    lifecycle.refresh(dep, force=True)
    assert dep.status == "failed"
    fake_backend.fail_create = "no room"
    started(fake_backend, "three")  # the backend refuses: failed at once
    assert (admin(), failed(), idle_()) == (1, 2, 0)


def test_a_sweep_records_its_duration_and_what_it_stopped(app, fake_backend):
    passes = Delta("dormouse_sweep_duration_seconds_count")
    stopped_sum = Delta("dormouse_sweep_stopped_sum")
    idle_stops = Delta("dormouse_deployment_stops_total", reason="idle")
    for title in ("a", "b"):
        dep, when = started(fake_backend, title, ago=600)
        lifecycle.record_load(dep, now=when)
        fake_backend.set(dep.backend_ref, "running")
        lifecycle.refresh(dep, now=when, force=True)
    report = sweep.sweep(lim=TINY)
    assert len(report.stopped) == 2
    assert passes() == 1 and stopped_sum() == 2 and idle_stops() == 2
    sweep.sweep(lim=TINY)  # nothing left to stop
    assert passes() == 2 and stopped_sum() == 2
    assert value("dormouse_sweep_stopped_bucket", le="0.0") >= 1


# --- the gate ------------------------------------------------------------------------


def test_the_gates_decisions_are_counted(app, fake_backend):
    client = app.test_client(use_cookies=False)
    dep, _ = started(fake_backend)
    fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    cookie, entry, denied = (
        Delta("dormouse_gate_decisions_total", decision=d) for d in metrics.GATE_DECISIONS
    )
    keys = app.config["DORMOUSE"].jwt_keys
    uri = f"/alice/wave/{dep.public_name}/"
    token = tokens.issue(keys, public_name=dep.public_name, subject="anonymous", kind=tokens.ENTRY, ttl=60)

    def ask(query: str = "", cookie_value: str | None = None):
        headers = {"X-Forwarded-Uri": uri + query, "X-Forwarded-Host": "viz.example.org"}
        if cookie_value:
            headers["Cookie"] = f"{COOKIE}={cookie_value}"
        return client.get("/_auth/viz", headers=headers)

    assert ask().status_code == 401
    first = ask(f"?{TOKEN_PARAM}={token}")
    assert first.status_code == 200
    session = first.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    assert ask(f"?{TOKEN_PARAM}={token}").status_code == 401  # used already
    for _ in range(3):
        assert ask(cookie_value=session).status_code == 200
    assert (cookie(), entry(), denied()) == (3, 1, 2)


# --- Kubernetes calls ----------------------------------------------------------------


def test_kube_calls_are_counted_by_verb_and_result(core_api, fake_kube_server):
    listed = Delta("dormouse_kube_calls_total", verb="list", result="ok")
    missing = Delta("dormouse_kube_calls_total", verb="read", result="404")
    kube_calls.call(core_api.list_namespaced_pod, "viz", timeout=5, retries=0)
    with pytest.raises(Exception) as excinfo:
        kube_calls.call(core_api.read_namespaced_pod, "nope", "viz", timeout=5, retries=0)
    assert getattr(excinfo.value, "status", None) == 404
    assert listed() == 1 and missing() == 1


def test_every_attempt_of_a_retried_call_is_counted():
    attempts = Delta("dormouse_kube_calls_total", verb="delete", result="ConnectionError")

    def delete_namespaced_thing(name, _request_timeout):
        raise ConnectionError("refused")

    with pytest.raises(kube_calls.KubeUnavailable, match="delete_namespaced_thing"):
        kube_calls.call(delete_namespaced_thing, "x", timeout=1, retries=2, sleep=lambda _: None)
    assert attempts() == 3


def test_an_unknown_method_name_is_verb_other():
    assert metrics.kube_verb(lambda: None) == "other"
    assert metrics.kube_verb(kube_calls.as_json(lambda **_: None)) == "other"


# --- /metrics --------------------------------------------------------------------------


@pytest.fixture
def scraped(tmp_path, monkeypatch):
    """An app with ``METRICS_TOKEN`` set (and the scripted backend), in its context."""
    app = build_app(make_settings(tmp_path, METRICS_TOKEN=TOKEN))
    app.test_client_class = CSRFClient
    app.extensions["dormouse.backend"] = FakeBackend()
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_no_token_configured_means_no_metrics(app, client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"Bearer {TOKEN[:-1]}"],
)
def test_a_wrong_or_missing_token_is_401(scraped, header):
    headers = {"Authorization": header} if header else {}
    response = scraped.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "dormouse_" not in response.get_data(as_text=True)


def test_the_right_token_gets_the_prometheus_text_format(scraped):
    fake = scraped.extensions["dormouse.backend"]
    dep, _ = started(fake, "one")
    started(fake, "two")
    fake.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    response = scraped.test_client().get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain" and "version=" in response.content_type
    assert response.headers["Cache-Control"] == "no-store"
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    live = {s.labels["status"]: s.value for s in families["dormouse_live_deployments"].samples}
    assert live == {"starting": 1, "running": 1}
    for name in (
        "dormouse_deployment_starts",
        "dormouse_deployment_stops",
        "dormouse_cold_start_seconds",
        "dormouse_pings",
        "dormouse_sweep_duration_seconds",
        "dormouse_sweep_stopped",
        "dormouse_kube_calls",
        "dormouse_gate_decisions",
    ):
        assert name in families, name
    assert families["dormouse_gate_decisions"].documentation


def test_openmetrics_is_served_to_who_asks_for_it(scraped):
    response = scraped.test_client().get(
        "/metrics",
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert response.status_code == 200 and response.mimetype == "application/openmetrics-text"
    assert response.get_data(as_text=True).endswith("# EOF\n")


def test_a_token_in_the_config_overrides_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    from app import create_app

    app = create_app({"METRICS_TOKEN": TOKEN}, settings=make_settings(tmp_path))
    assert metrics.configured_token(app) == TOKEN


# --- gunicorn's hooks ----------------------------------------------------------------


def test_gunicorn_makes_a_private_metrics_dir_and_removes_it(monkeypatch):
    # set (to nothing) rather than deleted, so that monkeypatch restores them after on_starting
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.setenv("DORMOUSE_SUPERVISOR_PID", "")
    conf = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    server = SimpleNamespace()
    conf["on_starting"](server)
    made = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert os.path.isdir(made) and os.listdir(made) == []
    conf["on_exit"](server)
    assert not os.path.exists(made)


def test_gunicorn_empties_a_configured_metrics_dir(monkeypatch, tmp_path):
    configured = tmp_path / "prom"
    configured.mkdir()
    (configured / "counter_123.db").write_bytes(b"old")
    (configured / "README").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(configured))
    monkeypatch.setenv("DORMOUSE_SUPERVISOR_PID", "")
    conf = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    server = SimpleNamespace()
    conf["on_starting"](server)
    assert sorted(os.listdir(configured)) == ["README"]
    conf["on_exit"](server)
    assert configured.is_dir()  # not ours to remove


# --- under gunicorn, two workers --------------------------------------------------------


def _denied_in(path: Path) -> float:
    """The gate's denied count in one worker's counter file."""
    for family in MultiProcessCollector.merge([str(path)], accumulate=False):
        for sample in family.samples:
            if sample.name == "dormouse_gate_decisions_total" and sample.labels == {"decision": "denied"}:
                return sample.value
    return 0.0


def _workers(prom: Path) -> list[int]:
    """The workers that have loaded the app: each made its counter file then."""
    return sorted(int(path.stem.split("_")[1]) for path in prom.glob("counter_*.db"))


def _scrape(live, token: str = TOKEN) -> dict[str, float]:
    response = requests.get(f"{live.base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[key] = sample.value
    return samples


def test_every_workers_counts_add_up_in_one_scrape(tmp_path: Path):
    """Each worker in turn answers gate requests while the other is paused
    (SIGSTOP: it cannot accept, so the kernel hands every connection to the
    one running), straight to gunicorn's port; then every scrape, whichever
    worker answers it, through the front door, holds both workers' counts."""
    prom, internal = tmp_path / "prom", free_port()
    with serve(tmp_path, launch=False, METRICS_TOKEN=TOKEN, WEB_CONCURRENCY="2") as live:
        # gunicorn's own (not the migrations'), so the test can read each worker's file
        live.env.update(PROMETHEUS_MULTIPROC_DIR=str(prom), INTERNAL_PORT=str(internal))
        live.launch()
        assert requests.get(f"{live.base}/metrics", timeout=30).status_code == 401
        workers = live.wait(lambda: len(w := _workers(prom)) == 2 and w, 90, "both workers to load the app")
        for alone, paused in (workers, workers[::-1]):
            os.kill(paused, signal.SIGSTOP)
            try:
                for _ in range(10):
                    response = requests.get(f"http://127.0.0.1:{internal}/_auth/viz", timeout=30)
                    assert response.status_code == 401
            finally:
                os.kill(paused, signal.SIGCONT)
            assert _denied_in(prom / f"counter_{alone}.db") == 10
        for _ in range(4):
            samples = _scrape(live)
            assert samples["dormouse_gate_decisions_total|decision=denied"] == 20
            assert samples["dormouse_gate_decisions_total|decision=cookie"] == 0
            assert samples["dormouse_live_deployments|status=running"] == 0
