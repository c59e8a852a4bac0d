"""Idle-policy simulator: replay viewer traces (bench/idle_traces.py) against
an idle policy with a simulated clock, and report what it costs and whom it
interrupts. Pure Python over the policy: no server, no database.

    .venv/bin/python bench/idle_sim.py                 # the three policies on the traces
    .venv/bin/python bench/idle_sim.py --tune          # and a grid of our limits, with and without signals
    .venv/bin/python bench/idle_sim.py --seeds 10

The rule is the real one: at each sweep tick, every live deployment is judged
by :func:`app.idle.decide` (the function the sweep and its SQL twin apply),
with the deployment's timestamps moved as the lifecycle moves them: a page
load sets ``latest_load_at``; a ping from a focused page sets
``latest_ping_at`` only when the stored one is at least
``ACTIVITY_RESOLUTION`` old (``lifecycle.record_ping``); a deployment is
``starting`` for ``--cold-start`` seconds, then ``ready``. The page is
modelled on static/js/viz.js: it pings every ``PING_INTERVAL`` while focused,
learns that its app stopped at its next ping (or when it regains focus), and
then wakes it (a cold start).

Figures, per policy and trace:

- **running h / viewer h**: hours a deployment was live (starting or running)
  over hours at least one viewer had a page of the app focused;
- **cold starts / viewer h**;
- **interruptions**: the app stopped while a viewer had its page focused
  (including the gap between a tab regaining focus and its next ping);
- **returns to a stopped app**: a blurred tab whose app was stopped meanwhile
  regains focus (by blur length: up to 5 min, longer).

The point-6 signals, as static/js/viz.js sends them and app/idle.py reads
them: ``ping_on_focus`` (the page pings the moment it regains focus, at most
once a second) and the goodbye (``IdleLimits.goodbye_grace``: a beacon on page
close counts one goodbye, never more than the page loads, as
``lifecycle.record_goodbye`` does; once loads minus goodbyes is 0 and nothing
loaded or pinged since the latest goodbye, ``decide`` keeps the app only
``goodbye_grace`` seconds after it; ``--beacon-loss`` of the beacons never
arrive). The ping's keep has the coalescing slack (``ACTIVITY_RESOLUTION``),
as in ``decide``.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from app.idle import decide
from bench.idle_model import (
    BRIEF_BLUR,
    Deployment,
    Page,
    Policy,
    Result,
    at,
    policies_from_settings,
    viewer_seconds,
)
from bench.idle_traces import Session, compute_studio, synthetic

__all__ = ["Policy", "Result", "policies_from_settings", "simulate", "viewer_seconds"]


def simulate(
    sessions: list[Session],
    policy: Policy,
    *,
    cold_start: float = 15.0,
    beacon_loss: float = 0.05,
    seed: int = 0,
    phase: float | None = None,
) -> Result:
    """Replay the sessions of **one** app against ``policy``. The sweep ticks
    at ``phase`` + k × its interval (``phase``: drawn from ``seed`` unless given)."""
    rng = random.Random(seed)
    lim = policy.limits
    res = Result(viewing=viewer_seconds(sessions))
    events: list[tuple[float, int, str, object]] = []
    seq = 0

    def push(t: float, kind: str, data: object = None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, data))

    pages = [Page(s) for s in sessions]
    for page in pages:
        push(page.session.start, "load", page)
        for n, (a, b) in enumerate(page.session.focused):
            if n:
                push(a, "focus", page)
            push(b, "blur", page)
        push(page.session.end, "close", page)
    phase = rng.uniform(0, policy.sweep_interval) if phase is None else phase
    dep: Deployment | None = None

    def start(t: float) -> Deployment:
        nonlocal dep
        dep = Deployment("starting", at(t))
        res.cold_starts += 1
        push(t + cold_start, "ready", dep)
        # the next sweep tick after now, on the sweep's own phase
        k = math.floor((t - phase) / policy.sweep_interval + 1e-9) + 1
        push(phase + k * policy.sweep_interval, "sweep", dep)
        return dep

    def show(page: Page, t: float) -> None:
        """The page (re)loads and shows the live deployment, starting one if none."""
        d = dep if dep is not None else start(t)
        d.latest_load_at = at(t)
        d.page_loads += 1
        page.dep, page.stale = d, False
        schedule_ping(page, t)

    def schedule_ping(page: Page, t: float) -> None:
        s = page.session
        k = int((t - s.start) / policy.ping_interval + 1e-9) + 1  # the next tick after t
        page.timer += 1
        push(s.start + k * policy.ping_interval, "ping", (page, page.timer))

    def ping(page: Page, t: float) -> None:
        page.pinged_at = t
        d = page.dep
        if d is None or d is not dep:
            return
        cutoff = at(t - policy.activity_resolution)
        if d.latest_ping_at is None or d.latest_ping_at <= cutoff:
            d.latest_ping_at = at(t)

    def stop(d: Deployment, t: float) -> None:
        nonlocal dep
        dep = None
        life = (at(t) - d.created_at).total_seconds()
        res.running += life
        res.deployments.append(life)
        for page in pages:
            if page.open and page.dep is d:
                if page.focused:
                    res.interruptions += 1
                    show(page, t)  # it learns at its next ping and wakes it
                else:
                    page.stale = True

    while events:
        t, _, kind, data = heapq.heappop(events)
        if kind == "load":
            page = data
            page.open = page.focused = True
            show(page, t)
        elif kind == "focus":
            page = data
            page.focused = True
            res.returns += 1
            brief = t - page.blurred_at <= BRIEF_BLUR
            res.brief_returns += brief
            if page.stale or page.dep is not dep:
                res.stopped_returns += 1
                res.stopped_brief_returns += brief
                show(page, t)
            else:
                if policy.ping_on_focus and t - page.pinged_at >= 1.0:  # viz.js: at most once a second
                    ping(page, t)
                schedule_ping(page, t)
        elif kind == "blur":
            page = data
            page.focused = False
            page.blurred_at = t
        elif kind == "close":
            page = data
            page.open = page.focused = False
            d = page.dep
            sent = policy.goodbye is not None and d is not None and d is dep and rng.random() >= beacon_loss
            if sent and d.goodbyes < d.page_loads:  # lifecycle.record_goodbye
                d.goodbyes += 1
                d.latest_goodbye_at = at(t)
        elif kind == "ping":
            page, timer = data
            if (
                timer == page.timer
                and page.open
                and (page.focused or policy.ping_when_blurred)
                and not page.stale
            ):
                ping(page, t)
                schedule_ping(page, t)
        elif kind == "ready":
            if data is dep and dep.status == "starting":
                dep.status, dep.ready_at = "running", at(t)
        elif kind == "sweep":
            if data is not dep:
                continue  # that deployment is gone; its successor has its own ticks
            d = dep
            if decide(now=at(t), deployment=d, limits=lim).stop:
                stop(d, t)
            else:
                push(t + policy.sweep_interval, "sweep", d)
    return res


def run_all(traces: dict[str, list[list[Session]]], policy: Policy, cold_start: float, beacon_loss: float):
    """{trace family: Result summed over its traces and apps}."""
    out = {}
    for family, runs in traces.items():
        total = Result()
        for n, sessions in enumerate(runs):
            by_app: dict[int, list[Session]] = {}
            for s in sessions:
                by_app.setdefault(s.app, []).append(s)
            for app, app_sessions in sorted(by_app.items()):
                total.add(simulate(app_sessions, policy, cold_start=cold_start, beacon_loss=beacon_loss,
                                   seed=n * 1000 + app))  # fmt: skip
        out[family] = total
    return out


def row(label: str, family: str, r: Result) -> str:
    brief = f"{r.stopped_brief_returns}/{r.brief_returns}"
    longer = f"{r.stopped_returns - r.stopped_brief_returns}/{r.returns - r.brief_returns}"
    return (f"{label:<38} {family:<15} {r.ratio:>8.2f} {r.cold_per_hour:>8.2f} {r.interruptions:>6} "
            f"{brief:>11} {longer:>11} {len(r.deployments):>6}")  # fmt: skip


HEADER = (f"{'policy':<38} {'trace':<15} {'run/view':>8} {'cold/vh':>8} {'inter.':>6} "
          f"{'stopped≤5m':>11} {'stopped>5m':>11} {'deps':>6}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", type=int, default=5, help="synthetic and Compute-Studio-shaped traces each"
    )
    parser.add_argument("--cold-start", type=float, default=15.0, help="seconds from start to ready (15)")
    parser.add_argument("--beacon-loss", type=float, default=0.05, help="share of goodbyes lost (0.05)")
    parser.add_argument("--tune", action="store_true", help="also a grid of our limits and signals")
    parser.add_argument("--goal", type=float, default=1.15, help="running h per viewer h to meet (1.15)")
    args = parser.parse_args(argv)

    from app.config import Settings

    settings = Settings.from_env({"DORMOUSE_ENV": "testing", "SECRET_KEY": "sim"})  # the defaults
    policies = policies_from_settings(settings)
    traces = {
        "synthetic": [synthetic(random.Random(seed)) for seed in range(args.seeds)],
        "compute-studio": [compute_studio(random.Random(100 + seed)) for seed in range(args.seeds)],
    }
    cs = run_all({"cs": traces["compute-studio"]}, policies["compute-studio"], args.cold_start, 0)["cs"]
    lives = sorted(cs.deployments)
    print(f"Compute-Studio-shaped traces under its own policy, per 10 days: {len(lives) / args.seeds:.0f} "
          f"deployments, mean lifetime {sum(lives) / len(lives) / 3600:.2f} h, running "
          f"{cs.running / args.seeds / (10 * 86400):.0%} of the time "
          f"(published: 54, ~1 h, ~25 %)")  # fmt: skip
    print(f"ours = the defaults in app/config.py: IDLE_LOAD_TIMEOUT={settings.idle_load_timeout:.0f} "
          f"IDLE_PING_TIMEOUT={settings.idle_ping_timeout:.0f} SWEEP_INTERVAL={settings.sweep_interval:.0f} "
          f"PING_INTERVAL={settings.ping_interval:.0f} "
          f"ACTIVITY_RESOLUTION={settings.activity_resolution:.0f} "
          f"GOODBYE_GRACE={settings.goodbye_grace:.0f}, with the signals of static/js/viz.js")  # fmt: skip
    print(HEADER)
    ours = policies["ours"]
    plain = ours.without_signals()
    former = replace(plain, name="former 1800/1800/60", sweep_interval=60,
                     limits=replace(plain.limits, load_timeout=1800, ping_timeout=1800))  # fmt: skip
    grace = ours.goodbye if ours.goodbye is not None else 60.0
    shown = [policies["compute-studio"], policies["heartbeat-60s"], former, plain,
             ours.with_signals(focus=True, goodbye=None), ours.with_signals(focus=False, goodbye=grace),
             ours.with_signals(focus=True, goodbye=grace)]  # fmt: skip
    for policy in shown:
        for family, r in run_all(traces, policy, args.cold_start, args.beacon_loss).items():
            print(row(policy.label(), family, r), flush=True)
    if args.tune:
        tune(traces, ours, args)
    return 0


def tune(traces, ours: Policy, args) -> None:
    """Our limits over a grid, each with and without the signals; those that
    meet the goal on every trace family (running ≤ goal × viewing, no
    interruption), kindest to brief blurs first, then cheapest; and, for
    each set of signals, the cheapest with no interruption at all."""
    print(f"\ntuning: limits with ≤ {args.goal} running h per viewer h and 0 interruptions on both families")
    print(HEADER)
    met, best, kind = [], {}, {}
    for signals in ((False, None), (True, None), (False, 60.0), (True, 60.0), (True, 120.0)):
        for load in (60, 120, 300, 600, 1800):
            for ping in (60, 120, 300, 600, 1800):
                for sweep in (15, 60):
                    p = replace(ours, limits=replace(ours.limits, load_timeout=load, ping_timeout=ping),
                                sweep_interval=sweep, name=f"ours L{load} P{ping} S{sweep}",
                                ).with_signals(focus=signals[0], goodbye=signals[1])  # fmt: skip
                    results = run_all(traces, p, args.cold_start, args.beacon_loss)
                    worst = max(r.ratio for r in results.values())
                    if any(r.interruptions for r in results.values()):
                        continue
                    if worst <= args.goal:
                        met.append((worst, p, results))
                    if signals not in best or worst < best[signals][0]:
                        best[signals] = (worst, p, results)
                    brief = sum(r.brief_returns for r in results.values())
                    if sum(r.stopped_brief_returns for r in results.values()) <= 0.01 * brief and (
                        signals not in kind or worst < kind[signals][0]
                    ):
                        kind[signals] = (worst, p, results)
    # kindest first (fewest tabs back from a brief blur to a stopped app), then cheapest
    met.sort(key=lambda m: (sum(r.stopped_brief_returns for r in m[2].values()), m[0]))
    for _, p, results in met[:6]:
        for family, r in results.items():
            print(row(p.label(), family, r))
    if not met:
        print("(none in the grid)")
    for title, chosen in (
        ("the cheapest with no interruption, for each set of signals", best),
        ("the cheapest with no interruption that stops under ≤ 1 % of the tabs back from a brief blur", kind),
    ):
        print(f"\n{title}")
        print(HEADER)
        for _, p, results in chosen.values():
            for family, r in results.items():
                print(row(p.label(), family, r))


if __name__ == "__main__":
    sys.exit(main())
