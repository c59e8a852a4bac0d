"""The usage and cost pages in real Chromium, served as `make run` serves it
(the local backend behind Traefik): the demo owner really starts dash-wave
through its viz page and stops it from their page, on top of older runs
seeded straight into the database; then the stats page draws its three plots
(the timeline with a bar for the run just made), and an admin's
/admin/stats draws the site's. No console error and no CSP violation
(:class:`CspWatch`) on the way. Screenshots go to ``screenshots/``
(git-ignored): stats.png and admin-stats.png.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import User, VizApp, utcnow
from tests.browsers import WAIT, CspWatch
from tests.factories import make_deployment, make_settings
from tests.serving import LiveServer, serve

pytestmark = pytest.mark.timeout(300)
SHOTS = Path(__file__).resolve().parent.parent / "screenshots"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path, SWEEP_INTERVAL="3600", STATUS_POLL_INTERVAL="0.5") as live:
        live.flask("users", "password", "demo", "--password-stdin", stdin=f"{PASSWORD}\n")
        live.flask("users", "create", "root", "--admin", "--password-stdin", stdin=f"{PASSWORD}\n")
        yield live


def seed_history(server: LiveServer) -> int:
    """Older runs of demo/dash-wave (idle, admin, failed: none stopped by its
    owner) and one of bokeh-sliders, written into the served database; the
    number of dash-wave's in the last ten days."""
    instance = server.tmp_path / "instance"
    settings = make_settings(server.tmp_path, f"sqlite:///{instance / 'dormouse.db'}")
    app = create_app(settings=settings)
    now = utcnow()
    with app.app_context():
        try:
            demo = db.session.scalar(select(User).where(User.username == "demo"))
            wave, sliders = (
                db.session.scalar(select(VizApp).where(VizApp.owner_id == demo.id, VizApp.title == t))
                for t in ("dash-wave", "bokeh-sliders")
            )
            wave.created_at = sliders.created_at = now - timedelta(days=60)
            db.session.commit()
            runs = [(8, 2, 9, "idle"), (6, 1, 14, "admin"), (4, 0.1, None, "failed"), (3, 3, 7, "idle")]
            runs.append((40, 5, 11, "idle"))  # (days ago, hours, cold start s, stop reason)
            for days, hours, cold, reason in runs:
                start = now - timedelta(days=days)
                make_deployment(
                    wave,
                    start,
                    ready_at=start + timedelta(seconds=cold) if cold else None,
                    stopped_at=start + timedelta(hours=hours),
                    stop_reason=reason,
                    page_loads=2,
                    viewer_seconds=900,
                )
            start = now - timedelta(days=2)
            make_deployment(
                sliders, start, ready_at=start + timedelta(seconds=20), stopped_at=start + timedelta(hours=6)
            )
        finally:
            db.session.remove()
            db.engine.dispose()
    return 4


def log_in(page: Page, server: LiveServer, username: str) -> None:
    page.goto(f"{server.site}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(lambda url: "/login" not in url, timeout=WAIT)


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def bar_count(page: Page, plot_id: str) -> int:
    return page.locator(f"#{plot_id} svg.plot-svg rect.bar").count()


def test_the_owner_and_an_admin_see_the_plots_of_a_real_history(server, browser):
    seeded = seed_history(server)
    owner_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    admin_ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    watches = [CspWatch(owner_ctx), CspWatch(admin_ctx)]
    errors: list[str] = []  # console errors on Dormouse's own pages (not the app's iframe)

    def note(message) -> None:
        if message.type == "error" and not message.page.url.startswith(server.viz):
            errors.append(f"{message.page.url}: {message.text}")

    try:
        owner = owner_ctx.new_page()
        owner.on("console", note)
        log_in(owner, server, "demo")

        # a real run: the viz page starts it, the owner's page stops it
        owner.goto(f"{server.site}/demo/dash-wave/viz/")
        owner.wait_for_selector("iframe.viz-frame", timeout=120_000)
        owner.goto(f"{server.site}/demo/")
        owner.locator('li.app-row[data-app="dash-wave"]').get_by_role(
            "button", name="Stop", exact=True
        ).click()
        owner.wait_for_load_state()
        assert "Stopped demo/dash-wave" in owner.inner_text(".flashes")
        assert server.status("/demo/dash-wave/")["stop_reason"] == "owner"

        # the owner's page: this month's cost, and the way to the stats
        assert owner.inner_text("#cost-this-month").startswith("$")
        owner.locator('#owner-app-costs tr[data-app="dash-wave"]').get_by_role("link").click()
        owner.wait_for_url(f"{server.site}/demo/dash-wave/stats", timeout=WAIT)

        assert owner.inner_text("#fig-deployments") == str(seeded + 1)
        assert owner.locator('.stop-reason[data-reason="owner"]').inner_text() == "owner 1"
        for plot in ("plot-timeline", "plot-hours", "plot-cold-starts"):
            assert bar_count(owner, plot) > 0, plot
            box = owner.locator(f"#{plot} svg.plot-svg").bounding_box()
            assert box and box["width"] > 600 and box["height"] > 60, (plot, box)  # drawn, at size
        assert bar_count(owner, "plot-timeline") == seeded + 1
        real = owner.locator(
            "#plot-timeline rect.bar.bar-owner"
        )  # the run just made, the only one its owner stopped
        assert real.count() == 1
        assert utcnow().strftime("%Y-%m-%d") in real.locator("title").text_content()
        assert owner.locator("#plot-timeline rect.bar.bar-failed").count() == 1
        fill = real.evaluate("el => getComputedStyle(el).fill")
        assert fill not in ("", "none", "rgb(0, 0, 0)"), fill  # coloured by the stylesheet
        assert owner.locator("#app-costs tbody tr").count() >= 2  # this month and the one before
        shot(owner, "stats")

        # another window from the chooser; a month back shows the 40-day-old run too
        owner.select_option("select[name=days]", "90")
        owner.get_by_role("button", name="Show").click()
        owner.wait_for_url(f"{server.site}/demo/dash-wave/stats?days=90", timeout=WAIT)
        assert bar_count(owner, "plot-timeline") == seeded + 2

        # the admin's view of the site
        admin = admin_ctx.new_page()
        admin.on("console", note)
        log_in(admin, server, "root")
        admin.goto(f"{server.site}/admin/")
        admin.get_by_role("link", name="Usage and cost").click()
        admin.wait_for_url(f"{server.site}/admin/stats", timeout=WAIT)
        for plot in ("plot-timeline", "plot-hours", "plot-cold-starts"):
            assert bar_count(admin, plot) > 0, plot
        lanes = admin.locator("#plot-timeline svg.plot-svg text.lane").all_text_contents()
        assert lanes == ["demo/dash-wave", "demo/bokeh-sliders"]
        assert admin.locator('#cost-by-owner tr[data-owner="demo"]').count() == 1
        assert admin.locator('#cost-by-app tr[data-app="demo/dash-wave"]').count() == 1
        shot(admin, "admin-stats")
    finally:
        owner_ctx.close()
        admin_ctx.close()
    violations = [v for watch in watches for v in watch.violations]
    assert violations == [], "CSP violations:\n" + "\n".join(violations)
    assert errors == [], "console errors:\n" + "\n".join(errors)
