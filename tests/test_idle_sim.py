"""The idle-policy simulator's core (bench/idle_sim.py, bench/idle_traces.py):
seeded traces are deterministic, and hand-made traces give the running time,
cold starts and interruptions worked out by hand in each test."""

from __future__ import annotations

import random

import pytest

from app.idle import IdleLimits
from bench.idle_sim import Policy, simulate, viewer_seconds
from bench.idle_traces import Session, compute_studio, synthetic


def policy(
    load: float, ping: float, sweep: float, *, goodbye: float | None = None, resolution: float = 0, **signals
) -> Policy:
    limits = IdleLimits(load, ping, 180, activity_resolution=resolution, goodbye_grace=goodbye)
    return Policy("test", limits, sweep, ping_interval=10, activity_resolution=resolution, **signals)


def test_traces_are_seeded_and_deterministic():
    assert synthetic(random.Random(3)) == synthetic(random.Random(3))
    assert synthetic(random.Random(3)) != synthetic(random.Random(4))
    assert compute_studio(random.Random(5)) == compute_studio(random.Random(5))
    trace = synthetic(random.Random(3), apps=4, days=2)
    assert trace and {s.app for s in trace} <= set(range(4))
    assert any(len(s.focused) > 1 for s in trace)  # returning tabs
    assert any(s.end - s.focused[-1][1] > 600 for s in trace)  # tabs left open, blurred


def test_a_session_must_be_well_formed():
    with pytest.raises(ValueError):
        Session(0, 0, ((5, 10),), 20)  # not focused at its load
    with pytest.raises(ValueError):
        Session(0, 0, ((0, 10), (5, 20)), 30)  # overlapping focus
    with pytest.raises(ValueError):
        Session(0, 0, ((0, 10),), 5)  # closed before its focus ends


def test_viewer_seconds_is_the_union_of_focus():
    a = Session(0, 0, ((0, 100), (200, 300)), 300)
    b = Session(0, 50, ((50, 150),), 150)
    assert viewer_seconds([a, b]) == 250


def test_one_focused_session_by_hand():
    # loaded at 0, ready at 10, pinged every 10 s until 590 (closed at 600).
    # The load keeps it until 10 + 300, the last ping until 590 + 120 = 710;
    # sweeps at 0, 60, 120, ...: stopped at 720.
    r = simulate([Session(0, 0, ((0, 600),), 600)], policy(300, 120, 60), cold_start=10, phase=0)
    assert (r.running, r.viewing, r.cold_starts, r.interruptions) == (720, 600, 1, 0)
    assert r.ratio == pytest.approx(1.2)


def test_a_tab_back_in_the_gap_before_its_ping_is_interrupted_unless_it_pings_on_focus():
    # focused 0-100 (last ping 90: kept until 240), blurred until 242; the next
    # tick would ping at 250, but a sweep at 244 stops the app under the viewer.
    trace = [Session(0, 0, ((0, 100), (242, 300)), 300)]
    gap = simulate(trace, policy(60, 150, 4), cold_start=10, phase=0)
    assert (gap.interruptions, gap.cold_starts, gap.returns, gap.stopped_returns) == (1, 2, 1, 0)
    # with a ping the moment focus returns (at 242): kept; pings at 250..290
    # keep it until 440; stopped at the sweep at 444
    kind = simulate(trace, policy(60, 150, 4, ping_on_focus=True), cold_start=10, phase=0)
    assert (kind.interruptions, kind.cold_starts, kind.running, kind.viewing) == (0, 1, 444, 158)


def test_a_tab_back_after_its_app_stopped_counts_a_stopped_return():
    # last ping 90 keeps it until 290: stopped at the sweep at 300 while the
    # tab is blurred; the viewer is back at 400 (a blur of 300 s: brief) and
    # wakes it: ready 410, pinged until 490, kept until 690, stopped at 720
    r = simulate([Session(0, 0, ((0, 100), (400, 500)), 500)], policy(60, 200, 60), cold_start=10, phase=0)
    assert (r.interruptions, r.returns, r.stopped_returns, r.stopped_brief_returns) == (0, 1, 1, 1)
    assert (r.cold_starts, r.running) == (2, 300 + 320)


def test_a_goodbye_lets_the_app_stop_soon_after_its_last_page_closes():
    trace = [Session(0, 0, ((0, 100),), 100)]
    # without it: the load (ready at 10) and the last ping (90) keep it 600 s: stopped at 700
    assert simulate(trace, policy(600, 600, 10), cold_start=10, phase=0).running == 700
    # with it (none lost): 30 s after the goodbye at 100, the first sweep past 130
    bye = simulate(trace, policy(600, 600, 10, goodbye=30), cold_start=10, phase=0, beacon_loss=0)
    assert bye.running == 140
    # a lost beacon: as without
    lost = simulate(trace, policy(600, 600, 10, goodbye=30), cold_start=10, phase=0, beacon_loss=1)
    assert lost.running == 700


def test_a_goodbye_does_not_stop_an_app_another_page_still_shows():
    # two pages; the first closes at 100, the second stays focused until 1000
    trace = [Session(0, 0, ((0, 100),), 100), Session(0, 50, ((50, 1000),), 1000)]
    r = simulate(trace, policy(600, 600, 10, goodbye=30), cold_start=10, phase=0, beacon_loss=0)
    assert r.cold_starts == 1 and r.interruptions == 0
    assert r.running == 1040  # the second page's goodbye at 1000, then 30 s, then the sweep at 1040


def test_a_goodbye_is_not_counted_past_the_page_loads_and_a_ping_after_it_keeps_the_app():
    # two pages; the first closes at 100 (goodbye: 1 of 2 loads), the second
    # pings until it closes at 300: the count reaches 0 only then
    trace = [Session(0, 0, ((0, 100),), 100), Session(0, 20, ((20, 300),), 300)]
    r = simulate(trace, policy(600, 600, 10, goodbye=30), cold_start=10, phase=0, beacon_loss=0)
    assert r.running == 340 and r.cold_starts == 1


def test_the_stored_ping_lags_by_the_resolution_and_the_policy_allows_for_it():
    # pings every 10 s are stored every 20 s with a 15 s resolution (10, 30, ...
    # 590; 600 is not stored: 590 is 10 s old); a ping limit of 60 s alone would
    # stop it at 660, the slack (15 s) keeps it until 665: the sweep at 670
    trace = [Session(0, 0, ((0, 600),), 600)]
    r = simulate(trace, policy(30, 60, 10, resolution=15), cold_start=5, phase=0)
    assert (r.running, r.interruptions) == (670, 0)


def test_policies_from_settings_are_ours_with_the_signals_and_the_others_without():
    from app.config import Settings
    from bench.idle_sim import policies_from_settings

    settings = Settings.from_env({"DORMOUSE_ENV": "testing", "SECRET_KEY": "sim"})
    policies = policies_from_settings(settings)
    ours = policies["ours"]
    assert ours.ping_on_focus and ours.goodbye == settings.goodbye_grace
    assert ours.limits.activity_resolution == settings.activity_resolution
    for other in ("compute-studio", "heartbeat-60s"):
        assert not policies[other].ping_on_focus and policies[other].goodbye is None
