"""Caps on what runs and what is published (issue 8, point 1): exact across
threads (and so across workers and replicas: the database decides), on
SQLite and PostgreSQL; past a cap nothing is created and the viz page says
the server is busy and tries again later."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import lifecycle
from app.extensions import db
from app.models import Deployment, VizApp
from app.publishing import PublishError
from tests.factories import CSRFClient, build_app, make_app, make_settings, make_user
from tests.fakes import FakeBackend

HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def capped(tmp_path: Path, any_db_url: str) -> Iterator[tuple[Flask, FakeBackend]]:
    settings = make_settings(tmp_path, any_db_url, MAX_LIVE_DEPLOYMENTS="3", MAX_LIVE_PER_OWNER="2",
                             MAX_APPS_PER_OWNER="4")  # fmt: skip
    app = build_app(settings)
    app.test_client_class = CSRFClient
    fake = FakeBackend()
    app.extensions["dormouse.backend"] = fake
    with app.app_context():
        yield app, fake
        db.session.remove()
        db.engine.dispose()


def live_count() -> int:
    return db.session.scalar(
        select(func.count(Deployment.id)).where(Deployment.status.in_(("starting", "running")))
    )


def test_the_total_and_per_owner_caps_hold_and_free_up(capped):
    app, fake = capped
    alice, bob = make_user("alice"), make_user("bob")
    a1, a2, a3 = (make_app(alice, t) for t in ("a1", "a2", "a3"))
    b1, b2 = make_app(bob, "b1"), make_app(bob, "b2")
    first = lifecycle.ensure_deployment(a1)
    lifecycle.ensure_deployment(a2)
    with pytest.raises(lifecycle.Busy, match="publisher's apps"):  # alice's two are running
        lifecycle.ensure_deployment(a3)
    lifecycle.ensure_deployment(b1)
    with pytest.raises(lifecycle.Busy, match="as many apps as it may"):  # three in all
        lifecycle.ensure_deployment(b2)
    assert live_count() == 3 and fake.calls["create"] == 3
    assert db.session.scalar(select(func.count(Deployment.id))) == 3  # nothing half-made
    assert lifecycle.ensure_deployment(a1).id == first.id  # a live app is shared, never capped

    lifecycle.stop(first, reason="idle")  # a slot frees up
    assert lifecycle.ensure_deployment(b2).is_live
    with pytest.raises(lifecycle.Busy):
        lifecycle.ensure_deployment(a3)


def test_simultaneous_starts_never_pass_the_cap(capped):
    app, fake = capped
    owners = [make_user(f"user{i}") for i in range(6)]
    ids = [make_app(owner, f"app{j}").id for owner in owners for j in range(2)]  # 12 apps, 6 owners
    barrier = threading.Barrier(len(ids))
    started, busy, errors = [], [], []

    def visit(app_id: int) -> None:
        try:
            with app.app_context():
                viz = db.session.get(VizApp, app_id)
                barrier.wait()
                try:
                    started.append(lifecycle.ensure_deployment(viz).id)
                except lifecycle.Busy:
                    busy.append(app_id)
                db.session.remove()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=visit, args=(i,)) for i in ids]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not errors, errors
    assert len(started) + len(busy) == len(ids)
    assert live_count() == len(set(started)) <= 3
    assert len(set(started)) >= 1 and fake.calls["create"] == len(set(started))
    slots = db.session.scalars(select(Deployment.slot).where(Deployment.status == "starting")).all()
    assert len(slots) == len(set(slots)) and all(0 <= s < 3 for s in slots)


def test_the_viz_page_says_busy_and_tries_again(capped):
    app, _ = capped
    alice = make_user("alice")
    for title in ("a1", "a2"):
        lifecycle.ensure_deployment(make_app(alice, title))
    make_app(alice, "a3")
    client = app.test_client()
    page = client.post("/alice/a3/viz/start", headers=HX)
    html = page.get_data(as_text=True)
    assert page.status_code == 503 and page.headers["Retry-After"] == "15"
    assert 'data-status="busy"' in html and "waiting for room" in html
    assert 'hx-trigger="load delay:15s"' in html and "/alice/a3/viz/start" in html  # it asks again
    answer = client.post("/alice/a3/viz/start", headers=JSON)
    assert answer.status_code == 503 and answer.get_json()["status"] == "busy"
    assert live_count() == 2


def test_publishing_stops_at_the_per_owner_limit(capped):
    alice = make_user("alice")
    for title in ("p1", "p2", "p3", "p4"):
        make_app(alice, title)
    with pytest.raises(PublishError) as info:
        make_app(alice, "p5")
    assert "most one account may have" in str(info.value.errors)
    make_app(make_user("bob"), "p1")  # others are not held back
