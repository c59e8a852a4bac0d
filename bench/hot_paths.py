"""Benchmark of the viz page's hot paths for a running app: the ping a
focused page sends (``POST .../viz/ping``), and the status poll answered as
JSON and as the HTMX partial (``GET .../viz/status``).

Goal (issue 11, point 2): each at >= 0.7x the throughput of a bare Flask
endpoint answering a tiny JSON under the same gunicorn settings, p99
reported, no backend call, no database write unless the stored ping is older
than ACTIVITY_RESOLUTION, one indexed query at most.

    .venv/bin/python bench/hot_paths.py                    # 3 rounds x 5 s per side and path
    .venv/bin/python bench/hot_paths.py --rounds 5 --duration 10 --path ping
    .venv/bin/python bench/hot_paths.py --database-url postgresql://postgres@127.0.0.1:54329/postgres
    .venv/bin/python bench/hot_paths.py --sql-only         # SQL statements, writes, backend calls, CPU

It builds a throwaway instance (the real migrations; SQLite, or a database
of its own on the PostgreSQL server given, dropped afterwards): a user, a
published public app, a deployment row ``running`` whose backend reference
the local backend turns into a URL without any process. In-process (Flask's
test client) it counts, per request and path, the SQL statements, the writes
and the backend calls, and the CPU per request through the WSGI callable,
Dormouse's and the bare app's. Then it serves Dormouse (``wsgi:app``,
gunicorn.conf.py: 2 workers x 8 threads, the sweep off) and the baseline,
bench/bare_app.py under bench/gunicorn_bare.conf.py; gets an anonymous
viewer's session cookie and CSRF token from the real page (``GET .../viz/``);
checks the answers (ping: 200, JSON, status running; JSON status: the same;
HTMX: 286 with the iframe) before and after the load; and loads each path in
interleaved rounds (bare, Dormouse, bare, Dormouse...) with ``wrk`` and a Lua
script (method, body, headers; each request from one of 16,384 client
addresses in X-Forwarded-For, as Traefik sends it, so the HTMX partial's rate
limit, which is per client, counts as in production without refusing the
load). It prints req/s and p99 per round and the median ratio per path. Exits
0 whatever the figures; 1 if it could not measure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.harness import (
    BenchError,
    Side,
    checked,
    dormouse_and_bare,
    exit_code,
    median,
    running,
    sigterm_as_exit,
)
from bench.hot_path_instance import (
    ADDRESSES,
    BASE,
    CSRF_META,
    Path_,
    dormouse_env,
    in_process,
    paths,
    prepare,
)
from bench.load import WRK_REPORT, Load, Result, pick_client, wrk_load_args, wrk_result
from bench.usage_stats import database

TARGET = 0.7
# the starting figures (its table): ratio to a bare endpoint
BEFORE = {"ping": 0.11, "status-json": 0.24, "status-htmx": 0.21}


# --- load ----------------------------------------------------------------------

LUA_REQUEST = """
local method, path, body = %s, %s, %s
local fixed = %s
local n = 0
request = function()
  n = n + 1
  local i = n %% %d
  local h = {}
  for k, v in pairs(fixed) do h[k] = v end
  h["X-Forwarded-For"] = string.format("10.%%d.%%d.1", math.floor(i / 128), i %% 128)
  return wrk.format(method, path, h, body)
