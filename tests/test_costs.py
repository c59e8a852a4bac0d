"""Costs (app/costs.py) on SQLite and PostgreSQL: the arithmetic, monthly
totals per app and per owner, what sleeping saved, and the migration that
gives earlier deployments their app's resources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from app import costs
from app.config_env import ConfigError
from app.extensions import db
from app.prices import Prices
from tests.factories import make_app, make_deployment, make_settings, make_user

PRICES = Prices()  # Compute Studio's
ONE_CORE_ONE_GB_HOUR = 0.021811 + 0.002923
H = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_prices_from_the_environment():
    assert Prices.from_env({}) == Prices(0.021811, 0.002923)
    assert Prices.from_env({"PRICE_CPU_HOUR": "0.05", "PRICE_GB_HOUR": " 0 "}) == Prices(0.05, 0.0)
    for bad in ("cheap", "-1", "nan", "inf"):
        with pytest.raises(ConfigError, match="PRICE_CPU_HOUR"):
            Prices.from_env({"PRICE_CPU_HOUR": bad})


def test_deployment_cost_arithmetic():
    assert costs.deployment_cost(1000, 1024, H, PRICES) == pytest.approx(ONE_CORE_ONE_GB_HOUR)
    assert costs.deployment_cost(500, 512, 3600.0, PRICES) == pytest.approx(ONE_CORE_ONE_GB_HOUR / 2)
    # longer than a day: timedelta.seconds would be 2 hours, total_seconds() is 26
    long = timedelta(days=1, hours=2)
    assert long.seconds == 7200
    assert costs.deployment_cost(1000, 1024, long, PRICES) == pytest.approx(26 * ONE_CORE_ONE_GB_HOUR)
    assert costs.deployment_cost(2000, 0, H, PRICES) == pytest.approx(2 * 0.021811)
    assert costs.deployment_cost(0, 2048, H, PRICES) == pytest.approx(2 * 0.002923)  # 2Gi is 2 GB
    assert costs.deployment_cost(None, None, long, PRICES) == 0


def test_month_bounds():
    assert costs.month_bounds(2026, 2) == (utc(2026, 2, 1), utc(2026, 3, 1))
    assert costs.month_bounds(2026, 12) == (utc(2026, 12, 1), utc(2027, 1, 1))


@pytest.fixture
def apps(any_app):
    alice, bob = make_user("alice"), make_user("bob")
    wave = make_app(alice, "wave", cpu="1", memory="1Gi")
    clock = make_app(alice, "clock", cpu="500m", memory="512Mi")
    sliders = make_app(bob, "sliders", framework="bokeh", cpu="2", memory="2Gi")
    # wave: across the January/February boundary (2 h in each), then one of
    # 3 days in February (longer than a day), then one still running since
    # 28 February 20:00
    make_deployment(
        wave, utc(2026, 1, 31, 22), stopped_at=utc(2026, 2, 1, 2), cpu_millicores=1000, memory_mib=1024
    )
    make_deployment(wave, utc(2026, 2, 10), stopped_at=utc(2026, 2, 13), cpu_millicores=1000, memory_mib=1024)
    make_deployment(
        wave, utc(2026, 2, 28, 20), ready_at=utc(2026, 2, 28, 20, 1), cpu_millicores=1000, memory_mib=1024
    )
    # clock: 4 h in February, with the resources it ran with then (not its app's now)
    make_deployment(
        clock, utc(2026, 2, 5), stopped_at=utc(2026, 2, 5, 4), cpu_millicores=2000, memory_mib=512
    )
    # sliders: 1 h in February
    make_deployment(
        sliders, utc(2026, 2, 7), stopped_at=utc(2026, 2, 7, 1), cpu_millicores=2000, memory_mib=2048
    )
    return alice, bob, wave, clock, sliders


NOW = utc(2026, 3, 1, 10)  # ten hours into March


def test_monthly_costs_per_app_and_owner(apps):
    alice, bob, wave, clock, sliders = apps
    feb = costs.monthly_costs(2026, 2, PRICES, NOW)
    assert (feb.start, feb.end) == (utc(2026, 2, 1), utc(2026, 3, 1))
    wave_hours = 2 + 72 + 4  # the boundary run's February part, 3 days, 28 Feb 20:00-24:00
    assert feb.by_app[wave.id].running_seconds == pytest.approx(wave_hours * 3600, abs=1e-2)
    assert feb.by_app[wave.id].dollars == pytest.approx(wave_hours * ONE_CORE_ONE_GB_HOUR)
    assert feb.by_app[wave.id].cpu_hours == pytest.approx(wave_hours)
    assert feb.by_app[wave.id].gb_hours == pytest.approx(wave_hours)
    clock_dollars = 4 * (2 * 0.021811 + 0.5 * 0.002923)
    assert feb.by_app[clock.id].dollars == pytest.approx(clock_dollars)
    sliders_dollars = 2 * ONE_CORE_ONE_GB_HOUR
    assert feb.by_app[sliders.id].dollars == pytest.approx(sliders_dollars)
    assert feb.by_owner[alice.id].dollars == pytest.approx(wave_hours * ONE_CORE_ONE_GB_HOUR + clock_dollars)
    assert feb.by_owner[bob.id].dollars == pytest.approx(sliders_dollars)
    assert feb.total.dollars == pytest.approx(sum(c.dollars for c in feb.by_owner.values()))

    jan = costs.monthly_costs(2026, 1, PRICES, NOW)
    assert set(jan.by_app) == {wave.id}
    assert jan.by_app[wave.id].dollars == pytest.approx(2 * ONE_CORE_ONE_GB_HOUR)

    # the current month runs to now: the live deployment's first 10 hours of March
    march = costs.monthly_costs(2026, 3, PRICES, NOW)
    assert march.end == NOW
    assert march.by_app[wave.id].dollars == pytest.approx(10 * ONE_CORE_ONE_GB_HOUR)
    assert costs.monthly_costs(2026, 4, PRICES, NOW).by_app == {}  # not begun

    assert costs.app_month_cost(clock.id, 2026, 2, PRICES, NOW).dollars == pytest.approx(clock_dollars)
    assert costs.app_month_cost(clock.id, 2026, 1, PRICES, NOW) == costs.Cost()


def test_saved_by_sleeping(apps):
    _, _, wave, _, _ = apps
    feb = costs.saved_by_sleeping(wave, 2026, 2, PRICES, NOW)
    assert feb.always_on == pytest.approx(28 * 24 * ONE_CORE_ONE_GB_HOUR)
    assert feb.actual == pytest.approx(78 * ONE_CORE_ONE_GB_HOUR)
    assert feb.saved == pytest.approx((28 * 24 - 78) * ONE_CORE_ONE_GB_HOUR)
    march = costs.saved_by_sleeping(wave, 2026, 3, PRICES, NOW)  # so far: it has run all along
    assert march.always_on == pytest.approx(10 * ONE_CORE_ONE_GB_HOUR)
    assert march.saved == pytest.approx(0, abs=1e-9)


def test_migration_gives_earlier_deployments_their_apps_resources(tmp_path, any_db_url):
    from flask_migrate import upgrade

    from app import create_app

    flask_app = create_app(settings=make_settings(tmp_path, any_db_url))
    with flask_app.app_context():
        upgrade(revision="0006")
        db.session.execute(
            text(
                "INSERT INTO users (id, username, password_hash, is_admin, created_at, session_version) "
                "VALUES (1, 'alice', 'x', false, '2026-01-01 00:00:00', 1)"
            )
        )
        db.session.execute(
            text(
                "INSERT INTO viz_apps (id, owner_id, title, framework, description, port, cpu, memory, env, "
                "is_public, embed_origins, created_at, updated_at) VALUES (1, 1, 'wave', 'dash', '', 8050, "
                "'1.5', '2Gi', '{}', true, '[]', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        db.session.execute(
            text(
                "INSERT INTO deployments (app_id, owner_id, name, public_name, status, status_reason, phase, "
                "backend, created_at) VALUES (1, 1, 'default', 'default-abc234', 'stopped', '', '', 'local', "
                "'2026-01-01 00:00:00')"
            )
        )
        db.session.commit()
        upgrade()
        row = db.session.execute(
            text("SELECT cpu_millicores, memory_mib, page_loads, viewer_seconds FROM deployments")
        ).one()
        assert tuple(row) == (1500, 2048, 0, 0)
        db.session.remove()
        db.engine.dispose()
