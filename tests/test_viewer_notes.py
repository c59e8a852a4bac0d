"""What the viz page tells its viewer (app/viewer_notes.py) and the start
estimate (app/start_estimate.py): pure functions, the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app import viewer_notes
from app.idle import IdleLimits
from app.start_estimate import MIN_SAMPLES, Estimate, estimate

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def limits(load: float, ping: float) -> IdleLimits:
    return IdleLimits(load_timeout=load, ping_timeout=ping, start_timeout=300)


@pytest.mark.parametrize(
    ("load", "ping", "notice"),
    [
        (1800, 1800, "Sleeps after 30 min without viewers"),
        (600, 1800, "Sleeps after 10 min–30 min without viewers"),
        (1800, 600, "Sleeps after 10 min–30 min without viewers"),
        (45, 45, "Sleeps after 45 s without viewers"),
        (7200, 7200, "Sleeps after 2 h without viewers"),
        (5400, 5400, "Sleeps after 1.5 h without viewers"),
    ],
)
def test_sleep_notice_from_the_idle_limits(load, ping, notice):
    assert viewer_notes.sleep_notice(limits(load, ping), keep_awake_until=None, now=T0) == notice


def test_sleep_notice_counts_the_coalescing_slack_and_the_goodbye():
    # the defaults: load 60 s, ping 300 s (+5 s slack), 60 s after the last page closed
    lim = IdleLimits(60, 300, 300, activity_resolution=5, goodbye_grace=60)
    assert (
        viewer_notes.sleep_notice(lim, keep_awake_until=None, now=T0)
        == "Sleeps after 60 s–5 min without viewers"
    )
    # a goodbye grace shorter than both limits is the soonest it sleeps
    short = IdleLimits(600, 600, 300, activity_resolution=5, goodbye_grace=30)
    assert (
        viewer_notes.sleep_notice(short, keep_awake_until=None, now=T0)
        == "Sleeps after 30 s–10 min without viewers"
    )
    # the slack can tip the longest span over a rounding step
    slack = IdleLimits(60, 85, 300, activity_resolution=10)
    assert (
        viewer_notes.sleep_notice(slack, keep_awake_until=None, now=T0)
        == "Sleeps after 60 s–2 min without viewers"
    )


def test_sleep_notice_names_an_admins_keep_awake_while_it_lasts():
    lim = limits(1800, 1800)
    until = T0 + 90 * M
    kept = viewer_notes.sleep_notice(lim, keep_awake_until=until, now=T0)
    assert kept == "Kept awake by an admin until 13:30 UTC; then sleeps after 30 min without viewers"
    past = viewer_notes.sleep_notice(lim, keep_awake_until=T0 - M, now=T0)
    assert past == "Sleeps after 30 min without viewers"


@dataclass
class Dep:
    created_at: datetime
    ready_at: datetime | None = None
    latest_load_at: datetime | None = None
    latest_ping_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None


@pytest.mark.parametrize(
    ("dep", "words"),
    [
        # last ping at +10 min, stopped at +41 min: 31 minutes without viewers
        (Dep(T0, T0 + M, T0 + 2 * M, T0 + 10 * M, T0 + 41 * M, "idle"),
         "This app went to sleep after 31 minutes without viewers."),
        # never pinged: from the latest load
        (Dep(T0, T0 + M, T0 + 5 * M, None, T0 + 35 * M, "idle"),
         "This app went to sleep after 30 minutes without viewers."),
        # never loaded after it became ready: from when it was ready
        (Dep(T0, T0 + 3 * M, T0, None, T0 + 3 * M + timedelta(seconds=12), "idle"),
         "This app went to sleep after 12 seconds without viewers."),
        (Dep(T0, T0 + M, stopped_at=T0 + 200 * M, stop_reason="idle", latest_ping_at=T0 + 20 * M),
         "This app went to sleep after 3 hours without viewers."),
        (Dep(T0, T0 + M, stopped_at=T0 + 2 * M, stop_reason="owner"), "Its owner stopped it."),
        (Dep(T0, T0 + M, stopped_at=T0 + 2 * M, stop_reason="admin"), "An administrator stopped it."),
        (Dep(T0, T0 + M, stopped_at=T0 + 2 * M, stop_reason="gone"), "It stopped unexpectedly."),
        (Dep(T0, T0 + M, stopped_at=T0 + 2 * M, stop_reason=None), "It is not running."),
    ],
)  # fmt: skip
def test_why_a_stopped_deployment_is_not_running(dep, words):
    assert viewer_notes.why_stopped(dep) == words


def test_only_an_app_that_went_to_sleep_wakes_by_itself():
    assert viewer_notes.wakes_by_itself(Dep(T0, stop_reason="idle"))
    for reason in ("owner", "admin", "gone", "failed", None):
        assert not viewer_notes.wakes_by_itself(Dep(T0, stop_reason=reason))


def test_no_estimate_from_too_few_cold_starts():
    assert MIN_SAMPLES == 3
    assert estimate([]) is None
    assert estimate([5.0, 6.0]) is None
    assert estimate([5.0, 6.0, -1.0]) is None  # a negative duration is no sample


def test_estimate_is_the_median_and_slow_past_the_95th_percentile():
    assert estimate([4.0, 8.0, 6.0]) == Estimate(typical=6.0, slow=pytest.approx(7.8), samples=3)
    found = estimate([float(n) for n in range(1, 21)])  # 1..20 s, in any order
    assert found is not None and found.typical == 10.5 and found.slow == pytest.approx(19.05)
    same = estimate([7.0] * 5)
    assert same == Estimate(typical=7.0, slow=7.0, samples=5)
