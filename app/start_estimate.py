"""How long this app usually takes to start, from its past cold starts, for
the viz page's "usually ready in about X s" and "taking longer than usual".

:func:`estimate` is a pure function of the durations (the median of the
recent ones, and their 95th percentile past which a start is slow; nothing
with fewer than :data:`MIN_SAMPLES`). :func:`for_app` reads the recent cold
starts once and keeps the answer for :data:`CACHE_SECONDS` in this process,
so pages polling a start ask the database about once a minute; a running
app's polls and pings never ask.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from .extensions import db
from .models import Deployment
from .usage import percentile, seconds_between

RECENT = 20  # the cold starts an estimate looks at, the latest first
MIN_SAMPLES = 3  # fewer than this: no estimate
CACHE_SECONDS = 60.0
CACHE_SIZE = 1000  # apps kept; past that the cache starts again


@dataclass(frozen=True)
class Estimate:
    typical: float  # seconds: the median of the recent cold starts
    slow: float  # seconds: their 95th percentile; past it, "taking longer than usual"
    samples: int


def estimate(durations: list[float]) -> Estimate | None:
    """The estimate from these cold-start durations (seconds), or None with
    fewer than :data:`MIN_SAMPLES`."""
    values = sorted(d for d in durations if d >= 0)
    if len(values) < MIN_SAMPLES:
        return None
    typical = percentile(values, 0.5)
    slow = percentile(values, 0.95)
    assert typical is not None and slow is not None
    return Estimate(typical=typical, slow=max(slow, typical), samples=len(values))


def recent_cold_starts(app_id: int, limit: int = RECENT) -> list[float]:
    """Seconds from request to ready of the app's latest ``limit`` deployments
    that became ready (one indexed query: app_id, created_at)."""
    rows = db.session.scalars(
        select(seconds_between(Deployment.created_at, Deployment.ready_at))
        .where(Deployment.app_id == app_id, Deployment.ready_at.is_not(None))
        .order_by(Deployment.created_at.desc())
        .limit(limit)
    )
    return [float(v) for v in rows if v is not None]


_cache: dict[int, tuple[float, Estimate | None]] = {}


def for_app(app_id: int) -> Estimate | None:
    """The app's estimate, from this process's cache when fresh."""
    now = time.monotonic()
    cached = _cache.get(app_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = estimate(recent_cold_starts(app_id))
    if len(_cache) >= CACHE_SIZE:
        _cache.clear()
    _cache[app_id] = (now + CACHE_SECONDS, found)
    return found


def forget() -> None:
    """Empty the cache (tests)."""
    _cache.clear()
