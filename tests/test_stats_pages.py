"""The usage and cost pages on SQLite and PostgreSQL, from seeded deployments
with the clock fixed: /<owner>/<title>/stats shows app/usage.py's numbers for
the chosen window, its three plots and app/costs.py's months; a bad window
is told, never a 500; /<owner>/ shows its owner the month's costs;
/admin/stats the site's. Who may open them is in tests/test_access_*.py."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from app import costs, usage
from app.extensions import db
from app.models import utcnow
from app.prices import Prices
from tests.factories import login, make_app, make_deployment, make_user

NOW = utcnow().replace(microsecond=0)
H = timedelta(hours=1)
S = timedelta(seconds=1)
D = timedelta(days=1)
PRICES = Prices()


@pytest.fixture
def seeded(any_app, monkeypatch):
    """alice's wave (published 100 days ago) with six runs over 40 days, one
    still running; bob's sliders with one run; root is an admin. The views'
    clock is NOW."""
    for module in ("app.views.stats", "app.views.owner"):
        monkeypatch.setattr(f"{module}.utcnow", lambda: NOW)
    alice, bob = make_user("alice"), make_user("bob")
    make_user("root", admin=True)
    wave = make_app(alice, "wave", cpu="1", memory="1Gi", description="A wave.")
    sliders = make_app(bob, "sliders", framework="bokeh")
    wave.created_at = sliders.created_at = NOW - 100 * D
    db.session.commit()
    runs = [  # (days ago, hours run, cold start seconds, stop reason)
        (40, 3, 12, "idle"),
        (9, 1, 8, "idle"),
        (8, 2, 20, "owner"),
        (5, 0.5, None, "failed"),
        (2, 4, 30, "admin"),
    ]
    for days, hours, cold, reason in runs:
        start = NOW - days * D
        make_deployment(
            wave,
            start,
            ready_at=start + cold * S if cold else None,
            stopped_at=start + hours * H,
            stop_reason=reason,
            page_loads=3,
            viewer_seconds=600,
            cpu_millicores=1000,
            memory_mib=1024,
        )
    live = make_deployment(wave, NOW - 2 * H, ready_at=NOW - 2 * H + 6 * S, page_loads=1, viewer_seconds=60)
    make_deployment(sliders, NOW - 3 * D, ready_at=NOW - 3 * D + 50 * S, stopped_at=NOW - 3 * D + 5 * H)
    return wave, sliders, live


def logged_in(app, username: str):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert found, f"no #{element_id}"
    return html.unescape(found.group(1)).strip()


def bars(page: str, plot_id: str) -> int:
    found = re.search(rf'<figure class="plot" id="{plot_id}" data-bars="(\d+)"', page)
    assert found, f"no plot #{plot_id}"
    return int(found.group(1))


def figures(stats: usage.UsageStats) -> dict[str, str]:
    """What the page must show for ``stats``, computed here from app/usage.py's numbers."""

    def secs(v):
        return "—" if v is None else f"{v:.1f} s"

    from app.dashboard import duration

    return {
        "fig-deployments": str(stats.deployments),
        "fig-percent": f"{stats.percent_running:.1f} %",
        "fig-running-hours": f"{stats.running_seconds / 3600:.1f}",
        "fig-mean-lifetime": duration(stats.mean_lifetime),
        "fig-median-lifetime": duration(stats.median_lifetime),
        "fig-cold-start": f"{secs(stats.cold_start_p50)} / {secs(stats.cold_start_p95)}",
        "fig-page-loads": str(stats.page_loads),
        "fig-viewer-minutes": f"{stats.viewer_minutes:.1f}",
    }


@pytest.mark.parametrize("days", [10, 1, 7, 30, 90])
def test_the_app_stats_page_shows_usage_for_the_window(seeded, any_app, days):
    wave, _, live = seeded
    page = logged_in(any_app, "alice").get(f"/alice/wave/stats?days={days}").get_data(as_text=True)
    stats = usage.app_stats(wave.id, NOW - days * D, NOW)
    shown = {key: text_of(page, key) for key in figures(stats)}
    assert shown == figures(stats)
    intervals = usage.running_intervals(wave.id, NOW - days * D, NOW)
    assert bars(page, "plot-timeline") == len(intervals) > 0
    assert f'data-key="{live.id}"' in page  # the running one, on the timeline
    assert bars(page, "plot-hours") == sum(
        1 for d in usage.hours_per_day(wave.id, NOW - days * D, NOW) if d.hours
    )
    assert bars(page, "plot-cold-starts") > 0
    assert f'<option value="{days}" selected>' in page
    for reason, count in stats.stops_by_reason.items():
        assert f'data-reason="{reason}">{reason} {count}</span>' in page


def test_the_default_window_is_ten_days(seeded, any_app):
    wave, _, _ = seeded
    page = logged_in(any_app, "alice").get("/alice/wave/stats").get_data(as_text=True)
    assert (
        text_of(page, "fig-deployments")
        == str(usage.app_stats(wave.id, NOW - 10 * D, NOW).deployments)
        == "5"
    )
    assert '<option value="10" selected>' in page


