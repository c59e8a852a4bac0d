"""The idle policy, as a table of cases with the clock passed in."""

from datetime import datetime, timedelta, timezone

import pytest

from app.idle import IdleLimits, decide

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
LIMITS = IdleLimits(load_timeout=1800, ping_timeout=600, start_timeout=120)


def ago(seconds: float | None):
    return None if seconds is None else NOW - timedelta(seconds=seconds)


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
        # starting within the start limit but idle for longer than the (shorter) limits
    ],
)
def test_decide(status, created, load, ping, stop, kind):
    verdict = decide(now=NOW, status=status, created_at=ago(created), latest_load_at=ago(load),
                     latest_ping_at=ago(ping), limits=LIMITS)
    assert verdict.stop is stop
    assert verdict.kind == kind
    assert verdict.detail  # always explains itself


def test_separate_limits_can_be_tuned_independently():
    # a short ping limit, a long load limit: a viewer who left focus long ago
    # is still protected by a recent full page load
    limits = IdleLimits(load_timeout=7200, ping_timeout=30, start_timeout=60)
    kept = decide(now=NOW, status="running", created_at=ago(8000), latest_load_at=ago(7000),
                  latest_ping_at=ago(3000), limits=limits)
    assert not kept.stop
    stopped = decide(now=NOW, status="running", created_at=ago(8000), latest_load_at=ago(7201),
                     latest_ping_at=ago(31), limits=limits)
    assert stopped.stop and stopped.kind == "idle"
    assert "7201" in stopped.detail and "31" in stopped.detail
