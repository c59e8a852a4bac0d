"""A failed listing of the Kubernetes backend (the API server answering 500,
or dropping the connection) during reconcile, on a fake API server of the
test's own: the pass counts one error and changes nothing (no running row is
taken for gone, no Deployment for an orphan), and the next pass, once the API
answers, stops the real orphan and leaves the running row alone.

The other calls are faulted in tests/test_kube_faults.py (create, status),
tests/test_kube_pod_faults.py (stop) and tests/test_logs.py (logs).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app import lifecycle, sweep
from app.backends.kube import KubeBackend
from app.extensions import db
from app.kube_settings import KubeSettings
from app.models import Deployment, utcnow
from tests.factories import build_app, make_app, make_settings, make_spec, make_user
from tests.kube_fake import FakeKubeAPI

pytestmark = pytest.mark.timeout(120)

NS = "viz"
IMAGE = "ghcr.io/alice/wave:1.0"
LIST_DEPLOYMENTS = rf"/apis/apps/v1/namespaces/{NS}/deployments$"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKubeAPI]:
    """The Kubernetes backend on a fake API server of this test's own, in an
    app context."""
    fake = FakeKubeAPI().start()
    api = None
    try:
        fake.add_namespace(NS)
        api = fake.api_client()
        values = {"VIZ_HOST": "viz.test", "K8S_NAMESPACE": NS, "K8S_REQUEST_TIMEOUT": "5", "K8S_RETRIES": "1"}
        backend = KubeBackend(KubeSettings.from_env(values, required=True), api_client=api)
        app = build_app(make_settings(tmp_path, BACKEND="kubernetes", **values))
        app.extensions["dormouse.backend"] = backend
        with app.app_context():
            try:
                yield fake
            finally:
                db.session.remove()
                db.engine.dispose()
    finally:
        if api is not None:
            api.close()
        fake.clear_faults()
        fake.stop()
    assert fake.errors == []  # the fake's own bugs, answered as 500s


@pytest.mark.parametrize("fault", [{"status": 500}, {"reset": True}], ids=["500", "reset"])
def test_a_failed_kube_listing_marks_nothing_gone_and_stops_nothing(kube: FakeKubeAPI, fault: dict) -> None:
    dep = lifecycle.ensure_deployment(make_app(make_user("alice"), "wave", image=IMAGE))
    db.session.execute(  # the app answered long ago
        db.update(Deployment)
        .where(Deployment.id == dep.id)
        .values(status="running", ready_at=utcnow() - timedelta(minutes=5))
    )
    db.session.commit()
    orphan = lifecycle.backend().create(make_spec(owner="bob", title="ghost", image=IMAGE))  # no row has it
    assert len(kube.objects("deployments", NS)) == 2

    listing = kube.inject(method="GET", path_re=LIST_DEPLOYMENTS, times=None, **fault)
    report = sweep.reconcile()
    assert listing.hits >= 1
    assert report.errors == 1 and not report.changed  # not "everything vanished"
    db.session.refresh(dep)
    assert dep.status == "running" and len(kube.objects("deployments", NS)) == 2

    kube.clear_faults()  # the API is back: the next pass reconciles
    report = sweep.reconcile()
    assert report.errors == 0 and report.orphans_stopped == [orphan] and report.vanished == []
    db.session.refresh(dep)
    assert dep.status == "running" and len(kube.objects("deployments", NS)) == 1
