"""Benchmark of the front door's check (``GET /_auth/viz``, Traefik's
forwardAuth) on the path nearly every request of an app takes: a valid session
cookie, checked by signature and claims only.

Goal (issue 7): the check runs at >= 0.7x the throughput of a bare endpoint
served the same way, and makes no database query.

    .venv/bin/python bench/forward_auth.py                # 5 rounds x 10 s each side
    .venv/bin/python bench/forward_auth.py --rounds 3 --duration 5
    .venv/bin/python bench/forward_auth.py --sql-only     # just the query count

It builds a throwaway instance (SQLite, a user, a published app, a running
deployment row, a session token for it), counts the SQL statements of the cookie
path in-process, then starts Dormouse under gunicorn with its production
configuration (gunicorn.conf.py; explicit SECRET_KEY and JWT_KEYS, the sweep
off) and a bare Flask app (bench/bare_app.py) under the same gunicorn
settings, and loads them in interleaved rounds (bare, gate, bare, gate...),
with ``wrk`` if installed, else a Python load generator. It prints req/s and
p99 per round and the median of the per-round ratios gate/bare. It exits 0
whatever the ratio (a measurement, not a test); 1 if it could not measure (a
server died, the gate refused the cookie...). Every process it starts is
stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from app.views.gate import COOKIE, TOKEN_PARAM
from bench.harness import (
    BenchError,
    Side,
    dormouse_and_bare,
    exit_code,
    interleaved,
    median,
    migrated_app,
    request,
    running,
    sigterm_as_exit,
)
from bench.hot_path_instance import dormouse_env
from bench.load import Load, Result, load_generator, pick_client

TARGET = 0.7
GATE_PATH = "/_auth/viz"
ASSET = "_dash-component-suites/dash/dash-renderer/build/dash_renderer.min.js"


@dataclass(frozen=True)
class Instance:
    env: dict[str, str]  # for the Dormouse server: its instance, database and keys
    viz_host: str  # the apps' host name
    prefix: str  # /bench/wave/default-xxxxxx/
    public_name: str
    cookie: str  # a session token for that deployment


def prepare(workdir: Path, env: dict[str, str], sql_requests: int) -> Instance:
    """Migrate a fresh database, add a user, a published app and a running
    deployment row, issue a session token for it; count the cookie path's SQL."""
    from app import tokens
    from app.auth import create_user
    from app.extensions import db
    from app.models import Deployment, VizApp, utcnow
    from app.slugs import public_name

    with migrated_app(env) as flask_app:
        settings = flask_app.config["DORMOUSE"]
        user = create_user("bench", secrets.token_urlsafe(16))
        # written directly: published (public, no environment pending), no build started
        viz = VizApp(
            owner=user, title="wave", framework="dash", source="dash-wave/app.py:server", is_public=True
        )
        dep = Deployment(
            app=viz, public_name=public_name("default"), status="running", phase="", backend=settings.backend,
            ready_at=utcnow(),
        )  # fmt: skip
        db.session.add(dep)
        db.session.commit()
        instance = Instance(
            env=env,
            viz_host=settings.viz_host,
            prefix=dep.prefix,
            public_name=dep.public_name,
            cookie=tokens.issue(settings.jwt_keys, public_name=dep.public_name, subject=f"user:{user.id}",
                                kind=tokens.SESSION, ttl=settings.viz_session_ttl),
        )  # fmt: skip
        count_sql(flask_app, instance, sql_requests)
    return instance


def gate_headers(instance: Instance, cookie: str | None = None) -> dict[str, str]:
    """What Traefik's forwardAuth sends for a browser's request of an app's asset."""
    headers = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": instance.viz_host,
        "X-Forwarded-Uri": instance.prefix + ASSET,
        "X-Forwarded-For": "127.0.0.1",
    }
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    return headers


def count_sql(flask_app, instance: Instance, n: int) -> None:
    """SQL statements the cookie path runs in ``n`` requests (the goal: none),
    and, as a check that the counter counts, those of one entry-token exchange."""
    from sqlalchemy import event

    from app import tokens
    from app.extensions import db

    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    client = flask_app.test_client(use_cookies=False)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        for _ in range(n):
            response = client.get(GATE_PATH, headers=gate_headers(instance, instance.cookie))
            if response.status_code != 200:
                raise BenchError(f"the gate refused the session cookie in-process: {response.status_code}")
        cookie_statements = len(seen)
        seen.clear()
        settings = flask_app.config["DORMOUSE"]
        entry = tokens.issue(settings.jwt_keys, public_name=instance.public_name, subject="anonymous",
                             kind=tokens.ENTRY, ttl=settings.viz_token_ttl)  # fmt: skip
        headers = gate_headers(instance) | {"X-Forwarded-Uri": f"{instance.prefix}?{TOKEN_PARAM}={entry}"}
        if (status := client.get(GATE_PATH, headers=headers).status_code) != 200:
            raise BenchError(f"the gate refused a fresh entry token in-process: {status}")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    inserts = sum(s.lstrip().upper().startswith("INSERT") for s in seen)
    print(f"SQL on the cookie path: {cookie_statements} statements in {n} requests (goal: 0)")
    print(f"  control, one entry-token exchange: {len(seen)} statements, {inserts} INSERT")
    if cookie_statements:
        print("  the cookie path QUERIES THE DATABASE:", *sorted(set(seen))[:5], sep="\n    ")


