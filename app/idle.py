"""The keep-or-stop decision for a live deployment, as one pure function.

Nothing here reads the clock or the database: the caller passes ``now`` and
the deployment's timestamps, which is what makes the policy easy to test with a
table of cases and to replay in a simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class IdleLimits:
    load_timeout: float  # seconds since the latest full page load
    ping_timeout: float  # seconds since the latest focused-page ping
    start_timeout: float  # seconds a deployment may take to become ready


class Activity(Protocol):
    """What the decision reads of a deployment (a ``Deployment`` row has it)."""

    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def ready_at(self) -> datetime | None: ...
    @property
    def latest_load_at(self) -> datetime | None: ...
    @property
    def latest_ping_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Verdict:
    stop: bool
    kind: str  # "" when kept; "idle" or "start-timeout" when stopped
    detail: str  # a sentence for logs, the CLI and the admin view


def decide(*, now: datetime, deployment: Activity, limits: IdleLimits) -> Verdict:
    """Keep or stop one live deployment.

    A **starting** deployment is never idle: its viewer is waiting for it. It
    is stopped only when it has been starting for longer than
    ``start_timeout`` (kind ``start-timeout``: it failed to start).

    A **running** deployment is stopped as idle only when its latest load is
    older than ``load_timeout`` **and** its latest ping is older than
    ``ping_timeout``: one recent signal of either kind keeps it, so a visitor
    who is watching is never cut off. The load clock starts no earlier than
    the moment the app became ready (a viewer who waited through a slow start
    has not had the chance to ping yet); a deployment never pinged has no ping
    to keep it.
    """
    d = deployment
    if d.status == "starting":
        started_for = (now - d.created_at).total_seconds()
        if started_for > limits.start_timeout:
            return Verdict(
                True, "start-timeout", f"did not become ready within {limits.start_timeout:.0f} seconds"
            )
        return Verdict(False, "", f"starting for {started_for:.0f}s")
    load_at = max(t for t in (d.latest_load_at, d.ready_at, d.created_at) if t is not None)
    load_age = (now - load_at).total_seconds()
    ping_age = None if d.latest_ping_at is None else (now - d.latest_ping_at).total_seconds()
    if load_age <= limits.load_timeout:
        return Verdict(False, "", f"loaded {load_age:.0f}s ago")
    if ping_age is not None and ping_age <= limits.ping_timeout:
        return Verdict(False, "", f"pinged {ping_age:.0f}s ago")
    pinged = "never pinged" if ping_age is None else f"last ping {ping_age:.0f}s ago"
    return Verdict(True, "idle", f"no page load for {load_age:.0f}s, {pinged}")
