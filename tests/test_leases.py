"""The database lease that lets one sweep run at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

from app import leases
from app.extensions import db
from app.models import SchedulerLease, utcnow


def test_a_lease_excludes_other_holders_until_it_expires(any_app):
    now = utcnow()
    assert leases.acquire("sweep", "worker-a", ttl=60, now=now)
    assert not leases.acquire("sweep", "worker-b", ttl=60, now=now)
    assert leases.acquire("sweep", "worker-a", ttl=60, now=now)  # renew
    assert not leases.acquire("sweep", "worker-b", ttl=60, now=now + timedelta(seconds=59))
    assert leases.acquire("sweep", "worker-b", ttl=60, now=now + timedelta(seconds=61))
    leases.release("sweep", "worker-b")
    assert leases.acquire("sweep", "worker-c", ttl=60)


def test_release_by_another_holder_changes_nothing(any_app):
    assert leases.acquire("sweep", "worker-a", ttl=60)
    leases.release("sweep", "worker-b")
    assert not leases.acquire("sweep", "worker-b", ttl=60)


def test_held_releases_on_the_way_out_even_after_an_error(any_app):
    try:
        with leases.held("sweep", ttl=600, holder="worker-a") as ok:
            assert ok
            assert not leases.acquire("sweep", "worker-b", ttl=60)
            raise RuntimeError("the sweep failed")
    except RuntimeError:
        pass
    assert leases.acquire("sweep", "worker-b", ttl=60)
    with leases.held("sweep", ttl=600, holder="worker-a") as ok:
        assert not ok  # worker-b has it
    assert not leases.acquire("sweep", "worker-c", ttl=60)  # and still has it


def test_two_workers_creating_the_lease_at_once_get_one_holder(any_app):
    """The first use of a lease is an INSERT: the primary key lets only one of
    several simultaneous workers have it, on every database."""
    for round_ in range(5):
        name = f"race-{round_}"
        won = race_for_lease(any_app, name, workers=4)
        assert len(won) == 1, (name, won)
        row = db.session.get(SchedulerLease, name)
        assert row is not None and row.holder == won[0]


def race_for_lease(flask_app, name: str, workers: int) -> list[str]:
    """``workers`` threads, each with its own session, try to take the new
    lease ``name`` at the same moment; the holders that got it."""
    barrier = threading.Barrier(workers)
    won: list[str] = []
    errors: list[BaseException] = []

    def worker(holder: str) -> None:
        try:
            with flask_app.app_context():
                barrier.wait(30)
                if leases.acquire(name, holder, ttl=60):
                    won.append(holder)
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return won
