"""The idle policy's SQL twin (app/stale.py) against idle.decide, row by row
on both databases, and the set-based sweep's promises: one listing, a number
of statements that does not grow with the live rows, one backend stop per
stale deployment, the lease renewed during a long pass."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select, update

from app import idle, leases, slugs, stale, sweep
from app.extensions import db
from app.idle import IdleLimits
from app.models import LIVE_STATUSES, Deployment
from tests.factories import make_app, make_user

NOW = datetime(2026, 11, 27, 12, 0, 0, 250_000, tzinfo=UTC)
# fractional limits: the cutoffs land between whole seconds
LIMITS = IdleLimits(load_timeout=1800.5, ping_timeout=600.25, start_timeout=120.75)
# and with the coalescing slack and the goodbye rule
SIGNALS = IdleLimits(
    load_timeout=60.5,
    ping_timeout=300.25,
    start_timeout=120.75,
    activity_resolution=5.125,
    goodbye_grace=60.75,
)
US = timedelta(microseconds=1)


def _edges(limit: float) -> list[float | None]:
    """Seconds ago around a limit: unset, exactly at it, a microsecond either side, and far off."""
    return [None, limit, limit + 1e-6, limit - 1e-6, 0.0, limit * 3]


def _at(seconds_ago: float | None) -> datetime | None:
    return None if seconds_ago is None else NOW - timedelta(seconds=seconds_ago)


def _rows(app_id: int, rng: random.Random, count: int, limits: IdleLimits = LIMITS) -> list[dict]:
    """A mix of starting and running rows with every timestamp on, near or far
    from its cutoff; keep-awake moments ahead, at and behind ``NOW``; page
    loads and goodbyes that leave pages open or none, the latest goodbye on,
    near or far from its cutoff, before, at or after the latest load and ping."""
    rows = []
    ping_keep = limits.ping_timeout + limits.activity_resolution
    for i in range(count):
        status = rng.choice(("running", "running", "running", "starting"))
        limit = limits.start_timeout if status == "starting" else limits.load_timeout
        created = rng.choice([s for s in _edges(limit) if s is not None] + [limit * 2])
        created = max(created, 0.0)
        ready = None if status == "starting" else rng.choice(_edges(limits.load_timeout))
        if ready is not None:
            ready = min(ready, created)  # ready after it was created
        awake = rng.choice([None, None, -60.0, 0.0, 1e-6, -1e-6, 60.0])  # seconds ago
        load = rng.choice(_edges(limits.load_timeout))
        ping = rng.choice(_edges(limits.ping_timeout) + _edges(ping_keep))
        grace = limits.goodbye_grace if limits.goodbye_grace is not None else 60.0
        bye = rng.choice(
            [None, load, ping]
            + [t + d for t in (load, ping) if t is not None for d in (1e-6, -1e-6)]
            + _edges(grace)[1:]
        )
        loads = rng.choice((0, 1, 2))
        row = {
            "app_id": app_id,
            "owner_id": None,
            "name": f"d{i}",
            "public_name": f"p{i}",
            "status": status,
            "backend": "local",
            "backend_ref": f"fake:p{i}",
            "created_at": _at(created),
            "ready_at": _at(ready),
            "latest_load_at": _at(load),
            "latest_ping_at": _at(ping),
            "keep_awake_until": _at(awake),
            "page_loads": loads,
            "goodbyes": rng.choice((max(0, loads - 1), loads, loads + 1)),
            "latest_goodbye_at": _at(bye if bye is None else max(bye, 0.0)),
        }
        rows.append(row)
    return rows


@pytest.mark.parametrize("limits", [LIMITS, SIGNALS], ids=["timeouts", "slack-and-goodbyes"])
def test_the_sql_predicate_chooses_exactly_what_decide_stops(any_app, limits):
    viz = make_app(make_user("alice"), "mix")
    rng = random.Random(11)
    rows = _rows(viz.id, rng, 1500, limits)
    db.session.execute(insert(Deployment), rows)
    db.session.commit()
    chosen = set(
        db.session.scalars(
            select(Deployment.id).where(
                Deployment.status.in_(LIVE_STATUSES), stale.stale_condition(NOW, limits)
            )
        )
    )
    live = db.session.scalars(select(Deployment).where(Deployment.status.in_(LIVE_STATUSES))).all()
    assert len(live) == len(rows)
    wrong = [
        (dep.id, dep.status, idle.decide(now=NOW, deployment=dep, limits=limits).detail)
        for dep in live
        if idle.decide(now=NOW, deployment=dep, limits=limits).stop != (dep.id in chosen)
    ]
    assert wrong == []
    # the mix holds both answers for both statuses, so the comparison can fail
    kinds = {(dep.status, dep.id in chosen) for dep in live}
    assert kinds == {("running", True), ("running", False), ("starting", True), ("starting", False)}
    if limits.goodbye_grace is not None:
        # and rows that only the goodbye rule stops, and rows it would stop but a keeper keeps
        by_goodbye = {
            dep.id
            for dep in live
            if "last page closed" in idle.decide(now=NOW, deployment=dep, limits=limits).detail
        }
        assert by_goodbye & chosen and by_goodbye - chosen


def test_each_edge_is_on_the_side_decide_puts_it(any_app):
    viz = make_app(make_user("alice"), "edges")
    L, P = LIMITS.load_timeout, LIMITS.ping_timeout
    cases = [  # (created, ready, load, ping, awake seconds ago) -> decide's answer, checked below
        (L * 2, None, L, None, None),  # load exactly at its limit: kept
        (L * 2, None, L + 1e-6, None, None),  # a microsecond past: stopped
        (L * 2, L - 1e-6, L * 2, None, None),  # ready later than the load keeps it
        (L - 1e-6, None, None, None, None),  # never loaded: counts from creation
        (L * 2, None, L * 2, P, None),  # ping exactly at its limit: kept
        (L * 2, None, L * 2, P + 1e-6, None),  # a microsecond past: stopped
        (L * 2, None, L * 2, None, 0.0),  # kept awake until exactly now: kept
        (L * 2, None, L * 2, None, 1e-6),  # until a microsecond ago: stopped
    ]
    rows = []
    for i, (created, ready, load, ping, awake) in enumerate(cases):
        rows.append(
            {
                "app_id": viz.id, "name": f"e{i}", "public_name": f"e{i}", "status": "running",
                "backend": "local", "created_at": _at(created), "ready_at": _at(ready),
                "latest_load_at": _at(load), "latest_ping_at": _at(ping), "keep_awake_until": _at(awake),
            }
        )  # fmt: skip
    db.session.execute(insert(Deployment), rows)
    db.session.commit()
    chosen = set(db.session.scalars(select(Deployment.public_name).where(stale.stale_condition(NOW, LIMITS))))
    assert chosen == {"e1", "e5", "e7"}
    for dep in db.session.scalars(select(Deployment)):
        assert idle.decide(now=NOW, deployment=dep, limits=LIMITS).stop is (dep.public_name in chosen)


def _live_fleet(backend, count: int, stale_every: int, now: datetime) -> list[dict]:
    """``count`` running deployments of one app, every ``stale_every``-th idle,
    all listed by the backend."""
    owner = make_user("alice")
    viz = make_app(owner, "fleet")
    rows = []
    for i in range(count):
        idle_one = i % stale_every == 0
        seen = now - timedelta(hours=3 if idle_one else 0, seconds=5)
        rows.append(
            {
                "app_id": viz.id, "name": f"d{i}", "public_name": f"p{i}", "status": "running",
                "backend": "local", "backend_ref": f"fake:p{i}", "created_at": seen, "ready_at": seen,
                "latest_load_at": seen, "latest_ping_at": seen,
            }
        )  # fmt: skip
        backend.extra[slugs.deployment_name("alice", "fleet", f"p{i}")] = f"fake:p{i}"
    db.session.execute(insert(Deployment), rows)
    db.session.commit()
    return rows


def _count_statements():
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(db.engine, "before_cursor_execute", count)


def test_the_sweep_issues_a_few_statements_and_one_stop_per_stale_deployment(any_app, any_fake_backend):
    now = datetime.now(UTC)
    lim = IdleLimits(load_timeout=1800, ping_timeout=1800, start_timeout=180)
    rows = _live_fleet(any_fake_backend, 1200, 100, now)
    stale_refs = sorted(r["backend_ref"] for i, r in enumerate(rows) if i % 100 == 0)
    seen, done = _count_statements()
    try:
        report = sweep.sweep(now=now, lim=lim)
    finally:
        done()
    assert report.errors == 0 and report.orphans_stopped == [] and report.vanished == []
    assert sorted(ref.backend_ref for ref, _ in report.stopped) == stale_refs
    assert sorted(any_fake_backend.stopped) == stale_refs
    assert any_fake_backend.calls["stop"] == 12 and any_fake_backend.calls["list"] == 1
    assert any_fake_backend.calls["status"] == 0
    # 1200 live rows, 12 stale: a handful of statements, not one per row (names:
    # 1 page; starting: 1; stale: 1 page and 1 UPDATE; expired tokens) and the
    # environments' upkeep (builds to take over; unused ones, every 10th sweep)
    upkeep = [sql for sql in seen if "FROM environments" in sql]
    assert len(upkeep) <= 2 and len(seen) - len(upkeep) <= 5, seen
    gone = db.session.scalars(select(Deployment.backend_ref).where(Deployment.status == "stopped")).all()
    assert sorted(gone) == stale_refs


def test_the_sweep_renews_its_lease_between_pages(any_app, any_fake_backend, monkeypatch):
    now = datetime.now(UTC)
    _live_fleet(any_fake_backend, 30, 1, now)  # all idle
    monkeypatch.setattr(stale, "PAGE", 10)
    clock = iter(range(0, 10_000, 100))  # each look at the clock: 100 s later
    monkeypatch.setattr(sweep.time, "monotonic", lambda: float(next(clock)))
    renewals = []
    real_acquire = leases.acquire

    def acquire(name, holder, ttl, now=None):
        renewals.append(name)
        return real_acquire(name, holder, ttl, now)

    monkeypatch.setattr(leases, "acquire", acquire)
    report = sweep.under_lease(lambda: sweep.sweep(now=now))
    assert report.ran and len(report.stopped) == 30
    assert len(renewals) >= 4  # taken once, then renewed before each page


def test_a_sweep_that_lost_its_lease_stops_at_the_next_page(any_app, any_fake_backend, monkeypatch):
    now = datetime.now(UTC)
    _live_fleet(any_fake_backend, 30, 1, now)
    monkeypatch.setattr(stale, "PAGE", 10)
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(sweep.time, "monotonic", lambda: float(next(clock)))
    taken = []

    def acquire(name, holder, ttl, now=None):
        taken.append(name)
        return len(taken) == 1  # the pass starts with it, then another worker has it

    monkeypatch.setattr(leases, "acquire", acquire)
    monkeypatch.setattr(leases, "release", lambda name, holder: None)
    report = sweep.under_lease(lambda: sweep.sweep(now=now))
    assert not report.ran and report.stopped == []
    assert any_fake_backend.calls["stop"] == 0


def test_a_load_or_keep_awake_between_the_decision_and_the_stop_keeps_the_app(
    any_app, any_fake_backend, monkeypatch
):
    now = datetime.now(UTC)
    rows = _live_fleet(any_fake_backend, 3, 1, now)  # all three idle
    ids = db.session.scalars(select(Deployment.id).order_by(Deployment.id)).all()
    real_decide = idle.decide
    landed = []

    def decide_then_act(**kwargs):
        verdict = real_decide(**kwargs)
        if not landed:  # on their own connection, right after the first decision
            with db.engine.begin() as other:
                other.execute(update(Deployment).where(Deployment.id == ids[0]).values(latest_load_at=now))
                other.execute(
                    update(Deployment)
                    .where(Deployment.id == ids[1])
                    .values(keep_awake_until=now + timedelta(hours=1))
                )
            landed.append(True)
        return verdict

    monkeypatch.setattr(idle, "decide", decide_then_act)
    report = sweep.sweep(now=now)
    assert [d.id for d, _ in report.stopped] == [ids[2]] and report.errors == 0
    assert any_fake_backend.stopped == [rows[2]["backend_ref"]]
    statuses = dict(db.session.execute(select(Deployment.id, Deployment.status)).all())
    assert statuses == {ids[0]: "running", ids[1]: "running", ids[2]: "stopped"}


def test_reconcile_over_pages_finds_the_gone_and_the_orphans(any_app, any_fake_backend, monkeypatch):
    from app import reconcile

    now = datetime.now(UTC)
    rows = _live_fleet(any_fake_backend, 25, 1000, now)  # none idle but the first
    gone = slugs.deployment_name("alice", "fleet", rows[13]["public_name"])
    del any_fake_backend.extra[gone]  # its app died
    any_fake_backend.extra["bob-ghost-default-abcdef"] = "fake:ghost"  # nothing knows it
    monkeypatch.setattr(reconcile, "PAGE", 10)
    report = sweep.reconcile(now=now)
    assert report.ran and report.errors == 0
    assert [d.public_name for d in report.vanished] == [rows[13]["public_name"]]
    assert report.orphans_stopped == ["fake:ghost"]
    # the gone row's app is stopped as it is marked (its page), the orphan after the pages
    assert any_fake_backend.stopped == [rows[13]["backend_ref"], "fake:ghost"]
    assert any_fake_backend.calls["list"] == 1
