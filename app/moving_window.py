"""Moving-window counts in one worker's memory, for a limit checked on a
hot answer (the entry-token limit, :class:`app.rate_limits.EntryTokenLimit`).

The same rule as Flask-Limiter's ``moving-window`` strategy on its
``memory://`` storage (the limits library): a hit counts for exactly one
window after it was made, a refused hit is not counted, and a key may have
at most ``amount`` hits in any window. What differs is the upkeep: that
storage forgets old hits with a background thread that wakes 10 ms after
every hit and walks every key it holds; with thousands of clients in the last
minute that walk took ~10 ms of CPU, ~50 times a second, more than the
answers themselves (bench/hot_paths.py, docs/performance.md "Hot paths").
Here a key's old hits are dropped when the key is hit, and keys nobody hit
for a whole window are dropped by one walk per window length, made by the
hit that finds it due.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence


class MovingWindows:
    """Hits per key within ``limits``, each ``(amount, seconds)``: at most
    ``amount`` counted hits in any ``seconds``."""

    def __init__(self, limits: Sequence[tuple[int, float]]) -> None:
        if not limits or any(amount < 1 or seconds <= 0 for amount, seconds in limits):
            raise ValueError(f"limits must be (amount >= 1, seconds > 0) pairs: {limits!r}")
        self.limits = tuple(sorted(limits, key=lambda limit: limit[1]))
        self.longest = max(seconds for _, seconds in limits)
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._next_walk = float("-inf")

    def __len__(self) -> int:
        return len(self._hits)

    def hit(self, key: str, *, now: float) -> float | None:
        """Count a hit of ``key`` at ``now`` (seconds, any monotonic clock)
        and return None; or, when a limit refuses it, count nothing and return
        the seconds until a hit of ``key`` would pass."""
        with self._lock:
            if now >= self._next_walk:
                self._forget_idle(now)
            times = self._hits.get(key)
            if times is None:
                times = self._hits[key] = deque()
            while times and times[0] <= now - self.longest:
                times.popleft()
            for amount, seconds in self.limits:
                if len(times) < amount:
                    continue
                oldest_that_counts = times[-amount]  # the amount-th newest hit
                if oldest_that_counts > now - seconds:
                    return oldest_that_counts + seconds - now
            times.append(now)
            return None

    def _forget_idle(self, now: float) -> None:
        """Drop the keys whose newest hit is a whole window old (under the lock)."""
        cutoff = now - self.longest
        for key in [key for key, times in self._hits.items() if not times or times[-1] <= cutoff]:
            del self._hits[key]
        self._next_walk = now + self.longest
