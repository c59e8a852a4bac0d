"""The keep-or-stop decision for a live deployment, as one pure function.

Nothing here reads the clock or the database: the caller passes ``now`` and
the timestamps, which is what makes the policy easy to test with a table of
cases and to replay in a simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class IdleLimits:
    load_timeout: float  # seconds since the latest full page load
    ping_timeout: float  # seconds since the latest focused-page ping
    start_timeout: float  # seconds a deployment may take to become ready


@dataclass(frozen=True)
class Verdict:
    stop: bool
    kind: str  # "" when kept; "idle" or "start-timeout" when stopped
    detail: str  # a sentence for logs and the admin view


def decide(
    *,
    now: datetime,
    status: str,
    created_at: datetime,
    latest_load_at: datetime | None,
    latest_ping_at: datetime | None,
    limits: IdleLimits,
) -> Verdict:
    """Keep or stop one live deployment.

    A deployment is stopped as idle only when its latest load is older than
    ``load_timeout`` **and** its latest ping is older than ``ping_timeout``:
    one recent signal of either kind keeps it, so a visitor who is watching is
    never cut off. A deployment never loaded counts from its creation; one never
    pinged has no ping to keep it. A deployment still starting after
    ``start_timeout`` has failed to start.
    """
    if status == "starting":
        started_for = (now - created_at).total_seconds()
        if started_for > limits.start_timeout:
            return Verdict(
                True,
                "start-timeout",
                f"not ready {started_for:.0f}s after creation "
                f"(START_TIMEOUT is {limits.start_timeout:.0f}s)",
            )
    load_at = latest_load_at or created_at
    load_age = (now - load_at).total_seconds()
    ping_age = None if latest_ping_at is None else (now - latest_ping_at).total_seconds()
    if load_age <= limits.load_timeout:
        return Verdict(False, "", f"loaded {load_age:.0f}s ago")
    if ping_age is not None and ping_age <= limits.ping_timeout:
        return Verdict(False, "", f"pinged {ping_age:.0f}s ago")
    pinged = "never pinged" if ping_age is None else f"last ping {ping_age:.0f}s ago"
    return Verdict(True, "idle", f"last load {load_age:.0f}s ago, {pinged}")
