"""Usage statistics (app/usage.py) on SQLite and PostgreSQL, from hand-made
deployments with known intervals, and the counters record_load and
record_ping move."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from app import lifecycle, usage
from app.extensions import db
from app.models import Deployment, utcnow
from tests.factories import make_app, make_deployment, make_user

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # the window: ten days from here
END = T0 + timedelta(days=10)
H = timedelta(hours=1)
S = timedelta(seconds=1)


def at(day: int, hour: float = 0) -> datetime:
    """2026-01-<day> at ``hour`` UTC."""
    return datetime(2026, 1, day, tzinfo=UTC) + timedelta(hours=hour)


@pytest.fixture
def history(any_app):
    """Two apps. ``wave``'s deployments, with what each contributes to [T0, END):

    - d1 spans the window's start (created 2 h before, stopped 2 h after): 2 h
      running; created before the window (not counted there), stopped in it;
    - d2, d3 (another name) and d8 (inside d3) overlap on 01-02 00:00-02:00:
      2 h of union (their sum is 2 h 40 min);
    - d4 failed after 3 minutes and never became ready;
    - d5 is still running at the window's end: 12 h;
    - d6 ran before the window, d7 after it: nothing.
    """
    alice = make_user("alice")
    wave = make_app(alice, "wave")
    sliders = make_app(make_user("bob"), "sliders", framework="bokeh")
    for viz in (wave, sliders):
        viz.created_at = datetime(2025, 1, 1, tzinfo=UTC)
    db.session.commit()
    d = {}
    d[1] = make_deployment(
        wave,
        T0 - 2 * H,
        ready_at=T0 - 2 * H + 30 * S,
        stopped_at=T0 + 2 * H,
        page_loads=100,
        viewer_seconds=999,
    )
    d[2] = make_deployment(
        wave, at(2), ready_at=at(2) + 10 * S, stopped_at=at(2, 1), page_loads=3, viewer_seconds=120
    )
    d[3] = make_deployment(
        wave, at(2, 0.5), ready_at=at(2, 0.5) + 20 * S, stopped_at=at(2, 2), stop_reason="admin", name="other"
    )
    d[8] = make_deployment(
        wave, at(2, 40 / 60), ready_at=at(2, 40 / 60) + 5 * S, stopped_at=at(2, 50 / 60), name="third"
    )
    d[4] = make_deployment(wave, at(3), stopped_at=at(3) + 180 * S, stop_reason="failed")
    d[5] = make_deployment(wave, at(10, 12), ready_at=at(10, 12) + 40 * S, page_loads=4, viewer_seconds=600)
    d[6] = make_deployment(wave, at(1) - 12 * 24 * H, stopped_at=at(1) - 11 * 24 * H)
    d[7] = make_deployment(wave, at(12), stopped_at=at(12, 1), name="later")
    b = make_deployment(sliders, at(5), ready_at=at(5) + 60 * S, stopped_at=at(5, 10), page_loads=1)
    return wave, sliders, d, b


WAVE_RUNNING = 2 * 3600 + 2 * 3600 + 180 + 12 * 3600  # 57780


def test_app_stats_exact(history):
    wave, _, _, _ = history
    stats = usage.app_stats(wave.id, T0, END)
    assert stats.apps == 1
    assert stats.deployments == 5  # d2, d3, d4, d5, d8
    assert stats.running_seconds == pytest.approx(WAVE_RUNNING, abs=1e-3)
    assert stats.percent_running == pytest.approx(100 * 57780 / 864000, abs=1e-6)
    lifetimes = [180, 600, 3600, 5400, 14400]  # d4, d8, d2, d3, d1
    assert stats.mean_lifetime == pytest.approx(sum(lifetimes) / 5, abs=1e-3)
    assert stats.median_lifetime == pytest.approx(3600, abs=1e-3)
    assert stats.cold_starts == 4
    assert stats.cold_start_p50 == pytest.approx(15, abs=1e-3)  # of 5, 10, 20, 40
    assert stats.cold_start_p95 == pytest.approx(37, abs=1e-3)
    assert stats.page_loads == 7
    assert stats.viewer_minutes == pytest.approx(12)
    assert stats.stops_by_reason == {"admin": 1, "failed": 1, "idle": 3}


def test_site_stats_sum_the_apps(history):
    stats = usage.site_stats(T0, END)
    assert stats.apps == 2
    assert stats.deployments == 6
    running = WAVE_RUNNING + 10 * 3600
    assert stats.running_seconds == pytest.approx(running, abs=1e-3)
    assert stats.percent_running == pytest.approx(100 * running / (2 * 864000), abs=1e-6)
    assert stats.cold_starts == 5
    assert stats.page_loads == 8
    assert stats.stops_by_reason == {"admin": 1, "failed": 1, "idle": 4}


def test_cold_starts_are_the_windows_ready_durations(history):
    wave, sliders, _, _ = history
    assert usage.cold_starts(wave.id, T0, END) == pytest.approx([5, 10, 20, 40], abs=1e-3)
    assert usage.cold_starts(sliders.id, T0, END) == pytest.approx([60], abs=1e-3)
    assert usage.cold_starts(None, T0, END) == pytest.approx([5, 10, 20, 40, 60], abs=1e-3)


def test_running_intervals_are_clipped_to_the_window(history):
    wave, _, d, _ = history
    got = [(iv.deployment_id, iv.start, iv.end) for iv in usage.running_intervals(wave.id, T0, END)]
    assert got == [
        (d[1].id, T0, T0 + 2 * H),
        (d[2].id, at(2), at(2, 1)),
        (d[3].id, at(2, 0.5), at(2, 2)),
        (d[8].id, at(2, 40 / 60), at(2, 50 / 60)),
        (d[4].id, at(3), at(3) + 180 * S),
        (d[5].id, at(10, 12), END),
    ]


def test_hours_per_day_counts_overlaps_once(history):
    wave, _, _, _ = history
    days = usage.hours_per_day(wave.id, T0, END)
    assert [x.day for x in days] == [date(2026, 1, n) for n in range(1, 11)]
    hours = {x.day.day: x.hours for x in days}
    assert hours[1] == pytest.approx(2)
    assert hours[2] == pytest.approx(2)
    assert hours[3] == pytest.approx(0.05)
    assert hours[10] == pytest.approx(12)
    assert sum(hours.values()) == pytest.approx(WAVE_RUNNING / 3600)
    every_app = usage.hours_per_day(None, T0, END)
    assert sum(x.hours for x in every_app) == pytest.approx(WAVE_RUNNING / 3600 + 10)


def test_a_deployment_across_the_whole_window_and_an_empty_window(any_app):
    wave = make_app(make_user("alice"), "wave")
    make_deployment(wave, T0 - 24 * H, ready_at=T0 - 24 * H + 9 * S)  # still running
    stats = usage.app_stats(wave.id, T0, END)
    assert stats.running_seconds == pytest.approx(864000, abs=1e-3)
    assert stats.percent_running == pytest.approx(100)
    assert stats.deployments == 0 and stats.cold_starts == 0 and stats.cold_start_p50 is None
    assert stats.mean_lifetime is None and stats.median_lifetime is None and stats.stops_by_reason == {}
    before = usage.app_stats(wave.id, T0 - 30 * 24 * H, T0 - 25 * 24 * H)
    assert before.running_seconds == 0 and before.percent_running == 0
    with pytest.raises(ValueError):
        usage.app_stats(wave.id, END, T0)


@pytest.mark.parametrize(
    ("intervals", "union"),
    [
        ([(0, 10), (20, 30)], 20),  # apart
        ([(0, 10), (10, 20)], 20),  # touching
        ([(0, 30), (5, 10), (12, 20)], 30),  # nested in one long one
        ([(0, 10), (5, 15), (12, 20)], 20),  # a chain of overlaps
        ([(0, 10), (0, 10)], 10),  # the same interval twice
    ],
)
def test_union_of_overlapping_intervals(any_app, intervals, union):
    wave = make_app(make_user("alice"), "wave")
    for n, (lo, hi) in enumerate(intervals):
        make_deployment(wave, at(2, lo), stopped_at=at(2, hi), name=f"n{n}")
    assert usage.union_running_seconds(T0, END, wave.id) == pytest.approx(union * 3600, abs=1e-3)
    merged = usage.merge([(at(2, lo), at(2, hi)) for lo, hi in intervals])
    assert sum((hi - lo).total_seconds() for lo, hi in merged) == pytest.approx(union * 3600)


def test_percentile_interpolates_like_percentile_cont():
    assert usage.percentile([], 0.5) is None
    assert usage.percentile([7.0], 0.95) == 7.0
    assert usage.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert usage.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == pytest.approx(4.8)


def test_default_window_is_ten_days():
    now = utcnow()
    assert usage.default_window(now) == (now - timedelta(days=10), now)


# --- the counters --------------------------------------------------------------


@pytest.fixture
def wave(any_app):
    return make_app(make_user("alice"), "wave", cpu="1.5", memory="2Gi")


def test_a_deployment_keeps_the_resources_it_started_with(any_app, any_fake_backend, wave):
    dep = lifecycle.ensure_deployment(wave)
    assert (dep.cpu_millicores, dep.memory_mib) == (1500, 2048)
    wave.cpu, wave.memory = "250m", "256Mi"
    db.session.commit()
    db.session.refresh(dep)
    assert (dep.cpu_millicores, dep.memory_mib) == (1500, 2048)


def test_record_load_counts_page_loads(any_app, any_fake_backend, wave):
    dep = lifecycle.ensure_deployment(wave)
    lifecycle.record_load(dep)
    lifecycle.record_load(dep)
    assert dep.page_loads == 2
    lifecycle.stop(dep, reason="admin")
    lifecycle.record_load(dep)  # a stopped deployment is not written
    assert dep.page_loads == 2


def test_written_pings_add_viewer_seconds(any_app, any_fake_backend, wave):
    """PING_INTERVAL 10, ACTIVITY_RESOLUTION 5 (the defaults)."""
    dep = lifecycle.ensure_deployment(wave)
    now = utcnow()
    assert lifecycle.record_ping(dep, now=now)  # the first: one interval
    assert dep.viewer_seconds == pytest.approx(10)
    assert not lifecycle.record_ping(dep, now=now + 1 * S)  # coalesced: not written, nothing added
    assert dep.viewer_seconds == pytest.approx(10)
    assert lifecycle.record_ping(dep, now=now + 6 * S)  # watched all along: the gap
    assert lifecycle.record_ping(dep, now=now + 24 * S)  # one ping lost: still the gap
    assert dep.viewer_seconds == pytest.approx(10 + 6 + 18)
    assert lifecycle.record_ping(dep, now=now + 100 * S)  # back after a break: one interval
    assert dep.viewer_seconds == pytest.approx(44)
    # another worker writes a ping this request has not seen: the gap is
    # unknown, at least ACTIVITY_RESOLUTION is added
    with db.engine.begin() as other_worker:
        other_worker.execute(
            update(Deployment).where(Deployment.id == dep.id).values(latest_ping_at=now + 110 * S)
        )
    assert dep.latest_ping_at == now + 100 * S  # what this request read
    assert lifecycle.record_ping(dep, now=now + 120 * S)
    assert dep.viewer_seconds == pytest.approx(49)
