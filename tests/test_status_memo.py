"""The per-worker memo of the viz page's hot paths (app/status_memo.py), with
a clock passed in: how long a read is used, when a ping must be written,
the bounds, and many threads at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from app.status_memo import AppSeen, DeploymentSeen, OwnerSeen, Seen, StatusMemo, needs_write

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def seen(
    read_at: datetime, *, dep_id: int = 1, status: str = "running", ping: datetime | None = None
) -> Seen:
    app = AppSeen(10, 20, OwnerSeen("alice"), "wave", "dash", published=True)
    dep = DeploymentSeen(
        id=dep_id, app_id=10, app=app, public_name=f"default-{dep_id}", status=status, status_reason="",
        stop_reason=None, phase="", backend_ref="ref", created_at=T0 - 60 * S, ready_at=T0 - 50 * S,
        latest_load_at=None, latest_ping_at=ping, stopped_at=None, keep_awake_until=None, url="http://x/",
    )  # fmt: skip
    return Seen(dep, read_at=read_at)


def key(n: int = 1) -> tuple[str, str, str]:
    return ("alice", "wave", f"default-{n}")


def test_a_read_is_used_for_less_than_a_second_then_read_again():
    memo = StatusMemo()
    entry = seen(T0)
    memo.remember(key(), entry)
    assert memo.seen(key(), now=T0) is entry
    assert memo.seen(key(), now=T0 + 0.999 * S) is entry
    assert memo.seen(key(), now=T0 + S) is None  # a second old: read again
    assert memo.seen(key(), now=T0 - 0.001 * S) is None  # the clock went back: read again
    assert memo.seen(key(2), now=T0) is None


def test_forgetting_reads_keeps_what_is_known_of_pings_and_urls():
    memo = StatusMemo()
    memo.remember(key(), seen(T0, ping=T0 - 2 * S))
    memo.note_url("ref", "http://x/")
    memo.forget_reads()
    assert memo.seen(key(), now=T0) is None
    assert memo.known_ping(1) == T0 - 2 * S  # a stored ping only moves forward: still true
    assert memo.url("ref") == "http://x/"
    memo.remember(key(), seen(T0))
    memo.forget(key())
    assert memo.seen(key(), now=T0) is None


def test_a_ping_is_written_only_when_the_stored_one_may_be_older_than_the_resolution():
    assert needs_write(None, now=T0, resolution=5)  # nothing known
    assert needs_write(T0 - 5 * S, now=T0, resolution=5)  # exactly the resolution old: written
    assert needs_write(T0 - 60 * S, now=T0, resolution=5)
    assert not needs_write(T0 - 4.9 * S, now=T0, resolution=5)
    assert not needs_write(T0, now=T0, resolution=5)
    assert needs_write(T0, now=T0, resolution=0)  # no coalescing asked: every ping written


def test_the_known_ping_only_moves_forward():
    memo = StatusMemo()
    assert memo.known_ping(1) is None
    memo.note_ping(1, T0)
    memo.note_ping(1, T0 - 3 * S)  # an older read (another worker's stale entry) changes nothing
    assert memo.known_ping(1) == T0
    memo.remember(key(), seen(T0, ping=T0 + 2 * S))  # a read newer than what was known
    assert memo.known_ping(1) == T0 + 2 * S


def test_a_written_ping_shows_in_the_entry():
    memo = StatusMemo()
    entry = seen(T0)
    memo.remember(key(), entry)
    updated = memo.pinged(key(), entry, T0 + 0.5 * S)
    assert updated.deployment.latest_ping_at == T0 + 0.5 * S
    assert memo.seen(key(), now=T0 + 0.6 * S) is updated
    assert memo.known_ping(1) == T0 + 0.5 * S
    assert updated.read_at == T0  # still read again a second after the read


def test_the_memo_is_bounded_least_recently_used_first():
    memo = StatusMemo(max_entries=3)
    for n in range(1, 4):
        memo.remember(key(n), seen(T0, dep_id=n, ping=T0))
    assert memo.seen(key(1), now=T0) is not None  # 1 used: 2 is now the least recent
    memo.remember(key(4), seen(T0, dep_id=4, ping=T0))
    assert memo.seen(key(2), now=T0) is None
    assert all(memo.seen(key(n), now=T0) is not None for n in (1, 3, 4))
    for n in range(5, 10):
        memo.note_ping(n, T0)
        memo.note_url(f"ref{n}", "u")
    assert len(memo._pings) == 3 and len(memo._urls) == 3
    assert memo.known_ping(9) == T0 and memo.known_ping(1) is None


def test_many_threads_at_once():
    memo = StatusMemo(max_entries=50)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                k = key((n * 7 + i) % 80)
                memo.remember(k, seen(T0, dep_id=i % 80, ping=T0 + i * S))
                memo.seen(k, now=T0)
                memo.note_ping(i % 80, T0 + i * S)
                if i % 50 == 0:
                    memo.forget_reads()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(memo._seen) <= 50 and len(memo._pings) <= 50
