"""What the viz page tells its viewer in words: when a running app goes to
sleep if nobody looks, and why a stopped one is not running. The policy's
numbers come from :class:`app.idle.IdleLimits` and the deployment's own
timestamps; nothing here reads the clock or the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from .idle import IdleLimits


class Stopped(Protocol):
    """What :func:`why_stopped` reads of a deployment (a ``Deployment`` has it)."""

    @property
    def created_at(self) -> datetime: ...
    @property
    def ready_at(self) -> datetime | None: ...
    @property
    def latest_load_at(self) -> datetime | None: ...
    @property
    def latest_ping_at(self) -> datetime | None: ...
    @property
    def stopped_at(self) -> datetime | None: ...
    @property
    def stop_reason(self) -> str | None: ...


def short(seconds: float) -> str:
    """A span as the quiet notice says it: "45 s", "30 min", "2 h", "1.5 h"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    hours = round(seconds / 3600, 1)
    return f"{hours:g} h"


def long(seconds: float) -> str:
    """A span in words: "a minute", "12 seconds", "31 minutes", "2 hours"."""
    if seconds < 90:
        n = max(1, round(seconds))
        return "a second" if n == 1 else f"{n} seconds"
    if seconds < 90 * 60:
        n = round(seconds / 60)
        return f"{n} minutes"
    hours = round(seconds / 3600, 1)
    return f"{hours:g} hours"


def sleep_notice(limits: IdleLimits, *, keep_awake_until: datetime | None, now: datetime) -> str:
    """When a running app goes to sleep if nobody looks: the idle rule stops
    it once its latest page load is ``load_timeout`` old and its latest ping
    ``ping_timeout`` (and the coalescing slack) old, or ``goodbye_grace``
    after its last page closed (app/idle.py), so with nobody looking it
    sleeps after the shortest to the longest of these; an admin's keep-awake
    comes first."""
    spans = [limits.load_timeout, limits.ping_timeout + limits.activity_resolution]
    low, high = min(spans + [limits.goodbye_grace or spans[0]]), max(spans)
    span = short(high) if short(low) == short(high) else f"{short(low)}–{short(high)}"
    notice = f"Sleeps after {span} without viewers"
    if keep_awake_until is not None and keep_awake_until > now:
        return f"Kept awake by an admin until {keep_awake_until:%H:%M} UTC; then s{notice[1:]}"
    return notice


def last_activity(dep: Stopped) -> datetime:
    """The latest moment someone loaded or watched the app (or it became ready)."""
    return max(t for t in (dep.latest_load_at, dep.latest_ping_at, dep.ready_at, dep.created_at) if t)


def why_stopped(dep: Stopped) -> str:
    """Why a stopped deployment is not running, truthfully, for its viewer."""
    reason = dep.stop_reason or ""
    if reason == "idle" and dep.stopped_at is not None:
        quiet = (dep.stopped_at - last_activity(dep)).total_seconds()
        return f"This app went to sleep after {long(quiet)} without viewers."
    return {
        "idle": "This app went to sleep because nobody was using it.",
        "owner": "Its owner stopped it.",
        "admin": "An administrator stopped it.",
        "gone": "It stopped unexpectedly.",
        "failed": "It stopped after a failure.",
    }.get(reason, "It is not running.")


def wakes_by_itself(dep: Stopped) -> bool:
    """Whether a visible, focused page may start the app again without a
    click: only when it went to sleep for want of viewers (an owner's or an
    admin's stop is respected until someone asks)."""
    return dep.stop_reason == "idle"
