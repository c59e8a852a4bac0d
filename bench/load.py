"""Load for the benchmarks: ``connections`` keep-alive connections for a
while, from ``wrk`` when installed, else from Python load processes, and what
either measured (:class:`Result`)."""

from __future__ import annotations

import http.client
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.errors import BenchError


@dataclass
class Load:
    """How to load a server: ``connections`` keep-alive connections for ``duration`` s."""

    duration: float
    connections: int
    client_threads: int  # wrk threads, or Python load processes


def pick_client(requested: str = "auto") -> str:
    """``wrk`` when installed (or asked for), else the Python load generator."""
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if requested == "wrk" and not shutil.which("wrk"):
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    return requested


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad_status: int  # answers other than 2xx/3xx
    socket_errors: int
    statuses: dict[int, int] = field(default_factory=dict)  # the Python client only

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def wrk_load_args(load: Load) -> list[str]:
    """wrk's command and load options. wrk takes whole seconds (a fraction is
    rounded up); results are per second of the time its report measured."""
    seconds = max(1, math.ceil(load.duration))
    return ["wrk", f"-t{load.client_threads}", f"-c{load.connections}", f"-d{seconds}s"]


def run_wrk(url: str, headers: dict[str, str], load: Load, workdir: Path) -> Result:
    script = workdir / "report.lua"
    if not script.exists():
        script.write_text(WRK_REPORT)
    args = wrk_load_args(load)
    args += ["--timeout", "10s", "-s", str(script)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    return wrk_result([*args, url], load)


def wrk_result(argv: list[str], load: Load) -> Result:
    """Run ``wrk`` (its script ending with ``WRK_REPORT``) and read its report."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=load.duration + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        bad_status=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
    )


def _python_load_process(url: str, headers: dict[str, str], threads: int, duration: float) -> dict:
    """One load process: ``threads`` keep-alive connections, each sending the
    same GET again as soon as the answer is read, until the deadline."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    start = time.monotonic()
    deadline = start + duration
    latencies: list[list[float]] = [[] for _ in range(threads)]
    statuses: list[Counter[int]] = [Counter() for _ in range(threads)]
    errors = [0] * threads

    def loop(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine, seen = latencies[i], statuses[i]
        while (t0 := time.monotonic()) < deadline:
            try:
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                continue
            mine.append(time.monotonic() - t0)
            seen[response.status] += 1
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.close()

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {
        "latencies": [x for chunk in latencies for x in chunk],
        "statuses": dict(sum(statuses, Counter())),
        "errors": sum(errors),
        "seconds": time.monotonic() - start,
    }


def run_python(url: str, headers: dict[str, str], load: Load, pool) -> Result:
    processes = max(1, min(load.client_threads, load.connections))
    per = [load.connections // processes + (i < load.connections % processes) for i in range(processes)]
    parts = pool.starmap(_python_load_process, [(url, headers, n, load.duration) for n in per])
    latencies = sorted(x for p in parts for x in p["latencies"])
    statuses: Counter[int] = sum((Counter(p["statuses"]) for p in parts), Counter())
    return Result(
        requests=len(latencies),
        seconds=max(p["seconds"] for p in parts),
        p50_ms=percentile(latencies, 50) * 1e3,
        p99_ms=percentile(latencies, 99) * 1e3,
        bad_status=sum(n for status, n in statuses.items() if status >= 400),
        socket_errors=sum(p["errors"] for p in parts),
        statuses=dict(statuses),
    )


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


@contextmanager
def load_generator(client: str, workdir: Path) -> Iterator[Callable[[str, dict[str, str], Load], Result]]:
    """``run(url, headers, load) -> Result`` with ``client`` (see :func:`pick_client`):
    wrk, or Python load processes (made once here, terminated on the way out,
    Ctrl-C included)."""
    if client == "wrk":
        yield lambda url, headers, load: run_wrk(url, headers, load, workdir)
        return
    pool = multiprocessing.get_context("fork").Pool(os.cpu_count() or 2)
    try:
        yield lambda url, headers, load: run_python(url, headers, load, pool)
    finally:
        pool.terminate()
        pool.join()
