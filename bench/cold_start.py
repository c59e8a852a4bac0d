"""Cold-start overhead: what Dormouse adds to an app's own start-up, for the
Dash and the Bokeh demo.

Goal (issue 11, point 4): overhead <= 250 ms median for both demos.

    .venv/bin/python bench/cold_start.py                    # 5 rounds per framework
    .venv/bin/python bench/cold_start.py --rounds 3 --framework dash
    .venv/bin/python bench/cold_start.py --trace            # and when Traefik's route went live

It runs the product as ``make run`` does, in a temporary instance (SQLite,
``flask db upgrade``, ``flask demo load``, then ``python -m app.front_door``:
Traefik on one port in front of gunicorn, the real local backend; rate limits
and the sweep off), then for each framework interleaves rounds of

* **baseline**: the very command the local backend runs for the demo (the
  app's own environment's Python, the framework's launch from
  app/backends/frameworks.py through local_commands, the same environment
  variables and prefix), started by hand; the time from ``Popen`` to its first
  HTTP 200 on its own port (asked every 10 ms);
* **candidate**: a viewer through the front door: GET the viz page (for its
  CSRF token, untimed), then, timed, the page's ``POST …/viz/start`` (as htmx
  sends it), the page's status polls on the schedule each answer's partial
  sets (``hx-trigger="every Ns"`` or ``load delay:Ns``: the next request N s
  after the answer, as htmx does), until the partial shows the iframe, and
  the first 200 of the app through Traefik at the iframe's URL (its entry
  token exchanged by the forwardAuth check on the way);

and stops the deployment after each candidate round (``flask deployments
stop``), so every round is cold. It prints the medians, the overhead
(candidate - baseline, median of the rounds' differences) and, for each
round, when the backend saw the app ready (``ready_at - created_at``).
It exits 0 whatever the figure, 1 if it could not measure; every process it
starts is stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.app_launch import DEADLINE, DEMOS, SHARED_ENVS, by_hand, flask, launch_command, product_env
from bench.harness import BenchError, Server, exit_code, free_port, median, request, running, sigterm_as_exit

TARGET_MS = 250.0
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
STATUS = re.compile(r'id="viz-status"[^>]*data-status="([^"]+)"')
TRIGGER = re.compile(r'hx-trigger="(?:every |load delay:)([0-9.]+)(ms|s)"')
HX_GET = re.compile(r'hx-get="([^"]+)"')
FRAME_SRC = re.compile(r'<iframe class="viz-frame" src="([^"]+)"')


@dataclass
class Viewer:
    """A browser's requests, over plain HTTP to the front door's port."""

    port: int
    viz_host: str  # viz.dormouse.localhost:PORT
    cookies: dict[str, str]

    def call(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=b"" if method == "POST" else None, headers=sent)
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key.strip()] = rest.split(";", 1)[0]
            return response.status, body
        finally:
            conn.close()


def next_delay(partial: str) -> float:
    found = TRIGGER.search(partial)
    if not found:
        raise BenchError(f"a starting partial without a poll trigger:\n{partial[:600]}")
    value = float(found.group(1))
    return value / 1000 if found.group(2) == "ms" else value


def page_start(viewer: Viewer, path: str) -> dict[str, float | str]:
    """What the viz page does, timed from its start request to the app's
    first 200 through Traefik. Returns the moments (s after the start)."""
    status, page = viewer.call("GET", f"{path}viz/")
    token = CSRF_META.search(page)
    if status != 200 or not token:
        raise BenchError(f"GET {path}viz/ answered {status} without a CSRF token")
    hx = {"HX-Request": "true", "HX-Current-URL": f"http://127.0.0.1:{viewer.port}{path}viz/",
          "HX-Target": "viz-status", "HX-Trigger": "viz-status"}  # fmt: skip
    t0 = time.monotonic()
    status, partial = viewer.call("POST", f"{path}viz/start", {**hx, "X-CSRFToken": token.group(1)})
    answers = [(0.0, time.monotonic() - t0)]  # (sent, answered), s after the start
    polls = 0
    while True:
        state = STATUS.search(partial)
        if status not in (200, 286) or not state:
            raise BenchError(f"the page got HTTP {status}:\n{partial[:600]}")
        if state.group(1) != "starting":
            break
        if time.monotonic() - t0 > DEADLINE:
            raise BenchError(f"{path} still starting after {DEADLINE:.0f} s")
        time.sleep(next_delay(partial))
        url = HX_GET.search(partial)
        if not url:
            raise BenchError(f"a starting partial without hx-get:\n{partial[:600]}")
        sent = time.monotonic() - t0
        status, partial = viewer.call("GET", html.unescape(url.group(1)), hx)
        answers.append((sent, time.monotonic() - t0))
        polls += 1
    t_running = time.monotonic()
    frame = FRAME_SRC.search(partial)
    if state.group(1) != "running" or not frame:
        raise BenchError(f"the app did not run ({state.group(1)}):\n{partial[:1200]}")
    src = html.unescape(frame.group(1))
    rest = src.split("://", 1)[1].split("/", 1)[1]
    code, _ = request(f"http://127.0.0.1:{viewer.port}/{rest}", headers={"Host": viewer.viz_host})
    t_app = time.monotonic()
    if code != 200:
        raise BenchError(f"the app answered {code} through Traefik at {src}")
    requests = " ".join(f"{a * 1e3:.0f}+{(b - a) * 1e3:.0f}" for a, b in answers)
    return {"running": t_running - t0, "total": t_app - t0, "polls": polls, "requests": requests}


# --- a trace of one start ------------------------------------------------------------


class RouteWatch(threading.Thread):
    """When Traefik began to serve a new route under ``path``'s owner/title
    (the gate's 401 instead of Traefik's 404), asked every 20 ms."""

    def __init__(self, port: int, viz_host: str, run_dir: Path, known: set[str]) -> None:
        super().__init__(daemon=True)
        self.port, self.viz_host, self.run_dir, self.known = port, viz_host, run_dir, known
        self.t0 = time.monotonic()
        self.live_at: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        import json

        prefix = None
        while not self.done.is_set() and time.monotonic() - self.t0 < DEADLINE:
            if prefix is None:
                for record in self.run_dir.glob("*.json"):
                    if record.name not in self.known:
                        try:
                            prefix = json.loads(record.read_text())["path"]
                        except (OSError, ValueError, KeyError):
                            pass
            else:
                try:
                    code, _ = request(
                        f"http://127.0.0.1:{self.port}{prefix}", headers={"Host": self.viz_host}
                    )
                    if code != 404:
                        self.live_at = time.monotonic() - self.t0
                        return
                except OSError:
                    pass
            time.sleep(0.02)


# --- rounds ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--framework", choices=sorted(DEMOS), action="append")
    parser.add_argument("--trace", action="store_true", help="also time when Traefik's route went live")
    parser.add_argument(
        "--envs-dir",
        type=Path,
        default=SHARED_ENVS if SHARED_ENVS.is_dir() else None,
        help="ENVS_DIR for the apps' environments (default: the tests' shared ones)",
    )
    args = parser.parse_args(argv)
    chosen = args.framework or sorted(DEMOS)
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="dormouse-cold-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = product_env(workdir, port, args.envs_dir)
        door = Server("front door", [sys.executable, "-m", "app.front_door"], env, port, workdir / "door.log")

        def measure() -> int:
            flask(env, "db", "upgrade")
            flask(env, "demo", "load")
            with running(door):
                door.wait_ready("/healthz", timeout=90)
                return run_rounds(door, env, workdir, chosen, args)

        return exit_code("cold_start", measure)


def run_rounds(door: Server, env: dict[str, str], workdir: Path, chosen: list[str], args) -> int:
    viz_host = f"viz.dormouse.localhost:{door.port}"
    run_dir = workdir / "instance" / "deployments"
    summary = []
    for fw in chosen:
        owner_title = DEMOS[fw]
        path = f"/{owner_title}/"
        # a first start builds nothing new, but warms the OS's caches for both sides
        page_start(Viewer(door.port, viz_host, {}), path)
        flask(env, "deployments", "stop", owner_title)
        command = launch_command(env, owner_title)
        by_hand(command, workdir / f"{fw}-by-hand.log")
        columns = "by hand | page → running | page → app 200 | overhead | backend ready after | polls"
        print(
            f"\n{fw} ({owner_title}), {args.rounds} rounds: {columns}"
            + (" | route live" if args.trace else "")
        )
        bases, cands, overs = [], [], []
        for i in range(1, args.rounds + 1):
            door.check_running()
            base = by_hand(command, workdir / f"{fw}-by-hand.log")
            watch = None
            if args.trace:
                watch = RouteWatch(door.port, viz_host, run_dir, {p.name for p in run_dir.glob("*.json")})
                watch.start()
            viewer = Viewer(door.port, viz_host, {})
            cand = page_start(viewer, path)
            if watch is not None:
                watch.done.set()
                watch.join()
            _, body = viewer.call("GET", f"{path}viz/status", {"Accept": "application/json"})
            ready = seconds_between(body)
            flask(env, "deployments", "stop", owner_title)
            total = float(cand["total"])
            bases.append(base)
            cands.append(total)
            overs.append(total - base)
            traced = ""
            if watch is not None:
                traced = f" | {watch.live_at * 1e3:.0f} ms" if watch.live_at is not None else " | -"
                traced += f"\n           requests (sent+took, ms): {cand['requests']}"
            running = float(cand["running"]) * 1e3
            print(
                f"  round {i}: {base * 1e3:.0f} ms | {running:.0f} ms | {total * 1e3:.0f} ms | "
                f"{(total - base) * 1e3:+.0f} ms | {ready} | {cand['polls']}{traced}"
            )
        summary.append((fw, median(bases), median(cands), median(overs)))
    print(f"\nmedians (goal: overhead <= {TARGET_MS:.0f} ms)")
    for fw, base, cand, over in summary:
        verdict = "met" if over * 1e3 <= TARGET_MS else "missed"
        print(f"  {fw}: by hand {base * 1e3:.0f} ms, through Dormouse {cand * 1e3:.0f} ms "
              f"({cand / base:.2f}x), overhead {over * 1e3:+.0f} ms: {verdict}")  # fmt: skip
    return 0


def seconds_between(status_json: str) -> str:
    import json
    from datetime import datetime

    data = json.loads(status_json)
    if not data.get("ready_at") or not data.get("created_at"):
        return "-"
    gap = datetime.fromisoformat(data["ready_at"]) - datetime.fromisoformat(data["created_at"])
    return f"{gap.total_seconds() * 1e3:.0f} ms"


if __name__ == "__main__":
    sys.exit(main())
