"""Moving-window counts in memory (app/moving_window.py): the rule of
Flask-Limiter's moving window, with old hits and idle keys forgotten."""

from __future__ import annotations

import pytest

from app.moving_window import MovingWindows


def test_at_most_amount_hits_in_any_window_and_refusals_do_not_count():
    windows = MovingWindows([(3, 60)])
    assert [windows.hit("a", now=t) for t in (0, 10, 20)] == [None, None, None]
    assert windows.hit("a", now=30) == pytest.approx(30)  # the hit at 0 leaves the window at 60
    assert windows.hit("a", now=59.5) == pytest.approx(0.5)
    assert windows.hit("b", now=30) is None  # each key counts apart
    assert windows.hit("a", now=60.5) is None  # refused hits were not counted
    assert windows.hit("a", now=61) == pytest.approx(9)  # now 10, 20 and 60.5 count: 10 leaves at 70


def test_several_limits_the_shortest_window_first():
    windows = MovingWindows([(10, 3600), (2, 1)])
    assert windows.hit("a", now=0) is None and windows.hit("a", now=0.5) is None
    assert windows.hit("a", now=0.9) == pytest.approx(0.1)
    for t in range(2, 10):
        assert windows.hit("a", now=t) is None
    assert windows.hit("a", now=100) == pytest.approx(3500)  # the first of ten, at 0, leaves at 3600


def test_idle_keys_are_forgotten_once_a_window():
    windows = MovingWindows([(5, 60)])
    for n in range(100):
        windows.hit(f"client-{n}", now=0)
    assert len(windows) == 100
    windows.hit("late", now=59)  # the walk is due first at the first hit: not yet again
    assert len(windows) == 101
    windows.hit("late", now=61)  # a window since the last walk: the others' hits are all old
    assert len(windows) == 1


@pytest.mark.parametrize("limits", [[], [(0, 60)], [(5, 0)]])
def test_nonsense_limits_are_refused(limits):
    with pytest.raises(ValueError):
        MovingWindows(limits)
