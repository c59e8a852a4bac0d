"""The stats pages' three plots, drawn on the server as SVG: running intervals
on a timeline, running hours per day, and the cold-start distribution.

Each builder is a pure function from :mod:`app.usage`'s results to a
:class:`Plot`: rectangles, ticks and labels in pixels, rounded, with nothing
but numbers and plain strings in it. ``templates/_plots.html`` draws a Plot;
every string (an app's title in a tooltip, say) reaches the page only
through Jinja's autoescaping, and nothing here writes markup. The colours
are CSS classes (``bar-<kind>``, from :data:`KINDS`) styled by
``static/css/dormouse.css``: the CSP allows no inline style, and SVG's
geometry attributes (x, y, width, height) are not styles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .plot_axes import Tick, nice_step, nice_ticks, number, scale, time_ticks
from .usage import DayHours, Interval

WIDTH = 760  # the viewBox's width; the page scales the SVG to its column
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 44  # margins around the plotting area
TIMELINE_LEFT = 150  # room for the lanes' names
ROW, ROW_GAP = 16, 6  # a timeline row's height and the space between rows
MAX_ROWS = 40  # timeline rows drawn; the rest are counted in the note
BAR_HEIGHT = 150  # the bar charts' plotting height
MIN_BAR = 1.5  # px: a deployment of a few seconds is still seen
STOP_KINDS = ("idle", "owner", "admin", "failed", "gone")
# Every class a bar may have: a stop reason, still running, another reason, hours, a count.
KINDS = (*STOP_KINDS, "live", "other", "hours", "count")
KIND_WORDS = {
    "idle": "stopped when idle",
    "owner": "stopped by its owner",
    "admin": "stopped by an admin",
    "failed": "failed",
    "gone": "gone (lost by the backend)",
    "live": "still running",
    "other": "stopped (other reason)",
}
EMPTY = "No deployments in this window."


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # one of KINDS: the CSS class bar-<kind>
    label: str  # its tooltip (<title>), plain text
    key: str = ""  # data-key, for tests and scripts: a deployment id, a day, a bin


@dataclass(frozen=True)
class Plot:
    id: str  # the element id (and its <title>/<desc> ids' stem)
    title: str
    desc: str  # what it shows, in words, for screen readers
    width: float
    height: float
    left: float  # the plotting area: x from left to right, y from top to bottom
    right: float
    top: float
    bottom: float
    x_label: str
    y_label: str
    bars: tuple[Bar, ...] = ()
    x_ticks: tuple[Tick, ...] = ()
    y_ticks: tuple[Tick, ...] = ()  # with grid lines
    lanes: tuple[Tick, ...] = ()  # the timeline's row names, at each lane's centre
    legend: tuple[tuple[str, str], ...] = ()  # (kind, words)
    note: str = ""
    empty_text: str = EMPTY

    @property
    def empty(self) -> bool:
        return not self.bars


def _frame(height: float, bottom: float, left: float = LEFT) -> dict[str, float]:
    """A plot's size and plotting area: the width and the right and top
    margins are the same for every plot."""
    return {
        "width": WIDTH,
        "height": height,
        "left": left,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": bottom,
    }


def duration_words(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _r(value: float) -> float:
    return round(value, 1)


# --- the timeline ----------------------------------------------------------------


def kind_of(interval: Interval) -> str:
    if interval.status in ("starting", "running"):
        return "live"
    return interval.stop_reason if interval.stop_reason in STOP_KINDS else "other"


def _pack(intervals: Sequence[Interval]) -> list[int]:
    """Each interval's row within its lane: the first row free at its start
    (greedy, by start), so runs that do not overlap share a row."""
    ends: list[datetime] = []
    rows = []
    for iv in intervals:
        for n, end in enumerate(ends):
            if end <= iv.start:
                ends[n] = iv.end
                rows.append(n)
                break
        else:
            ends.append(iv.end)
            rows.append(len(ends) - 1)
    return rows


def timeline(
    intervals: Sequence[Interval],
    start: datetime,
    end: datetime,
    *,
    lane_of: Callable[[Interval], str],
    plot_id: str = "plot-timeline",
    title: str = "Running intervals",
) -> Plot:
    """One bar per deployment from its start to its stop (clipped to the
    window), coloured by how it ended; deployments in lanes named by
    ``lane_of`` (the deployment's name on an app's page, the app on the
    site's), runs that overlap in a lane on rows of their own."""
    lanes: dict[str, list[Interval]] = {}
    for iv in sorted(intervals, key=lambda i: (i.start, i.deployment_id)):
        lanes.setdefault(lane_of(iv), []).append(iv)
    placed: list[tuple[Interval, int, str]] = []  # (interval, row, lane)
    lane_ticks: list[Tick] = []
    row = 0
    dropped = 0
    for lane, members in lanes.items():
        packed = _pack(members)
        rows = max(packed) + 1
        if row + rows > MAX_ROWS:
            dropped += len(members)
            continue
        for iv, r in zip(members, packed, strict=True):
            placed.append((iv, row + r, lane))
        centre = TOP + (row + rows / 2) * (ROW + ROW_GAP) - ROW_GAP / 2
        lane_ticks.append(Tick(_r(centre), lane if len(lane) <= 22 else lane[:21] + "…"))
        row += rows
    rows_drawn = max(row, 1)
    bottom = TOP + rows_drawn * (ROW + ROW_GAP)
    height = bottom + BOTTOM
    span = (end - start).total_seconds()
    x = scale(0.0, span, TIMELINE_LEFT, WIDTH - RIGHT)
    bars = []
    for iv, r, lane in placed:
        x0 = x((iv.start - start).total_seconds())
        x1 = x((iv.end - start).total_seconds())
        kind = kind_of(iv)
        label = (
            f"{lane} ({iv.name}): {iv.start:%Y-%m-%d %H:%M} to {iv.end:%Y-%m-%d %H:%M} UTC, "
            f"{duration_words(iv.seconds)}, {KIND_WORDS[kind]}"
        )
        bars.append(
            Bar(
                x=_r(x0),
                y=_r(TOP + r * (ROW + ROW_GAP)),
                width=_r(max(MIN_BAR, x1 - x0)),
                height=ROW,
                kind=kind,
                label=label,
                key=str(iv.deployment_id),
            )
        )
    kinds = {b.kind for b in bars}
    shown = len(bars)
    desc = (
        f"{shown} deployment{'s' if shown != 1 else ''} "
        f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, "
        f"one bar each from its start to its stop, in {len(lane_ticks)} lanes"
    )
    note = f"{dropped} more deployments in further lanes are not drawn." if dropped else ""
    return Plot(
        id=plot_id,
        title=title,
        desc=desc + ".",
        **_frame(_r(height), _r(bottom), left=TIMELINE_LEFT),
        x_label="time (UTC)",
        y_label="",
        bars=tuple(bars),
        x_ticks=tuple(time_ticks(start, end, x)),
        lanes=tuple(lane_ticks),
        legend=tuple((k, KIND_WORDS[k]) for k in KIND_WORDS if k in kinds),
        note=note,
    )


# --- bar charts --------------------------------------------------------------------


def _bars_frame(values: Sequence[float]) -> tuple[Callable[[float], float], list[Tick], float, float]:
    top = max(values, default=0.0)
    ticks = nice_ticks(top if top > 0 else 1.0)
    bottom = TOP + BAR_HEIGHT
    y = scale(0.0, ticks[-1], bottom, TOP)
    return y, [Tick(_r(y(t)), number(t)) for t in ticks], bottom, bottom + BOTTOM


def hours_per_day(
    days: Sequence[DayHours], *, plot_id: str = "plot-hours", title: str = "Running hours per day"
) -> Plot:
    """One bar per UTC day: the hours the app ran (the site: app-hours)."""
    hours = [d.hours for d in days]
    y, y_ticks, bottom, height = _bars_frame(hours)
    band = (WIDTH - RIGHT - LEFT) / max(len(days), 1)
    every = max(1, math.ceil(len(days) / 10))  # at most ~10 day labels
    bars, x_ticks = [], []
    for n, d in enumerate(days):
        x0 = LEFT + n * band
        if n % every == 0:
            x_ticks.append(Tick(_r(x0 + band / 2), d.day.strftime("%b %d")))
        if d.hours <= 0:
            continue
        top = min(y(d.hours), bottom - MIN_BAR)  # a few seconds still show, on the axis
        bars.append(
            Bar(
                x=_r(x0 + band * 0.1),
                y=_r(top),
                width=_r(max(MIN_BAR, band * 0.8)),
                height=_r(bottom - top),
                kind="hours",
                label=f"{d.day:%Y-%m-%d}: {d.hours:.2f} hours running",
                key=d.day.isoformat(),
            )
        )
    total = sum(hours)
    busiest = max(days, key=lambda d: d.hours, default=None)
    desc = f"{len(days)} days, {total:.1f} hours running in all"
    if busiest is not None and busiest.hours > 0:
        desc += f"; the most on {busiest.day:%Y-%m-%d} ({busiest.hours:.1f} hours)"
    return Plot(
        id=plot_id,
        title=title,
        desc=desc + ".",
        **_frame(_r(height), _r(bottom)),
        x_label="day (UTC)",
        y_label="hours",
        bars=tuple(bars),
        x_ticks=tuple(x_ticks),
        y_ticks=tuple(y_ticks),
        empty_text="Nothing ran in this window.",
    )


MAX_BINS = 20


def bin_width(longest: float) -> float:
    """A round bin width (1, 2, 2.5 or 5 × 10^k seconds, at least 0.1)
    giving at most :data:`MAX_BINS` bins below ``longest``."""
    if longest <= 0:
        return 1.0
    return max(0.1, nice_step(longest / MAX_BINS))


def cold_start_histogram(
    seconds: Sequence[float],
    *,
    plot_id: str = "plot-cold-starts",
    title: str = "Cold-start times",
    p50: float | None = None,
    p95: float | None = None,
) -> Plot:
    """How many deployments took how long from request to ready: round bins
    from 0 to the longest."""
    values = [max(0.0, float(v)) for v in seconds]
    if not values:
        return Plot(
            id=plot_id,
            title=title,
            desc="No cold starts in this window.",
            **_frame(TOP + BAR_HEIGHT + BOTTOM, TOP + BAR_HEIGHT),
            x_label="seconds from request to ready",
            y_label="deployments",
            empty_text="No deployment became ready in this window.",
        )
    width = bin_width(max(values))
    count = max(1, math.floor(max(values) / width + 1e-9) + 1)
    counts = [0] * count
    for v in values:
        counts[min(count - 1, math.floor(v / width + 1e-9))] += 1
    y, y_ticks, bottom, height = _bars_frame([float(c) for c in counts])
    y_ticks = [t for t in y_ticks if float(t.label).is_integer()]  # whole deployments only
    x = scale(0.0, count * width, LEFT, WIDTH - RIGHT)
    bars = []
    for n, c in enumerate(counts):
        if c == 0:
            continue
        lo, hi = n * width, (n + 1) * width
        top = y(c)
        bars.append(
            Bar(
                x=_r(x(lo) + 1),
                y=_r(top),
                width=_r(max(MIN_BAR, x(hi) - x(lo) - 2)),
                height=_r(bottom - top),
                kind="count",
                label=f"{number(lo)} to {number(hi)} s: {c} deployment{'s' if c != 1 else ''}",
                key=number(lo),
            )
        )
    every = max(1, math.ceil((count + 1) / 10))
    x_ticks = [Tick(_r(x(n * width)), number(round(n * width, 10))) for n in range(0, count + 1, every)]
    desc = f"{len(values)} cold starts in bins of {number(width)} s, the longest {max(values):.1f} s"
    if p50 is not None and p95 is not None:
        desc += f"; median {p50:.1f} s, 95th percentile {p95:.1f} s"
    return Plot(
        id=plot_id,
        title=title,
        desc=desc + ".",
        **_frame(_r(height), _r(bottom)),
        x_label="seconds from request to ready",
        y_label="deployments",
        bars=tuple(bars),
        x_ticks=tuple(x_ticks),
        y_ticks=tuple(y_ticks),
    )