end
"""


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a Lua string literal


def wrk_script(p: Path_, workdir: Path) -> Path:
    fixed = "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in p.headers.items()) + "}"
    body = lua_string(p.body) if p.body else "nil"
    script = workdir / f"{p.name}.lua"
    script.write_text(
        LUA_REQUEST % (lua_string(p.method), lua_string(p.path), body, fixed, ADDRESSES) + WRK_REPORT
    )
    return script


def run_wrk(base: str, script: Path, load: Load) -> Result:
    args = wrk_load_args(load)
    args += ["--timeout", "10s", "-s", str(script)]
    return wrk_result([*args, base], load)


def ask(port: int, p: Path_) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            p.method, p.path, body=p.body or None, headers={**p.headers, "X-Forwarded-For": "10.9.9.9"}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def viewer(port: int, public_name: str) -> tuple[str, str]:
    """An anonymous viewer's session cookie and CSRF token, from the real
    page, the cookie as the page's first status answer leaves it (in a
    browser, the start's answer: Flask-Login's session protection marks the
    session not fresh, once)."""
    cookies: SimpleCookie = SimpleCookie()
    page = ""
    for path, headers in (
        (f"{BASE}/", {}),
        (f"{BASE}/status?deployment={public_name}", {"HX-Request": "true"}),
    ):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            sent = "; ".join(f"{k}={m.value}" for k, m in cookies.items())
            conn.request("GET", path, headers={**headers, **({"Cookie": sent} if sent else {})})
            response = conn.getresponse()
            page = page or response.read().decode()
            for header in response.headers.get_all("Set-Cookie") or []:
                cookies.load(header)
        finally:
            conn.close()
    found = CSRF_META.search(page)
    if not found or not cookies:
        raise BenchError("the viz page came without a session cookie or CSRF token")
    return "; ".join(f"{k}={m.value}" for k, m in cookies.items()), found.group(1)


def load_rounds(
    p: Path_, bare: Side, dormouse: Side, load: Load, rounds: int, warmup: float, workdir: Path
) -> list[tuple[Result, Result]]:
    script = wrk_script(p, workdir)
    run: Callable[[Side, Load], Result] = lambda side, lo: checked(side, run_wrk(side.url, script, lo))  # noqa: E731
    if warmup > 0:
        for side in (bare, dormouse):
            run(side, Load(warmup, load.connections, load.client_threads))
    pairs = []
    for i in range(1, rounds + 1):
        b = run(bare, load)
        d = run(dormouse, load)
        pairs.append((b, d))
        row(
            f"{p.name} {i}",
            b.rps,
            b.p99_ms,
            d.rps,
            d.p99_ms,
            d.rps / b.rps,
            d.socket_errors + b.socket_errors,
        )
    return pairs


def row(label, bare_rps, bare_p99, rps, p99, ratio, errors: int = 0) -> None:
    note = f"  ({errors} socket errors)" if errors else ""
    print(
        f"{label:>14} {bare_rps:>10.0f} {bare_p99:>7.1f} {rps:>10.0f} {p99:>7.1f} {ratio:>8.2f}{note}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of (bare, Dormouse) per path; default 3"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per side and round")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unrecorded load per side first")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (production default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (default 8)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (the issue's 32)")
    parser.add_argument("--client-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--database-url", help="a PostgreSQL server's URL (a database is made on it)")
    parser.add_argument("--path", action="append", choices=list(BEFORE), help="only this path (repeatable)")
    parser.add_argument("--sql-requests", type=int, default=200, help="requests per path counted in-process")
    parser.add_argument("--cpu-requests", type=int, default=2000, help="requests per CPU timing (0: none)")
    parser.add_argument("--sql-only", action="store_true", help="the in-process counts only, no servers")
    args = parser.parse_args(argv)
    load = Load(args.duration, args.connections, args.client_threads)
    chosen = args.path or list(BEFORE)

    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="dormouse-bench-") as tmp:
        workdir = Path(tmp)

        def measure() -> int:
            if not args.sql_only and pick_client("wrk") != "wrk":
                raise BenchError("wrk is needed (a POST with a body and headers)")
            with database(args.database_url, workdir) as url:
                env = dormouse_env(workdir, url, args.workers, args.threads)
                public_name = prepare(env)
                in_process(env, public_name, args.sql_requests, args.cpu_requests)
                if args.sql_only:
                    return 0
                dormouse, bare = dormouse_and_bare(env, workdir)
                with running(dormouse, bare):
                    dormouse.wait_ready("/healthz")
                    bare.wait_ready("/_auth/viz")
                    cookie, csrf = viewer(dormouse.port, public_name)
                    hot = [p for p in paths(public_name, cookie, csrf) if p.name in chosen]
                    for p in hot:
                        p.check(*ask(dormouse.port, p))
                        Path_(p.name, p.method, p.path, {}, p.body, 200).check(*ask(bare.port, p), bare=True)
                    describe(args, load, url)
                    sides = Side("bare", bare.base, {}, bare), Side("dormouse", dormouse.base, {}, dormouse)
                    results = {
                        p.name: load_rounds(p, *sides, load, args.rounds, args.warmup, workdir) for p in hot
                    }
                    for p in hot:  # still running, still right
                        p.check(*ask(dormouse.port, p))
                    summarise(results)
                    return 0

        return exit_code("hot_paths", measure)


def describe(args, load: Load, url: str) -> None:
    db_name = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(
        f"\nHot paths vs a bare Flask endpoint (tiny JSON): gunicorn {args.workers} workers x {args.threads} "
        f"gthread threads each; {load.connections} keep-alive connections from wrk ({load.client_threads} "
        f"threads); {args.rounds} rounds x {load.duration:g} s per side and path, interleaved; {db_name}; "
        f"{os.cpu_count()} CPUs (shared with the load generator)\n"
    )
    print(f"{'path round':>14} {'bare req/s':>10} {'p99 ms':>7} {'req/s':>10} {'p99 ms':>7} {'ratio':>8}")


def summarise(results: dict[str, list[tuple[Result, Result]]]) -> None:
    print(f"\n{'path':>14} {'bare req/s':>10} {'p99 ms':>7} {'req/s':>10} {'p99 ms':>7} {'ratio':>8}  goal")
    for name, pairs in results.items():
        ratio = median([d.rps / b.rps for b, d in pairs])
        bare, dormouse = [p[0] for p in pairs], [p[1] for p in pairs]
        verdict = "MEETS" if ratio >= TARGET else "BELOW"
        print(
            f"{name:>14} {median([r.rps for r in bare]):>10.0f} {median([r.p99_ms for r in bare]):>7.1f} "
            f"{median([r.rps for r in dormouse]):>10.0f} {median([r.p99_ms for r in dormouse]):>7.1f} "
            f"{ratio:>8.2f}  >= {TARGET} {verdict} (issue 11's start: {BEFORE[name]})"
        )


if __name__ == "__main__":
    sys.exit(main())
