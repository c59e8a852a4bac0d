"""Axes of the stats pages' plots (:mod:`app.svg_plots`): linear scales,
round tick values and round UTC times, as pure functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Tick:
    at: float  # px along its axis
    label: str


def scale(d0: float, d1: float, r0: float, r1: float) -> Callable[[float], float]:
    """The linear map of [d0, d1] onto [r0, r1] (a flat domain maps to r0)."""
    span = d1 - d0
    if span == 0:
        return lambda _v: r0
    return lambda v: r0 + (v - d0) * (r1 - r0) / span


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least ``raw`` (> 0)."""
    if not raw > 0 or math.isinf(raw):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * magnitude >= raw * (1 - 1e-9):
            return m * magnitude
    return 10.0 * magnitude  # pragma: no cover (10 always fits)


def nice_ticks(top: float, target: int = 5) -> list[float]:
    """Round values from 0 up to at least ``top``, about ``target`` steps."""
    step = nice_step(max(top, 0.0) / target if top > 0 else 1.0)
    count = max(1, math.ceil(top / step - 1e-9))
    return [round(step * n, 10) for n in range(count + 1)]


def number(value: float) -> str:
    """A tick label: ``5``, ``2.5``, ``0.25``."""
    return f"{value:g}"


def _r(value: float) -> float:
    return round(value, 1)


# Tick steps on a time axis, from an hour to a month, aligned to UTC midnight.
TIME_STEPS = tuple(timedelta(hours=h) for h in (1, 2, 3, 6, 12)) + tuple(
    timedelta(days=d) for d in (1, 2, 5, 7, 10, 15, 30)
)


def time_ticks(start: datetime, end: datetime, x: Callable[[float], float], most: int = 10) -> list[Tick]:
    """Ticks at round UTC times inside [start, end], at most ``most`` of them."""
    span = (end - start).total_seconds()
    step = next((s for s in TIME_STEPS if span / s.total_seconds() <= most - 1), TIME_STEPS[-1])
    day0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    moment = day0
    while moment < start:
        moment += step
    ticks = []
    fmt = "%H:%M" if step < timedelta(days=1) else "%b %d"
    while moment <= end:
        label = moment.strftime("%b %d" if fmt == "%H:%M" and moment.hour == 0 else fmt)
        ticks.append(Tick(_r(x((moment - start).total_seconds())), label))
        moment += step
    return ticks
