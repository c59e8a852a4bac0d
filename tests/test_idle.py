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
    keep_awake_until: datetime | None = None
    page_loads: int = 0
    goodbyes: int = 0
    latest_goodbye_at: datetime | None = None


def seen(status, created, load=None, ping=None, ready=None, awake=None) -> Seen:
    """``awake``: seconds from now the deployment is kept awake until (negative: past)."""
    return Seen(
        status, ago(created), ago(load), ago(ping), ago(ready), ago(None if awake is None else -awake)
    )


@pytest.mark.parametrize(
    "status, created, load, ping, awake, stop, kind",
    [
        # fresh page load keeps it, whatever the ping says
        ("running", 4000, 10, None, None, False, ""),
        ("running", 4000, 10, 5000, None, False, ""),
        # old load, but a recent ping keeps it (someone is watching)
        ("running", 4000, 3600, 60, None, False, ""),
        ("running", 4000, 3600, 600, None, False, ""),  # exactly at the ping limit: kept
        # old load and old ping: idle
        ("running", 4000, 3600, 601, None, True, "idle"),
        ("running", 4000, 1801, 3000, None, True, "idle"),
        # old load, never pinged (page never had focus): idle
        ("running", 4000, 1801, None, None, True, "idle"),
        ("running", 4000, 1800, None, None, False, ""),  # exactly at the load limit: kept
        # never loaded: counts from creation
        ("running", 100, None, None, None, False, ""),
        ("running", 1801, None, None, None, True, "idle"),
        # the two limits are separate: a ping younger than the load limit but
        # older than the ping limit does not keep it
        ("running", 4000, 2000, 700, None, True, "idle"),
        # starting too long: failed to start, whatever the activity
        ("starting", 121, 1, 1, None, True, "start-timeout"),
        ("starting", 119, 119, None, None, False, ""),
        ("starting", 120, None, None, None, False, ""),  # exactly at the start limit: kept
        # kept awake by an admin: an idle app is kept while the moment is ahead
        ("running", 4000, 3600, 601, 60, False, ""),
        ("running", 4000, 3600, None, 0, False, ""),  # exactly at it: kept
        ("running", 4000, 3600, 601, -1, True, "idle"),  # past it: idle again
        # keeping awake does not keep a start that never ends
        ("starting", 121, None, None, 3600, True, "start-timeout"),
    ],
)
def test_decide(status, created, load, ping, awake, stop, kind):
    verdict = decide(now=NOW, deployment=seen(status, created, load, ping, awake=awake), limits=LIMITS)
    assert verdict.stop is stop
    assert verdict.kind == kind
    assert verdict.detail  # always explains itself
    assert (verdict.until is None) is stop  # a kept one says until when


@pytest.mark.parametrize(
    "status, created, load, ping, awake, left",
    [
        ("running", 4000, 10, None, None, 1790),  # the load keeps it 1800 s
        ("running", 4000, 10, 500, None, 1790),  # the ping (600 s) ends sooner: the load's
        ("running", 4000, 3600, 60, None, 540),  # only the ping keeps it
        ("running", 4000, 3600, 60, 900, 900),  # kept awake for longer than the ping
        ("running", 4000, 3600, 60, 100, 540),  # kept awake for less: the ping's
        ("running", 4000, 3600, 600, None, 0),  # the last moment
        ("running", 100, None, None, None, 1700),  # never loaded: from creation
        (
            "running",
            100,
            100,
            None,
            None,
            1798,
        ),  # ready 2 s ago: the load clock starts then
        ("starting", 20, None, None, 3600, 100),  # START_TIMEOUT, not the keep-awake
    ],
)
def test_until_is_when_the_same_decision_would_stop_it(status, created, load, ping, awake, left):
    ready = 2 if (status, created, load) == ("running", 100, 100) else None
    dep = seen(status, created, load, ping, ready=ready, awake=awake)
    verdict = decide(now=NOW, deployment=dep, limits=LIMITS)
    assert not verdict.stop and verdict.until == NOW + timedelta(seconds=left)
    # the moment it names is the last one at which it is kept; just after, it is stopped
    assert not decide(now=verdict.until, deployment=dep, limits=LIMITS).stop
    later = decide(now=verdict.until + timedelta(microseconds=1), deployment=dep, limits=LIMITS)
    assert later.stop and later.until is None


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


# The goodbye rule and the coalescing slack: load 60, ping 300 (+5 slack), grace 60.
SIGNALS = IdleLimits(
    load_timeout=60, ping_timeout=300, start_timeout=120, activity_resolution=5, goodbye_grace=60
)


@pytest.mark.parametrize(
    "load, ping, loads, byes, bye, awake, stop, left",
    [
        # a ping 304 s ago: past ping_timeout but within the slack (the true
        # last ping may be up to 5 s later than the stored one): kept
        (1000, 304, 1, 0, None, None, False, 1),
        (1000, 305, 1, 0, None, None, False, 0),  # exactly at ping + timeout + slack
        (1000, 305.000001, 1, 0, None, None, True, None),
        # every page closed, nothing since: kept only 60 s after the last goodbye
        (100, 90, 2, 2, 59, None, False, 1),
        (100, 90, 2, 2, 60, None, False, 0),
        (100, 90, 2, 2, 61, None, True, None),
        (100, 90, 1, 2, 61, None, True, None),  # more goodbyes than loads: still none open
        # a page still open (a lost beacon, or a second tab): the timeouts decide
        (100, 90, 3, 2, 61, None, False, 215),
        # a ping or a load after the latest goodbye: the timeouts decide
        (100, 30, 2, 2, 61, None, False, 275),
        (30, 200, 2, 2, 61, None, False, 105),
        # a load or ping at the very moment of the goodbye is not after it
        (61, 61, 2, 2, 61, None, True, None),
        # the goodbye never keeps it longer than the timeouts would
        (10, None, 1, 1, 5, None, False, 50),
        (61, None, 1, 1, 55, None, True, None),
        # keep-awake still keeps it after the last page closed
        (100, 90, 2, 2, 61, 30, False, 30),
    ],
)
def test_goodbyes_and_the_coalescing_slack(load, ping, loads, byes, bye, awake, stop, left):
    dep = Seen(
        "running", ago(4000), ago(load), ago(ping), None, ago(None if awake is None else -awake),
        page_loads=loads, goodbyes=byes, latest_goodbye_at=ago(bye),
    )  # fmt: skip
    verdict = decide(now=NOW, deployment=dep, limits=SIGNALS)
    assert verdict.stop is stop, verdict
    if stop:
        assert verdict.kind == "idle" and verdict.until is None
        return
    assert verdict.until == NOW + timedelta(seconds=left)
    assert decide(now=verdict.until + timedelta(microseconds=1), deployment=dep, limits=SIGNALS).stop


def test_the_goodbye_rule_is_off_without_a_grace_and_says_why_it_stopped():
    dep = Seen("running", ago(4000), ago(100), ago(90), page_loads=1, goodbyes=1, latest_goodbye_at=ago(80))
    off = IdleLimits(load_timeout=60, ping_timeout=300, start_timeout=120)
    assert not decide(now=NOW, deployment=dep, limits=off).stop  # the ping keeps it 300 s
    on = decide(now=NOW, deployment=dep, limits=SIGNALS)
    assert on.stop and on.detail == "its last page closed 80s ago, nothing since"
    kept = decide(now=NOW - timedelta(seconds=30), deployment=dep, limits=SIGNALS)
    assert not kept.stop and kept.detail == "its last page closed 50s ago"
