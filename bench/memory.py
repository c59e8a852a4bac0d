"""Memory of Dormouse and of one app, each against a baseline of the same run.

    .venv/bin/python bench/memory.py                 # 3 rounds, 500 requests
    .venv/bin/python bench/memory.py --rounds 1 --requests 2000

Two comparisons, each in interleaved rounds (every round starts its processes
afresh and stops them):

* **Dormouse** (``wsgi:app`` under gunicorn.conf.py: the master and its
  workers, the scheduler on, a SQLite instance with the two demo apps) against
  **bare Flask** (bench/bare_app.py under bench/gunicorn_bare.conf.py: the
  same gunicorn settings), idle once ready and again after N requests (the
  gallery ``/`` for Dormouse, a page with its database and templates; the one
  endpoint for the bare app), spread over keep-alive connections.
* **One app as the local backend runs it** (the local watchdog, then the
  app's server from app/backends/frameworks.py in its own environment, the
  demo's prefix variables), once it has answered its first page, for the Dash
  and the Bokeh demo, against **a bare interpreter** of the same environment
  (``python -I -c 'sleep'``): what the framework and the app cost over Python
  itself. The watchdog (Dormouse's own process beside each app) is shown
  apart.

Memory is read from /proc: RSS (``VmRSS``) and, from ``smaps_rollup``, PSS
(shared pages split between the processes sharing them: the honest sum over
several processes) and USS (private pages: what stopping the process frees).
Figures are summed over the process group; the ratios are of PSS.

It exits 0 whatever the figures, 1 if it could not measure; every process it
starts is stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.app_launch import DEMOS, SHARED_ENVS, by_hand_process, flask, launch_command, product_env
from bench.app_launch import stop_group as stop
from bench.harness import (
    BenchError,
    Server,
    dormouse_and_bare,
    exit_code,
    free_port,
    median,
    request,
    sigterm_as_exit,
)
from bench.hot_path_instance import dormouse_env

WATCHDOG = Path(__file__).resolve().parent.parent / "app" / "backends" / "local_watchdog.py"


@dataclass(frozen=True)
class Mem:
    rss: int  # KiB, summed over the processes
    pss: int
    uss: int
    processes: int

    def __add__(self, other: Mem) -> Mem:
        return Mem(
            self.rss + other.rss, self.pss + other.pss, self.uss + other.uss, self.processes + other.processes
        )

    def text(self) -> str:
        return f"RSS {mib(self.rss)}, PSS {mib(self.pss)}, USS {mib(self.uss)} ({self.processes} processes)"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def process_memory(pid: int) -> Mem:
    fields: dict[str, int] = {}
    try:
        for name in ("status", "smaps_rollup"):
            for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    fields[key] = int(parts[0])
    except OSError:
        return Mem(0, 0, 0, 0)
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return Mem(fields.get("VmRSS", 0), fields.get("Pss", 0), uss, 1)


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def group_memory(pgid: int, skip: set[int] = frozenset()) -> Mem:
    total = Mem(0, 0, 0, 0)
    for pid in group_pids(pgid):
        if pid not in skip:
            total += process_memory(pid)
    return total


# --- Dormouse against bare Flask ------------------------------------------------------------


def hammer(base: str, path: str, n: int, connections: int = 8) -> None:
    """``n`` GETs of ``path``, over ``connections`` threads; every answer must be 200."""
    errors: list[str] = []

    def worker(count: int) -> None:
        for _ in range(count):
            status, _ = request(base + path)
            if status != 200:
                errors.append(f"{path}: HTTP {status}")
                return

    threads = [
        threading.Thread(target=worker, args=(n // connections + (i < n % connections),))
        for i in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchError(errors[0])


def server_round(server: Server, path: str, n: int) -> tuple[Mem, Mem]:
    server.start()
    try:
        server.wait_ready(path)
        time.sleep(2.0)  # workers done booting (the scheduler's first tick included)
        server.check_running()
        idle = group_memory(server.proc.pid)
        hammer(server.base, path, n)
        server.check_running()
        return idle, group_memory(server.proc.pid)
    finally:
        server.stop()


def servers(workdir: Path, rounds: int, n: int) -> None:
    env = dormouse_env(workdir, f"sqlite:///{workdir / 'dormouse.db'}", workers=2, threads=8)
    env.update(SCHEDULER_ENABLED="1", RATE_LIMITS="0")
    if SHARED_ENVS.is_dir():
        env.update(ENVS_DIR=str(SHARED_ENVS), ENV_CACHE_DIR=str(SHARED_ENVS.with_name("uv")))
    flask(env, "db", "upgrade")
    flask(env, "demo", "load")
    rows: dict[str, list[tuple[Mem, Mem]]] = {"bare": [], "dormouse": []}
    for i in range(1, rounds + 1):
        dormouse, bare = dormouse_and_bare(env, workdir)
        rows["bare"].append(server_round(bare, "/_auth/viz", n))
        rows["dormouse"].append(server_round(dormouse, "/", n))
        (bare_idle, bare_after), (ours_idle, ours_after) = rows["bare"][-1], rows["dormouse"][-1]
        print(f"  round {i}: bare Flask idle {bare_idle.text()}; after {n} requests {bare_after.text()}")
        print(f"           Dormouse idle {ours_idle.text()}; after {n} requests {ours_after.text()}")
    print(f"\nDormouse (gunicorn master + workers) against bare Flask, medians of {rounds} rounds:")
    for when, k in (("idle", 0), (f"after {n} requests", 1)):
        bare = [r[k] for r in rows["bare"]]
        ours = [r[k] for r in rows["dormouse"]]
        ratio = median([d.pss / b.pss for d, b in zip(ours, bare, strict=True)])
        print(
            f"  {when}: Dormouse {summary(ours)}; bare Flask {summary(bare)}; "
            f"Dormouse / bare (PSS): {ratio:.2f}x"
        )


def summary(mems: list[Mem]) -> str:
    return " ".join(
        f"{f.upper()} {mib(median([getattr(m, f) for m in mems]))}" for f in ("pss", "rss", "uss")
    )


# --- one app against a bare interpreter -------------------------------------------------------


def apps(workdir: Path, rounds: int) -> None:
    port = free_port()
    env = product_env(workdir / "apps", port, SHARED_ENVS if SHARED_ENVS.is_dir() else None)
    flask(env, "db", "upgrade")
    flask(env, "demo", "load")
    for fw in sorted(DEMOS):
        command = launch_command(env, DEMOS[fw])
        bare_argv = [command.argv[0], "-I", "-c", "import time; time.sleep(600)"]
        rows = []
        for _ in range(rounds):
            bare = subprocess.Popen(bare_argv, env=command.env, start_new_session=True)
            try:
                time.sleep(0.5)
                base = group_memory(bare.pid)
            finally:
                stop(bare)
            proc = by_hand_process(command, workdir / f"{fw}.log", watchdog=WATCHDOG)
            try:
                watchdog = process_memory(proc.pid)
                app = group_memory(proc.pid, skip={proc.pid})
            finally:
                stop(proc)
            rows.append((base, watchdog, app))
        base, watchdog, app = (
            Mem(*(int(median([getattr(r[i], f) for r in rows])) for f in ("rss", "pss", "uss", "processes")))
            for i in range(3)
        )
        print(
            f"\n{fw} ({DEMOS[fw]}), medians of {rounds} rounds, after its first page:\n"
            f"  the app: {app.text()}\n  its watchdog: {watchdog.text()}\n"
            f"  bare interpreter of the same environment: {base.text()}\n"
            f"  app / bare interpreter (PSS): {app.pss / base.pss:.1f}x; app + watchdog: "
            f"{mib(app.pss + watchdog.pss)} PSS"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--only", choices=("servers", "apps"))
    args = parser.parse_args(argv)
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="dormouse-mem-") as tmp:

        def measure() -> None:
            if args.only != "apps":
                servers(Path(tmp), args.rounds, args.requests)
            if args.only != "servers":
                apps(Path(tmp), args.rounds)

        return exit_code("memory", measure)


if __name__ == "__main__":
    sys.exit(main())
