"""What the stats pages gather (app/usage_report.py), on SQLite and
PostgreSQL: the window chooser's parsing, the months of an app's costs with
what sleeping saved, an owner's costs with their deleted apps, and the site's
costliest owners and apps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import costs, usage, usage_report
from app.extensions import db
from app.prices import Prices
from tests.factories import make_app, make_deployment, make_user

PRICES = Prices()
H = timedelta(hours=1)
NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "days", "error"),
    [
        (None, 10, False),
        ("", 10, False),
        ("1", 1, False),
        ("7", 7, False),
        ("30", 30, False),
        ("90", 90, False),
        ("5", 10, True),
        ("abc", 10, True),
        ("-7", 10, True),
        ("7.0", 10, True),
        (" 7", 10, True),
        ("²", 10, True),  # a digit to str.isdigit, not to int()
        ("9" * 400, 10, True),
    ],
)
def test_parse_days(raw, days, error):
    got, message = usage_report.parse_days(raw)
    assert got == days
    assert (message is not None) == error
    if error:
        assert message == "Choose a window of 1, 7, 10, 30, 90 days; showing the last 10 days."


def test_months_back_crosses_the_year():
    assert usage_report.months_back(utc(2026, 2, 3), 4) == [(2026, 2), (2026, 1), (2025, 12), (2025, 11)]


@pytest.fixture
def owners(any_app):
    alice, bob = make_user("alice"), make_user("bob")
    wave = make_app(alice, "wave", cpu="1", memory="1Gi")
    old = make_app(alice, "old", cpu="1", memory="1Gi")
    sliders = make_app(bob, "sliders", framework="bokeh", cpu="2", memory="2Gi")
    wave.created_at = utc(2026, 1, 20)
    old.created_at = sliders.created_at = utc(2025, 6, 1)
    db.session.commit()
    # wave: 2 h in January, 3 h in February, 1 h in March; old: 4 h in March, then deleted;
    # sliders: 10 h in March
    make_deployment(
        wave, utc(2026, 1, 25), stopped_at=utc(2026, 1, 25, 2), cpu_millicores=1000, memory_mib=1024
    )
    make_deployment(
        wave, utc(2026, 2, 2), stopped_at=utc(2026, 2, 2, 3), cpu_millicores=1000, memory_mib=1024
    )
    make_deployment(
        wave, utc(2026, 3, 2), stopped_at=utc(2026, 3, 2, 1), cpu_millicores=1000, memory_mib=1024
    )
    make_deployment(old, utc(2026, 3, 3), stopped_at=utc(2026, 3, 3, 4), cpu_millicores=1000, memory_mib=1024)
    make_deployment(
        sliders, utc(2026, 3, 4), stopped_at=utc(2026, 3, 4, 10), cpu_millicores=2000, memory_mib=2048
    )
    old.deleted_at = utc(2026, 3, 5)
    db.session.commit()
    return alice, bob, wave, old, sliders


HOUR = costs.deployment_cost(1000, 1024, H, PRICES)  # one core and one GB for an hour


def test_app_months_go_back_to_its_publication(owners):
    _, _, wave, _, _ = owners
    rows = usage_report.app_months(wave, NOW, PRICES)
    assert [r.start for r in rows] == [utc(2026, 3, 1), utc(2026, 2, 1), utc(2026, 1, 1)]  # not December
    assert [r.current for r in rows] == [True, False, False]
    assert [r.cost.dollars for r in rows] == pytest.approx([HOUR, 3 * HOUR, 2 * HOUR])
    assert [r.cost.cpu_hours for r in rows] == pytest.approx([1, 3, 2])
    # all the time: March so far (14.5 days), all February, January from the 20th
    always = [14.5 * 24 * HOUR, 28 * 24 * HOUR, 12 * 24 * HOUR]
    assert [r.savings.always_on for r in rows] == pytest.approx(always)
    assert [r.savings.saved for r in rows] == pytest.approx([a - h * HOUR for a, h in zip(always, (1, 3, 2))])
    # the current month agrees with costs.saved_by_sleeping once the app was published before it
    assert rows[0].savings == costs.saved_by_sleeping(wave, 2026, 3, PRICES, NOW)


def test_owner_costs_count_deleted_apps_apart(owners):
    alice, bob, wave, _, _ = owners
    got = usage_report.owner_costs(alice, [wave], NOW, PRICES)
    assert got.this_month_start == utc(2026, 3, 1) and got.last_month_start == utc(2026, 2, 1)
    assert got.this_month.dollars == pytest.approx(5 * HOUR)  # wave 1 h + old 4 h
    assert got.last_month.dollars == pytest.approx(3 * HOUR)
    (row,) = got.apps
    assert row.app is wave and row.this_month.dollars == pytest.approx(HOUR)
    assert got.has_deleted and got.deleted_this_month.dollars == pytest.approx(4 * HOUR)
    assert got.deleted_last_month.dollars == 0
    assert not usage_report.owner_costs(bob, [], NOW, PRICES).has_deleted


def test_site_report_ranks_owners_and_apps_by_cost(owners):
    alice, bob, wave, old, sliders = owners
    report = usage_report.site_report(30, NOW, PRICES)
    assert [(u.username, c.dollars) for u, c in report.by_owner] == [
        ("bob", pytest.approx(costs.deployment_cost(2000, 2048, 10 * H, PRICES))),
        ("alice", pytest.approx(5 * HOUR)),
    ]
    assert [a.title for a, _ in report.by_app] == ["sliders", "old", "wave"]  # deleted apps too
    assert (report.owners, report.apps) == (2, 3)
    assert [a.title for a, _ in usage_report.site_report(30, NOW, PRICES, top=1).by_app] == ["sliders"]
    start, end = NOW - timedelta(days=30), NOW
    assert report.stats == usage.site_stats(start, end)
    assert len(report.timeline.bars) == len(usage.running_intervals(None, start, end)) == 3
    assert {t.label for t in report.timeline.lanes} == {"alice/wave", "alice/old", "bob/sliders"}
    assert report.month_total.dollars == pytest.approx(
        5 * HOUR + costs.deployment_cost(2000, 2048, 10 * H, PRICES)
    )


def test_app_report_plots_the_window(owners):
    _, _, wave, _, _ = owners
    seven = usage_report.app_report(wave, 7, NOW, PRICES)  # 03-08 12:00 onwards: nothing ran
    assert seven.timeline.empty and seven.stats.deployments == 0
    ninety = usage_report.app_report(wave, 90, NOW, PRICES)
    assert [b.key for b in ninety.timeline.bars] == [
        str(i.deployment_id) for i in usage.running_intervals(wave.id, NOW - timedelta(days=90), NOW)
    ]
    assert len(ninety.timeline.bars) == 3 and len(ninety.hours.bars) == 3
    assert len(ninety.hours.x_ticks) == 10  # 91 days, about ten labels
    hours = usage.hours_per_day(wave.id, NOW - timedelta(days=90), NOW)  # its own query: the same days
    assert [b.key for b in ninety.hours.bars] == [d.day.isoformat() for d in hours if d.hours]
    assert ninety.budget is None and ninety.prices == PRICES
