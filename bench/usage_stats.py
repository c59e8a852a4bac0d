"""Benchmark of the usage statistics and costs (app/usage.py, app/costs.py)
on a large deployments table.

Goal (issue 9): the statistics' SQL stays fast at 100k deployments.

    .venv/bin/python bench/usage_stats.py                       # SQLite, 100k deployments
    .venv/bin/python bench/usage_stats.py --database-url postgresql://user@host:5432/postgres
    .venv/bin/python bench/usage_stats.py --deployments 20000 --rounds 3

It seeds a throwaway database (migrated with the real migrations; on
PostgreSQL, a database of its own created on the given server and dropped
afterwards) with 20 users, 200 apps and N deployments spread over a year
(bulk inserts), checks the answers of site_stats and monthly_costs against
the same numbers computed in Python from the seeded rows, then times, in
interleaved rounds, a baseline (``SELECT count(*) FROM deployments``, a scan
of the same table's smallest index) and each candidate: app_stats of one app
and site_stats over the default 10-day window, site_stats over the whole year,
and monthly_costs of one month, and what each stats page gathers
(app/usage_report.py: an app's and the site's over 10 days, plots included,
and an owner's costs). It prints the median milliseconds of each and
the median of the per-round ratios candidate / baseline. It exits 0 whatever
the figures; 1 if it could not measure.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.harness import BenchError, median, sigterm_as_exit

NOW = datetime(2026, 12, 31, 12, tzinfo=UTC)
YEAR = timedelta(days=365)
APPS = 200
USERS = 20
CPU = (250, 500, 1000, 2000)
MEMORY = (256, 512, 1024, 2048)
REASONS = ("idle", "idle", "admin")


@contextmanager
def database(url: str | None, tmp: Path) -> Iterator[str]:
    """SQLite in ``tmp``, or a fresh database on the PostgreSQL server of ``url``."""
    if not url or url.startswith("sqlite"):
        yield url or f"sqlite:///{tmp / 'bench.db'}"
        return
    import psycopg

    admin = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"dormouse_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(count: int, rng: random.Random) -> list[dict]:
    """Users, apps and ``count`` deployments (rows as dicts, also returned for
    the checks): per app and name, one after another with gaps; lifetimes
    of minutes to hours (a few of days); 5% failed starts that never became
    ready; 10% of the apps running now."""
    from sqlalchemy import insert, text

    from app.extensions import db
    from app.models import Deployment, User, VizApp

    start = NOW - YEAR
    db.session.execute(
        insert(User),
        [
            {"id": u + 1, "username": f"user{u}", "password_hash": "x", "created_at": start}
            for u in range(USERS)
        ],
    )
    apps = [
        {
            "id": a + 1,
            "owner_id": a % USERS + 1,
            "title": f"app{a}",
            "framework": "dash",
            "source": "dash-wave/app.py:server",
            "cpu": f"{CPU[a % 4]}m",
            "memory": f"{MEMORY[a % 4]}Mi",
            "env": {},
            "embed_origins": [],
            "created_at": start - timedelta(days=1),
            "updated_at": start,
        }
        for a in range(APPS)
    ]
    db.session.execute(insert(VizApp), apps)
    rows: list[dict] = []
    per_app = count // APPS
    for a in range(APPS):
        mean_gap = YEAR / per_app * 0.8  # room for long lifetimes: every app gets its share
        t = start + mean_gap * rng.random()
        for n in range(per_app):
            life = timedelta(seconds=rng.expovariate(1 / 2400))
            if rng.random() < 0.01:
                life += timedelta(days=rng.uniform(1, 3))
            failed = rng.random() < 0.05
            live = n == per_app - 1 and a % 10 == 0
            created = NOW - timedelta(minutes=30) if live else t
            stopped = None if live else created + life
            if stopped is not None and stopped >= NOW:
                stopped = NOW - timedelta(seconds=1)
            ready = None if failed else created + timedelta(seconds=rng.uniform(2, 30))
            if ready is not None and stopped is not None and ready > stopped:
                ready = stopped
            rows.append(
                {
                    "app_id": a + 1,
                    "owner_id": a % USERS + 1,
                    "slot": a if live else None,
                    "owner_slot": None,
                    "name": "default",
                    "public_name": f"d{a}-{n}",
                    "status": "running" if live else "failed" if failed else "stopped",
                    "backend": "local",
                    "created_at": created,
                    "ready_at": ready,
                    "stopped_at": stopped,
                    "stop_reason": None if live else "failed" if failed else rng.choice(REASONS),
                    "cpu_millicores": CPU[a % 4],
                    "memory_mib": MEMORY[a % 4],
                    "page_loads": rng.randint(1, 5),
                    "viewer_seconds": float(rng.randint(0, 3600)),
                }
            )
            t = max(t + mean_gap * rng.uniform(0.2, 1.8), (stopped or t) + timedelta(seconds=1))
            if t >= NOW - timedelta(hours=1):
                break
    for chunk in range(0, len(rows), 10000):
        db.session.execute(insert(Deployment), rows[chunk : chunk + 10000])
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # planner statistics, as a long-lived database has
    db.session.commit()
    return rows


def expected(rows: list[dict], start: datetime, end: datetime) -> dict[str, float]:
    """site_stats' and monthly_costs' numbers for [start, end), in Python."""
    from app.usage import merge

    created = [r for r in rows if start <= r["created_at"] < end]
    by_app: dict[int, list] = defaultdict(list)
    dollars = 0.0
    from app.costs import deployment_cost
    from app.prices import Prices

    for r in rows:
        lo, hi = max(r["created_at"], start), min(r["stopped_at"] or end, end)
        if hi > lo:
            by_app[r["app_id"]].append((lo, hi))
            dollars += deployment_cost(r["cpu_millicores"], r["memory_mib"], hi - lo, Prices())
    running = sum((hi - lo).total_seconds() for iv in by_app.values() for lo, hi in merge(iv))
    return {
        "deployments": len(created),
        "page_loads": sum(r["page_loads"] for r in created),
        "running_seconds": running,
        "dollars": dollars,
    }


def check(rows: list[dict]) -> None:
    from app import costs, usage
    from app.prices import Prices

    start, end = usage.default_window(NOW)
    want = expected(rows, start, end)
    got = usage.site_stats(start, end)
    if (got.deployments, got.page_loads) != (want["deployments"], want["page_loads"]) or abs(
        got.running_seconds - want["running_seconds"]
    ) > 1e-6 * max(1.0, want["running_seconds"]):
        raise BenchError(f"site_stats disagrees with the seeded rows: {got} vs {want}")
    month_start, month_end = costs.month_bounds(2026, 6)
    want = expected(rows, month_start, month_end)
    total = costs.monthly_costs(2026, 6, Prices(), NOW).total.dollars
    if abs(total - want["dollars"]) > 1e-6 * max(1.0, want["dollars"]):
        raise BenchError(f"monthly_costs disagrees with the seeded rows: {total} vs {want['dollars']}")


def timed(fn: Callable[[], object], reps: int) -> float:
    """Median milliseconds of ``reps`` calls."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=100_000, help="rows to seed (default 100000)")
    parser.add_argument(
        "--database-url", help="a PostgreSQL server (a database of its own is made); default SQLite"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--reps", type=int, default=5, help="calls per side and round (median; default 5)")
    args = parser.parse_args(argv)

    from sqlalchemy import text

    from app import costs, usage, usage_report
    from app.extensions import db
    from app.models import User, VizApp
    from app.prices import Prices
    from tests.factories import build_app, make_settings

    rng = random.Random(9)
    with (
        sigterm_as_exit(),
        tempfile.TemporaryDirectory() as tmp,
        database(args.database_url, Path(tmp)) as url,
    ):
        flask_app = build_app(make_settings(Path(tmp), url))
        with flask_app.app_context():
            try:
                t = time.perf_counter()
                rows = seed(args.deployments, rng)
                print(f"{db.engine.dialect.name}: seeded {len(rows)} deployments of {APPS} apps "
                      f"in {time.perf_counter() - t:.1f}s")  # fmt: skip
                check(rows)
                print("answers checked against the seeded rows")
                start, end = usage.default_window(NOW)
                prices = Prices()
                app = db.session.get(VizApp, 57)
                owner = db.session.get(User, app.owner_id)
                baseline = ("SELECT count(*) (baseline)", lambda: db.session.scalar(text("SELECT count(*) FROM deployments")))  # noqa: E501  # fmt: skip
                candidates = [
                    ("app_stats, 10 days", lambda: usage.app_stats(57, start, end)),
                    ("site_stats, 10 days", lambda: usage.site_stats(start, end)),
                    ("site_stats, 365 days", lambda: usage.site_stats(NOW - YEAR, NOW)),
                    ("monthly_costs, one month", lambda: costs.monthly_costs(2026, 6, prices, NOW)),
                    ("hours_per_day, 10 days", lambda: usage.hours_per_day(57, start, end)),
                    # what the stats pages gather (app/usage_report.py), plots built
                    ("app's stats page, 10 days", lambda: usage_report.app_report(app, 10, NOW, prices)),
                    ("site's stats page, 10 days", lambda: usage_report.site_report(10, NOW, prices)),
                    ("owner's costs", lambda: usage_report.owner_costs(owner, [app], NOW, prices)),
                ]
                ms: dict[str, list[float]] = defaultdict(list)
                ratios: dict[str, list[float]] = defaultdict(list)
                for fn in [baseline[1]] + [c[1] for c in candidates]:
                    fn()  # warm up
                for _ in range(args.rounds):
                    for name, fn in candidates:
                        base = timed(baseline[1], args.reps)
                        cand = timed(fn, args.reps)
                        ms[baseline[0]].append(base)
                        ms[name].append(cand)
                        ratios[name].append(cand / base)
                print(f"{'query':<28} {'median ms':>10} {'x baseline':>11}")
                print(f"{baseline[0]:<28} {median(ms[baseline[0]]):>10.2f} {'1':>11}")
                for name, _ in candidates:
                    print(f"{name:<28} {median(ms[name]):>10.2f} {median(ratios[name]):>11.1f}")
            except BenchError as exc:
                print(f"could not measure: {exc}", file=sys.stderr)
                return 1
            finally:
                db.session.remove()
                db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
