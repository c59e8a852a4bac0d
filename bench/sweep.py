"""Benchmark of the idle sweep (app/sweep.py, app/stale.py, app/reconcile.py)
on a large deployments table.

Goal (issue 11): one sweep takes at most 1 s at 100k rows with 1 % of the live
rows stale, on SQLite and PostgreSQL, in both shapes: every row live, and a
history with 1 % of the rows live.

    .venv/bin/python bench/sweep.py                          # SQLite, 100k rows, both shapes
    .venv/bin/python bench/sweep.py --rows 10000 --rows 1000000
    .venv/bin/python bench/sweep.py --database-url postgresql://user@host:5432/postgres

For each size and shape it seeds a throwaway database (migrated with the real
migrations; on PostgreSQL, a database of its own, dropped afterwards) by bulk
inserts, and installs a fake backend whose listing names exactly the live
rows. Then, in interleaved rounds, it times the baseline (``SELECT count(*)
FROM deployments``: the cheapest pass over the same table on the same
database at the same moment) and one sweep as the scheduler runs it
(``sweep.under_lease(sweep.sweep)``); before each sweep the rows the previous
one stopped are made live and stale again (untimed). It checks every sweep's
answer (exactly the stale rows stopped, one backend stop each, no orphan, no
error), and prints the median milliseconds, the median ratio sweep / baseline,
the SQL statements of one sweep, and its peak Python memory (tracemalloc, in a
separate untimed sweep). It exits 0 whatever the figures; 1 if it could not
measure.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.harness import BenchError, exit_code, median, sigterm_as_exit
from bench.usage_stats import database

USERS = 20
APPS = 200


class ListingBackend:
    """A backend that lists the seeded live deployments and counts stops."""

    name = "local"

    def __init__(self, listed: dict[str, str]) -> None:
        self.listed = listed
        self.stops = 0
        self.calls = 0

    def list(self) -> dict[str, str]:
        self.calls += 1
        return self.listed

    def stop(self, ref: str) -> None:
        self.stops += 1

    def status(self, ref: str):  # a starting row would be read; none is seeded
        raise BenchError(f"unexpected status read of {ref}")


def seed(rows: int, shape: str, now: datetime, rng: random.Random) -> tuple[dict[str, str], int]:
    """Users, apps and ``rows`` deployments; returns the backend's listing
    (name -> ref of every live row) and how many live rows are stale.

    ``live``: every row running. ``history``: 1 % running, the rest stopped
    over the past year. Of the running rows, 1 % are idle for three hours
    (stale under any default), the others loaded and pinged a minute ago."""
    from sqlalchemy import insert, text

    from app import slugs
    from app.extensions import db
    from app.models import Deployment, User, VizApp

    start = now - timedelta(days=365)
    db.session.execute(
        insert(User),
        [
            {"id": u + 1, "username": f"user{u}", "password_hash": "x", "created_at": start}
            for u in range(USERS)
        ],
    )
    db.session.execute(
        insert(VizApp),
        [
            {"id": a + 1, "owner_id": a % USERS + 1, "title": f"app{a}", "framework": "dash",
             "source": "dash-wave/app.py:server", "env": {}, "embed_origins": [],
             "created_at": start, "updated_at": start}
            for a in range(APPS)
        ],
    )  # fmt: skip
    live_every = 1 if shape == "live" else 100
    listed: dict[str, str] = {}
    stale = 0
    batch: list[dict] = []
    for i in range(rows):
        a = i % APPS
        public = f"p{i}"
        live = i % live_every == 0
        if live:
            idle = (i // live_every) % 100 == 0
            stale += idle
            seen = now - timedelta(hours=3 if idle else 0, seconds=60 + rng.random())
            row = {"status": "running", "created_at": seen, "ready_at": seen, "latest_load_at": seen,
                   "latest_ping_at": seen, "stopped_at": None, "stop_reason": None}  # fmt: skip
            listed[slugs.deployment_name(f"user{a % USERS}", f"app{a}", public)] = f"fake:{public}"
        else:
            created = start + timedelta(seconds=rng.uniform(0, 364 * 86400))
            row = {"status": "stopped", "created_at": created, "ready_at": created,
                   "latest_load_at": created, "latest_ping_at": None,
                   "stopped_at": created + timedelta(hours=1), "stop_reason": "owner"}  # fmt: skip
        row.update(app_id=a + 1, owner_id=a % USERS + 1, name=f"d{i}", public_name=public,
                   backend="local", backend_ref=f"fake:{public}")  # fmt: skip
        batch.append(row)
        if len(batch) == 10_000:
            db.session.execute(insert(Deployment), batch)
            batch = []
    if batch:
        db.session.execute(insert(Deployment), batch)
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # planner statistics, as a long-lived database has
    db.session.commit()
    return listed, stale


def make_stale_again() -> None:
    """Undo the previous sweep: its stopped rows running again, as stale as before."""
    from sqlalchemy import update

    from app.extensions import db
    from app.models import Deployment

    db.session.execute(
        update(Deployment)
        .where(Deployment.stop_reason == "idle")
        .values(status="running", stopped_at=None, stop_reason=None, status_reason="")
    )
    db.session.commit()


def one_sweep(be: ListingBackend, stale: int):
    """One sweep as the scheduler runs it, its answer checked."""
    from app import sweep

    be.stops = 0
    report = sweep.under_lease(sweep.sweep)
    if not report.ran or report.errors or report.orphans_stopped or report.vanished or report.failed:
        raise BenchError(f"unexpected sweep: {report.summary()} (ran={report.ran})")
    if len(report.stopped) != stale or be.stops != stale:
        raise BenchError(
            f"stopped {len(report.stopped)} rows with {be.stops} backend stops; {stale} are stale"
        )
    return report


def count_statements(fn) -> int:
    from sqlalchemy import event

    from app.extensions import db

    seen = []

    def count(*_):
        seen.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def run(url: str, tmp: Path, rows: int, shape: str, rounds: int) -> dict:
    from sqlalchemy import text

    from app.extensions import db
    from tests.factories import build_app, make_settings

    flask_app = build_app(make_settings(tmp, url))
    with flask_app.app_context():
        try:
            t = time.perf_counter()
            listed, stale = seed(rows, shape, datetime.now(UTC), random.Random(11))
            seeded = time.perf_counter() - t
            be = ListingBackend(listed)
            flask_app.extensions["dormouse.backend"] = be
            baseline = lambda: db.session.scalar(text("SELECT count(*) FROM deployments"))  # noqa: E731
            statements = count_statements(lambda: one_sweep(be, stale))  # also the warm-up
            make_stale_again()
            tracemalloc.start()
            one_sweep(be, stale)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            base_ms, sweep_ms, ratios = [], [], []
            for _ in range(rounds):
                make_stale_again()
                t = time.perf_counter()
                baseline()
                base_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                one_sweep(be, stale)
                sweep_ms.append((time.perf_counter() - t) * 1000)
                ratios.append(sweep_ms[-1] / base_ms[-1])
            return {
                "db": db.engine.dialect.name, "rows": rows, "shape": shape, "live": len(listed),
                "stale": stale, "seeded_s": seeded, "base_ms": median(base_ms),
                "sweep_ms": median(sweep_ms), "max_ms": max(sweep_ms), "ratio": median(ratios),
                "statements": statements, "peak_mib": peak / 2**20,
            }  # fmt: skip
        finally:
            db.session.remove()
            db.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="rows to seed, repeatable (default 100000)")
    parser.add_argument("--shape", choices=("live", "history"), action="append", help="default both")
    parser.add_argument(
        "--database-url", help="a PostgreSQL server (a database of its own is made); default SQLite"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)  # one INFO line per stopped row: the sweep's, not this script's
    print(f"load average {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    print(f"{'db':<10} {'rows':>8} {'shape':<8} {'live':>7} {'stale':>6} {'count(*) ms':>11} "
          f"{'sweep ms':>9} {'max ms':>7} {'x count':>8} {'statements':>10} {'peak MiB':>8}")  # fmt: skip

    def measure() -> None:
        with sigterm_as_exit():
            for rows in args.rows or [100_000]:
                for shape in args.shape or ["live", "history"]:
                    with tempfile.TemporaryDirectory() as tmp, database(args.database_url, Path(tmp)) as url:
                        r = run(url, Path(tmp), rows, shape, args.rounds)
                    print(f"{r['db']:<10} {r['rows']:>8} {r['shape']:<8} {r['live']:>7} "
                          f"{r['stale']:>6} {r['base_ms']:>11.1f} {r['sweep_ms']:>9.1f} "
                          f"{r['max_ms']:>7.1f} {r['ratio']:>8.1f} {r['statements']:>10} "
                          f"{r['peak_mib']:>8.1f}", flush=True)  # fmt: skip

    return exit_code("sweep", measure)


if __name__ == "__main__":
    sys.exit(main())
