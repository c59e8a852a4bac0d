"""The idle policy, as a table of cases with the clock passed in."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app.idle import IdleLimits, decide

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
LIMITS = IdleLimits(load_timeout=1800, ping_timeout=600, start_timeout=120)


def ago(seconds: float | None):
    return None if seconds is None else NOW - timedelta(seconds=seconds)


@dataclass
class Seen:
    """The timestamps the decision reads, as a Deployment row holds them."""

    status: str
    created_at: datetime
    latest_load_at: datetime | None = None
    latest_ping_at: datetime | None = None
    ready_at: datetime | None = None


def seen(status, created, load=None, ping=None, ready=None) -> Seen:
    return Seen(status, ago(created), ago(load), ago(ping), ago(ready))


@pytest.mark.parametrize(
    "status, created, load, ping, stop, kind",
    [
        # fresh page load keeps it, whatever the ping says
        ("running", 4000, 10, None, False, ""),
        ("running", 4000, 10, 5000, False, ""),
        # old load, but a recent ping keeps it (someone is watching)
        ("running", 4000, 3600, 60, False, ""),
        ("running", 4000, 3600, 600, False, ""),  # exactly at the ping limit: kept
        # old load and old ping: idle
        ("running", 4000, 3600, 601, True, "idle"),
        ("running", 4000, 1801, 3000, True, "idle"),
        # old load, never pinged (page never had focus): idle
        ("running", 4000, 1801, None, True, "idle"),
        ("running", 4000, 1800, None, False, ""),  # exactly at the load limit: kept
        # never loaded: counts from creation
        ("running", 100, None, None, False, ""),
        ("running", 1801, None, None, True, "idle"),
        # the two limits are separate: a ping younger than the load limit but
        # older than the ping limit does not keep it
        ("running", 4000, 2000, 700, True, "idle"),
        # starting too long: failed to start, whatever the activity
        ("starting", 121, 1, 1, True, "start-timeout"),
        ("starting", 119, 119, None, False, ""),
        ("starting", 120, None, None, False, ""),  # exactly at the start limit: kept
    ],
)
def test_decide(status, created, load, ping, stop, kind):
    verdict = decide(now=NOW, deployment=seen(status, created, load, ping), limits=LIMITS)
    assert verdict.stop is stop
    assert verdict.kind == kind
    assert verdict.detail  # always explains itself


def test_a_starting_deployment_is_never_idle():
    # a slow start (an image pull) under a short load limit: its viewer is
    # waiting, with no ping yet (pings begin once the app shows); only
    # START_TIMEOUT may end it
    limits = IdleLimits(load_timeout=4, ping_timeout=3, start_timeout=300)
    for created in (10, 60, 299):
        verdict = decide(now=NOW, deployment=seen("starting", created, load=created), limits=limits)
        assert not verdict.stop and verdict.kind == "", (created, verdict)
    timed_out = decide(now=NOW, deployment=seen("starting", 301, load=1, ping=1), limits=limits)
    assert timed_out.stop and timed_out.kind == "start-timeout"
    assert "300 seconds" in timed_out.detail


def test_the_load_clock_starts_when_the_app_became_ready():
    # loaded 100 s ago, ready 2 s ago after a slow start: the viewer has had
    # no chance to ping yet, so the app is not idle
    limits = IdleLimits(load_timeout=60, ping_timeout=30, start_timeout=300)
    fresh = decide(now=NOW, deployment=seen("running", 100, load=100, ready=2), limits=limits)
    assert not fresh.stop
    later = decide(now=NOW, deployment=seen("running", 200, load=200, ready=61), limits=limits)
    assert later.stop and later.kind == "idle"


def test_separate_limits_can_be_tuned_independently():
    # a short ping limit, a long load limit: a viewer who left focus long ago
    # is still protected by a recent full page load
    limits = IdleLimits(load_timeout=7200, ping_timeout=30, start_timeout=60)
    kept = decide(now=NOW, deployment=seen("running", 8000, load=7000, ping=3000), limits=limits)
    assert not kept.stop
    stopped = decide(now=NOW, deployment=seen("running", 8000, load=7201, ping=31), limits=limits)
    assert stopped.stop and stopped.kind == "idle"
    assert "7201" in stopped.detail and "31" in stopped.detail
