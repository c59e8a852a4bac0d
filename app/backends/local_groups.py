"""Process groups of the local backend: is one alive, and stopping one.

Each app runs in its own process group, led by its watchdog
(:mod:`local_watchdog`). Stopping it is a hand-over: Dormouse TERMs the group,
the watchdog forwards the TERM to the app, KILLs what is left ``grace`` s
later and reaps every process in the group. Dormouse KILLs the group itself
only when the watchdog cannot finish that: it is gone, or it outlives its own
schedule (``grace + KILL_WAIT``). KILLing a watchdog that is still at work
would leave the app unreaped (a zombie), or alive and out of reach when the
app runs as another user that only the watchdog may signal.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from app.backends.local_watchdog import KILL_WAIT, group_members

SLACK = 1.0  # seconds allowed beyond a schedule for a busy machine
POLL = 0.05


def group_alive(pgid: int) -> bool:
    """True if any live (non-zombie) process is in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(group_members(pgid))  # killpg also counts zombies


def _signal(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pgid: int, give_up: Callable[[float], bool], reap: Callable[[], None]) -> bool:
    """Wait until group ``pgid`` has no live process (True), or until
    ``give_up(seconds waited)`` (False); ``reap`` collects exited children."""
    started = time.monotonic()
    while True:
        reap()
        if not group_alive(pgid):
            return True
        if give_up(time.monotonic() - started):
            return False
        time.sleep(POLL)


def stop_group(
    pgid: int, *, grace: float, watchdog_alive: Callable[[], bool], reap: Callable[[], None]
) -> str:
    """TERM group ``pgid`` and wait for it to go: ``grace + SLACK`` s, or as
    long as the watchdog's own schedule while ``watchdog_alive()``; then KILL
    it. Returns ``"stopped"``, ``"killed"`` or ``"stuck"`` (still there
    ``KILL_WAIT`` s after the KILL)."""
    own_time = grace + SLACK
    watchdog_time = grace + KILL_WAIT + 2 * SLACK

    def give_up(waited: float) -> bool:
        return waited >= watchdog_time or (waited >= own_time and not watchdog_alive())

    _signal(pgid, signal.SIGTERM)
    if wait_gone(pgid, give_up, reap):
        return "stopped"
    _signal(pgid, signal.SIGKILL)
    return "killed" if wait_gone(pgid, lambda waited: waited >= KILL_WAIT, reap) else "stuck"
