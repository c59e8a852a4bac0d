"""Viewer traces for the idle-policy simulator (bench/idle_sim.py): who opens
which app's page when, when that page has focus, and when it is closed.

A trace is a list of :class:`Session`: one page of one app, opened (a full
page load) at ``start`` and closed at ``end``, focused during ``focused``
(disjoint, in order, the first beginning at the load) and blurred between
them and after the last until the close. A focus period after a blur is a
**returning tab**. Times are seconds from the trace's start.

Every generator takes a ``random.Random``: the same seed gives the same trace.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DAY = 86400.0


@dataclass(frozen=True)
class Session:
    app: int
    start: float
    focused: tuple[tuple[float, float], ...]
    end: float

    def __post_init__(self) -> None:
        last = self.start
        for a, b in self.focused:
            if not (last <= a < b):
                raise ValueError(f"focus periods must be ordered and disjoint: {self.focused}")
            last = b
        if not self.focused or self.focused[0][0] != self.start or self.end < last:
            raise ValueError("a session starts focused at its load and ends after its last focus")


def _session(app: int, start: float, rng: random.Random, focus_mean: float, periods_mean: float) -> Session:
    """One page: focus periods (exponential, ``focus_mean`` s), blurs between them
    (60 % a glance elsewhere ~45 s, 30 % ~8 min, 10 % ~1 h); closed right
    after its last focus, or (a quarter of them) left open blurred ~2 h."""
    periods = []
    t = start
    count = 1 + int(rng.expovariate(1 / max(periods_mean - 1, 1e-9))) if periods_mean > 1 else 1
    for n in range(count):
        if n:
            kind = rng.random()
            t += rng.expovariate(1 / (45 if kind < 0.6 else 480 if kind < 0.9 else 3600)) + 1
        length = max(10.0, rng.expovariate(1 / focus_mean))
        periods.append((t, t + length))
        t += length
    end = t + (rng.expovariate(1 / 7200) if rng.random() < 0.25 else rng.uniform(0, 5))
    return Session(app, start, tuple(periods), end)


def synthetic(rng: random.Random, *, apps: int = 20, days: float = 7) -> list[Session]:
    """A mix of apps, each with its own popularity (0.5 to 8 visits a day,
    in the daytime: 08:00-20:00), sessions of about three focus periods of
    ~6 minutes with the blurs of :func:`_session` between them."""
    sessions = []
    for app in range(apps):
        per_day = rng.uniform(0.5, 8)
        for day in range(int(days)):
            t = day * DAY + 8 * 3600
            while True:
                t += rng.expovariate(per_day / (12 * 3600))
                if t >= day * DAY + 20 * 3600:
                    break
                sessions.append(_session(app, t, rng, focus_mean=360, periods_mean=3))
    return sorted(sessions, key=lambda s: s.start)


def compute_studio(rng: random.Random, *, days: float = 10) -> list[Session]:
    """One app shaped like Compute Studio's published figures (54 deployments
    in 10 days, ~1 h average lifetime, ~25 % of the time running, under its
    policy of a sweep every 15 minutes and 30 minutes stale): ~7 visits a
    day at any hour (visits close together share a deployment), each one
    page (now and then a second viewer joins within the quarter hour) with
    shorter focus periods than :func:`synthetic`'s."""
    sessions = []
    t = 0.0
    while True:
        t += rng.expovariate(7 / DAY)
        if t >= days * DAY:
            break
        sessions.append(_session(0, t, rng, focus_mean=420, periods_mean=2))
        if rng.random() < 0.3:
            sessions.append(_session(0, t + rng.uniform(60, 900), rng, focus_mean=300, periods_mean=2))
    return sorted(sessions, key=lambda s: s.start)