def preflight(gate: Side, bare: Side, instance: Instance) -> None:
    """The gate lets the cookie through and refuses a request without it (so
    it really checks); the bare endpoint answers 200 to the same request."""
    status, _ = request(gate.url, gate.headers)
    if status != 200:
        raise BenchError(f"the gate answered {status} to the session cookie (expected 200)")
    status, _ = request(gate.url, gate_headers(instance))
    if status != 401:
        raise BenchError(f"the gate answered {status} without a cookie (expected 401): it checks nothing")
    status, _ = request(bare.url, bare.headers)
    if status != 200:
        raise BenchError(f"the bare endpoint answered {status} (expected 200)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of (bare, gate); default 5")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per side and round")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unrecorded load per side first")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (production default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (default 8)")
    parser.add_argument("--connections", type=int, help="keep-alive connections (default workers x threads)")
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk if installed (auto), or the Python one",
    )
    parser.add_argument(
        "--client-threads",
        type=int,
        default=os.cpu_count() or 2,
        help="wrk threads, or Python load processes (default: CPU count)",
    )
    parser.add_argument("--sql-requests", type=int, default=200, help="cookie-path requests counted for SQL")
    parser.add_argument("--sql-only", action="store_true", help="count the SQL statements only, no load")
    args = parser.parse_args(argv)
    load = Load(args.duration, args.connections or args.workers * args.threads, args.client_threads)

    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="dormouse-bench-") as tmp:
        workdir = Path(tmp)

        def measure() -> int:
            client = pick_client(args.client)
            env = dormouse_env(workdir, f"sqlite:///{workdir / 'dormouse.db'}", args.workers, args.threads)
            instance = prepare(workdir, env, args.sql_requests)
            if args.sql_only:
                return 0
            dormouse, bare = dormouse_and_bare(env, workdir)
            with running(dormouse, bare):
                dormouse.wait_ready("/healthz")
                bare.wait_ready(GATE_PATH)
                headers = gate_headers(instance, instance.cookie)
                gate_side = Side("gate", dormouse.base + GATE_PATH, headers, dormouse)
                bare_side = Side("bare", bare.base + GATE_PATH, headers, bare)
                preflight(gate_side, bare_side, instance)
                describe(args, load, client)
                with load_generator(client, workdir) as run:
                    pairs = interleaved(
                        run, bare_side, gate_side, load, args.rounds, args.warmup, report_round
                    )
                summarise(pairs)
                return 0

        return exit_code("forward_auth", measure)


def describe(args, load: Load, client: str) -> None:
    print(
        f"\nforwardAuth check vs a bare endpoint: gunicorn {args.workers} workers x {args.threads} gthread "
        f"threads each; {load.connections} keep-alive connections from {client} "
        f"({load.client_threads} {'threads' if client == 'wrk' else 'processes'}); "
        f"{args.rounds} rounds x {load.duration:g} s per side, interleaved; {os.cpu_count()} CPUs"
    )
    print("  the load generator runs on this machine and shares its CPUs with both servers")
    if client == "python":
        print("  (a Python client is slower than wrk, which compresses the ratio towards 1)")
    print()
    row("round", "bare req/s", "p99 ms", "gate req/s", "p99 ms", "gate/bare")


def row(label, bare_rps, bare_p99, gate_rps, gate_p99, ratio, note: str = "") -> None:
    def cell(value, width: int, digits: int) -> str:
        return f"{value:>{width}.{digits}f}" if isinstance(value, float) else f"{value:>{width}}"

    print(
        f"{label:>6} {cell(bare_rps, 11, 0)} {cell(bare_p99, 7, 1)} {cell(gate_rps, 11, 0)} "
        f"{cell(gate_p99, 7, 1)} {cell(ratio, 9, 2)}{note}",
        flush=True,
    )


def report_round(i: int, bare: Result, gate: Result) -> None:
    errors = bare.socket_errors + gate.socket_errors
    note = f"  ({errors} socket errors)" if errors else ""
    row(str(i), bare.rps, bare.p99_ms, gate.rps, gate.p99_ms, gate.rps / bare.rps, note)


def summarise(pairs: list[tuple[Result, Result]]) -> None:
    ratio = median([gate.rps / bare.rps for bare, gate in pairs])
    bare, gate = [p[0] for p in pairs], [p[1] for p in pairs]
    row(
        "median", median([r.rps for r in bare]), median([r.p99_ms for r in bare]),
        median([r.rps for r in gate]), median([r.p99_ms for r in gate]), ratio,
    )  # fmt: skip
    verdict = "MEETS" if ratio >= TARGET else "BELOW"
    print(f"\ngate/bare throughput (median of the rounds' ratios): {ratio:.2f}x - {verdict} the target")
    print(f"  target: >= {TARGET}x (issue 7)")


if __name__ == "__main__":
    sys.exit(main())