@pytest.mark.parametrize("bad", ["abc", "5", "-1", "1e3", "%C2%B2", "9" * 50, "7&days=30"])
def test_a_bad_window_is_told_and_the_default_shown(seeded, any_app, bad):
    response = logged_in(any_app, "alice").get(f"/alice/wave/stats?days={bad}")
    page = response.get_data(as_text=True)
    if bad.startswith("7&"):  # the first value counts
        assert response.status_code == 200 and '<option value="7" selected>' in page
        return
    assert response.status_code == 400
    assert "Choose a window of 1, 7, 10, 30, 90 days; showing the last 10 days." in text_of(
        page, "window-error"
    )
    assert '<option value="10" selected>' in page and 'id="plot-timeline"' in page


def test_an_empty_window_says_so(seeded, any_app):
    fresh = make_app(make_user("carol"), "fresh")
    assert fresh.id
    response = logged_in(any_app, "carol").get("/carol/fresh/stats?days=1")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "No deployments in this window" in text_of(page, "no-deployments")
    assert "<svg" not in page.split('id="no-deployments"')[0].split("<main")[1]  # no plot drawn
    assert text_of(page, "fig-deployments") == "0" and text_of(page, "fig-cold-start") == "— / —"


def test_the_app_stats_page_shows_the_months_costs(seeded, any_app):
    wave, _, _ = seeded
    wave.monthly_budget = 12.5
    db.session.commit()
    page = logged_in(any_app, "root").get("/alice/wave/stats").get_data(as_text=True)  # an admin too
    month = NOW.strftime("%Y-%m")
    row = re.search(rf'<tr data-month="{month}">(.*?)</tr>', page, re.S)
    assert row, "no row for this month"
    cost = costs.app_month_cost(wave.id, NOW.year, NOW.month, PRICES, NOW)
    saved = costs.saved_by_sleeping(wave, NOW.year, NOW.month, PRICES, NOW)
    cells = [html.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
    assert cells[1:] == [
        f"{cost.running_seconds / 3600:.2f}",
        f"{cost.cpu_hours:.2f}",
        f"{cost.gb_hours:.2f}",
        f"${cost.dollars:.2f}",
        f"${saved.always_on:.2f}",
        f"${saved.saved:.2f}",
    ]
    assert cost.dollars > 0 and saved.saved > 0
    published = wave.created_at  # 100 days ago: this month and 3 or 4 before it
    months = (NOW.year - published.year) * 12 + NOW.month - published.month + 1
    assert len(re.findall(r"<tr data-month=", page)) == min(months, 6)
    assert text_of(page, "prices") == "0.021811 $/CPU-hour, 0.002923 $/GB-hour"
    assert text_of(page, "budget") == "$12.50"


def test_the_owner_sees_the_months_costs_on_their_page(seeded, any_app):
    wave, _, _ = seeded
    this = costs.monthly_costs(NOW.year, NOW.month, PRICES, NOW)
    alice_id = wave.owner_id
    page = logged_in(any_app, "alice").get("/alice/").get_data(as_text=True)
    assert text_of(page, "cost-this-month") == f"${this.by_owner[alice_id].dollars:.2f}"
    assert 'href="/alice/wave/stats"' in page
    row = re.search(r'<tr data-app="wave">(.*?)</tr>', page, re.S)
    assert row and f"${this.by_app[wave.id].dollars:.2f}" in row.group(1)
    admin_page = logged_in(any_app, "root").get("/alice/").get_data(as_text=True)
    assert 'id="owner-costs"' in admin_page
    for visitor in (any_app.test_client(), logged_in(any_app, "bob")):
        public = visitor.get("/alice/").get_data(as_text=True)
        assert 'data-app="wave"' in public  # the public page as before
        assert 'id="owner-costs"' not in public and "/alice/wave/stats" not in public


def test_the_app_page_links_the_stats_for_its_owner_and_admins_only(seeded, any_app):
    for username, shown in (("alice", True), ("root", True), ("bob", False)):
        page = logged_in(any_app, username).get("/alice/wave/").get_data(as_text=True)
        assert ('href="/alice/wave/stats"' in page) == shown, username


def test_the_admin_stats_page_shows_the_site(seeded, any_app):
    wave, sliders, live = seeded
    client = logged_in(any_app, "root")
    page = client.get("/admin/stats?days=30").get_data(as_text=True)
    stats = usage.site_stats(NOW - 30 * D, NOW)
    assert {key: text_of(page, key) for key in figures(stats)} == figures(stats)
    assert bars(page, "plot-timeline") == len(usage.running_intervals(None, NOW - 30 * D, NOW))
    assert "bob/sliders" in page and f'data-key="{live.id}"' in page
    this = costs.monthly_costs(NOW.year, NOW.month, PRICES, NOW)
    assert text_of(page, "site-month-cost") == f"${this.total.dollars:.2f}"
    # the costliest first (who ran this month depends on today's date: computed, not assumed)
    by_owner = {"alice": this.by_owner.get(wave.owner_id), "bob": this.by_owner.get(sliders.owner_id)}
    expected = sorted((u for u, c in by_owner.items() if c), key=lambda u: -by_owner[u].dollars)
    assert re.findall(r'<tr data-owner="([^"]+)">', page) == expected and "alice" in expected
    by_app = {"alice/wave": this.by_app.get(wave.id), "bob/sliders": this.by_app.get(sliders.id)}
    expected = sorted((a for a, c in by_app.items() if c), key=lambda a: -by_app[a].dollars)
    assert re.findall(r'<tr data-app="([^"]+)">', page) == expected
    assert 'aria-current="page">Usage and cost</a>' in page
    assert client.get("/admin/stats?days=nope").status_code == 400
