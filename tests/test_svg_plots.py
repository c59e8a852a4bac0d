"""The stats pages' plots (app/svg_plots.py, app/plot_axes.py) as data: scales and ticks, one
bar per deployment where it ran, bars per day, histogram bins, empty input;
and their rendering (templates/_plots.html): well-formed, accessible SVG in
which an app title full of markup stays text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import render_template_string

from app import plot_axes, svg_plots
from app.svg_plots import LEFT, RIGHT, TIMELINE_LEFT, WIDTH
from app.usage import DayHours, Interval

T0 = datetime(2026, 3, 1, tzinfo=UTC)
END = T0 + timedelta(days=10)
H = timedelta(hours=1)
SVG = "{http://www.w3.org/2000/svg}"


def iv(n: int, start: datetime, end: datetime, *, reason: str | None = "idle", status: str = "stopped",
       name: str = "default", app_id: int = 1) -> Interval:  # fmt: skip
    return Interval(
        deployment_id=n, app_id=app_id, name=name, start=start, end=end, status=status, stop_reason=reason
    )


def x_of(moment: datetime) -> float:
    """Where the timeline draws ``moment``, computed here independently."""
    span = (END - T0).total_seconds()
    return TIMELINE_LEFT + (moment - T0).total_seconds() / span * (WIDTH - RIGHT - TIMELINE_LEFT)


# --- scales and ticks ------------------------------------------------------------------


def test_scale_maps_the_domain_onto_the_range():
    y = plot_axes.scale(0, 10, 200, 0)  # upside down, as a y axis is
    assert (y(0), y(5), y(10)) == (200, 100, 0)
    assert plot_axes.scale(3, 3, 7, 9)(3) == 7  # a flat domain does not divide by zero


@pytest.mark.parametrize(
    ("raw", "step"), [(0.7, 1), (1, 1), (1.2, 2), (2.2, 2.5), (3, 5), (7, 10), (12, 20), (0.03, 0.05), (0, 1)]
)
def test_nice_step(raw, step):
    assert plot_axes.nice_step(raw) == pytest.approx(step)


def test_nice_ticks_cover_the_top():
    assert plot_axes.nice_ticks(24) == [0, 5, 10, 15, 20, 25]
    assert plot_axes.nice_ticks(3.3) == pytest.approx([0, 1, 2, 3, 4])
    assert plot_axes.nice_ticks(1) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_time_ticks_fall_on_round_utc_times():
    x = plot_axes.scale(0, (END - T0).total_seconds(), 0, 1000)
    ticks = plot_axes.time_ticks(T0, END, x)
    assert [t.label for t in ticks] == [f"Mar {d:02d}" for d in range(1, 11, 2)] + ["Mar 11"]
    assert ticks[0].at == 0 and ticks[-1].at == 1000
    day = plot_axes.time_ticks(T0 + 90 * timedelta(minutes=1), T0 + 25 * H, x)
    assert day[0].label == "03:00" and "Mar 02" in [t.label for t in day]  # midnight names its day


# --- the timeline --------------------------------------------------------------------------


def test_one_bar_per_deployment_where_it_ran():
    intervals = [
        iv(1, T0, T0 + 2 * H),
        iv(2, T0 + 24 * H, T0 + 30 * H, reason="admin"),
        iv(3, T0 + 48 * H, T0 + 48 * H + timedelta(seconds=20), reason="failed"),
        iv(4, END - 12 * H, END, reason=None, status="running"),
    ]
    plot = svg_plots.timeline(intervals, T0, END, lane_of=lambda i: i.name)
    assert [b.key for b in plot.bars] == ["1", "2", "3", "4"]
    assert [b.kind for b in plot.bars] == ["idle", "admin", "failed", "live"]
    for bar, interval in zip(plot.bars, intervals, strict=True):
        assert bar.x == pytest.approx(x_of(interval.start), abs=0.06)
    assert plot.bars[0].width == pytest.approx(x_of(T0 + 2 * H) - x_of(T0), abs=0.1)
    assert plot.bars[2].width == svg_plots.MIN_BAR  # 20 seconds are still seen
    assert plot.bars[3].x + plot.bars[3].width == pytest.approx(WIDTH - RIGHT, abs=0.1)
    assert len({b.y for b in plot.bars}) == 1  # none overlaps: one row
    assert [t.label for t in plot.lanes] == ["default"]
    assert [k for k, _ in plot.legend] == ["idle", "admin", "failed", "live"]
    assert "2026-03-01 00:00 to 2026-03-01 02:00 UTC, 2h 00m, stopped when idle" in plot.bars[0].label
    assert plot.desc.startswith("4 deployments from 2026-03-01 00:00 to 2026-03-11 00:00 UTC")


def test_overlapping_runs_get_rows_of_their_own_and_lanes_are_named():
    intervals = [
        iv(1, T0, T0 + 5 * H, app_id=1),
        iv(2, T0 + 1 * H, T0 + 2 * H, app_id=1, name="other"),
        iv(3, T0 + 3 * H, T0 + 4 * H, app_id=1, name="other"),
        iv(4, T0 + 1 * H, T0 + 2 * H, app_id=2),
        iv(5, T0 + 2 * H, T0 + 3 * H, reason="something-new", app_id=2),
    ]
    names = {1: "alice/wave", 2: "bob/sliders"}
    plot = svg_plots.timeline(intervals, T0, END, lane_of=lambda i: names[i.app_id])
    y = {b.key: b.y for b in plot.bars}
    assert y["1"] < y["2"] == y["3"] < y["4"] == y["5"]  # 2 overlaps 1; 3 fits after 2
    assert [t.label for t in plot.lanes] == ["alice/wave", "bob/sliders"]
    assert plot.bars[-1].kind == "other"  # an unknown stop reason gets no class of its own
    assert plot.height > svg_plots.timeline(intervals[:1], T0, END, lane_of=lambda i: "x").height


def test_too_many_lanes_are_counted_not_drawn():
    intervals = [iv(n, T0, T0 + H, app_id=n) for n in range(svg_plots.MAX_ROWS + 5)]
    plot = svg_plots.timeline(intervals, T0, END, lane_of=lambda i: f"app {i.app_id}")
    assert len(plot.bars) == svg_plots.MAX_ROWS
    assert plot.note == "5 more deployments in further lanes are not drawn."


def test_empty_input_makes_an_empty_plot():
    assert svg_plots.timeline([], T0, END, lane_of=lambda i: i.name).empty
    assert svg_plots.hours_per_day([DayHours(date(2026, 3, 1), 0.0)]).empty
    cold = svg_plots.cold_start_histogram([])
    assert cold.empty and cold.empty_text == "No deployment became ready in this window."


# --- bar charts ------------------------------------------------------------------------------


def test_hours_per_day_bars():
    days = [DayHours(date(2026, 3, d), h) for d, h in ((1, 2.0), (2, 0.0), (3, 24.0), (4, 6.5), (5, 0.001))]
    plot = svg_plots.hours_per_day(days)
    assert [b.key for b in plot.bars] == [
        "2026-03-01",
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
    ]  # none for 0 h
    tiny = plot.bars[-1]  # a few seconds: seen, standing on the axis
    assert tiny.height == svg_plots.MIN_BAR and tiny.y + tiny.height == pytest.approx(plot.y_ticks[0].at)
    assert [t.label for t in plot.y_ticks] == ["0", "5", "10", "15", "20", "25"]
    zero, top = plot.y_ticks[0].at, plot.y_ticks[-1].at
    per_hour = (zero - top) / 25
    for bar, hours in zip(plot.bars[:3], (2.0, 24.0, 6.5), strict=True):
        assert bar.y + bar.height == pytest.approx(zero, abs=0.1)  # on the axis
        assert bar.height == pytest.approx(hours * per_hour, abs=0.15)
    band = (WIDTH - RIGHT - LEFT) / 5
    assert plot.bars[1].x == pytest.approx(LEFT + 2 * band + band * 0.1, abs=0.1)
    assert [t.label for t in plot.x_ticks] == ["Mar 01", "Mar 02", "Mar 03", "Mar 04", "Mar 05"]
    assert "32.5 hours running in all; the most on 2026-03-03 (24.0 hours)" in plot.desc


def test_hours_per_day_labels_at_most_about_ten_days():
    days = [DayHours(date(2026, 1, 1) + timedelta(days=n), 1.0) for n in range(90)]
    plot = svg_plots.hours_per_day(days)
    assert len(plot.bars) == 90 and len(plot.x_ticks) == 10


def test_cold_start_histogram_bins():
    plot = svg_plots.cold_start_histogram([1.0, 3.5, 4.0, 4.9, 12.0, 39.0], p50=4.45, p95=32.25)
    assert svg_plots.bin_width(39.0) == 2.0  # 39 / 20 = 1.95 -> 2 s bins
    counts = {b.key: b.label for b in plot.bars}
    assert counts == {
        "0": "0 to 2 s: 1 deployment",
        "2": "2 to 4 s: 1 deployment",
        "4": "4 to 6 s: 2 deployments",
        "12": "12 to 14 s: 1 deployment",
        "38": "38 to 40 s: 1 deployment",
    }
    heights = {b.key: b.height for b in plot.bars}
    assert heights["4"] == pytest.approx(2 * heights["0"], abs=0.1)
    assert [t.label for t in plot.y_ticks] == ["0", "1", "2"]  # whole deployments only
    assert (
        "6 cold starts in bins of 2 s, the longest 39.0 s; median 4.5 s, 95th percentile 32.2 s" in plot.desc
    )


def test_cold_starts_of_a_fraction_of_a_second():
    plot = svg_plots.cold_start_histogram([0.05, 0.3])
    assert svg_plots.bin_width(0.3) == 0.1
    assert [b.key for b in plot.bars] == ["0", "0.3"]


# --- rendered ------------------------------------------------------------------------------------


def render(plot) -> str:
    return render_template_string('{% from "_plots.html" import plot %}{{ plot(p) }}', p=plot)


def test_rendered_svg_is_well_formed_and_accessible(app):
    plot = svg_plots.timeline([iv(7, T0, T0 + 5 * H)], T0, END, lane_of=lambda i: i.name)
    figure = ET.fromstring(render(plot))
    svg = figure.find(f"{SVG}svg")
    assert svg is not None and svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "plot-timeline-title plot-timeline-desc"
    assert svg.find(f"{SVG}title").text == "Running intervals"
    assert svg.find(f"{SVG}desc").text == plot.desc
    (rect,) = svg.iter(f"{SVG}rect")
    assert rect.get("class") == "bar bar-idle" and rect.get("data-key") == "7"
    assert float(rect.get("x")) == plot.bars[0].x and rect.get("style") is None
    assert rect.find(f"{SVG}title").text == plot.bars[0].label
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert "time (UTC)" in labels and "default" in labels
    assert not any("style" in el.attrib for el in figure.iter())  # the CSP allows no inline style


def test_an_app_title_with_markup_stays_text(app):
    evil = '<script>alert(1)</script>"&<b>'
    intervals = [iv(1, T0, T0 + H)]
    html = render(svg_plots.timeline(intervals, T0, END, lane_of=lambda i: evil, title=f"Runs of {evil}"))
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&amp;&lt;b&gt;" in html
    figure = ET.fromstring(html)  # still well-formed
    texts = [el.text for el in figure.iter() if el.text]
    assert any(evil[:22] in t for t in texts)  # the lane's name, shortened, as text
    assert f"Runs of {evil}" in texts


def test_an_empty_plot_renders_a_sentence_not_an_svg(app):
    html = render(svg_plots.hours_per_day([]))
    assert "<svg" not in html and "Nothing ran in this window." in html


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "$0.00"),
        (0.22, "$0.22"),
        (7.8949, "$7.89"),
        (0.0029, "$0.0029"),
        (-0.22, "−$0.22"),
        (1234.5, "$1234.50"),
    ],
)
def test_money(app, value, shown):
    got = render_template_string('{% from "_plots.html" import money %}{{ money(v) }}', v=value)
    assert got == shown
