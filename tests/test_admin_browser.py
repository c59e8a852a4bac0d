"""The admin dashboard in real Chromium, served as `make run` serves it: an
admin watches a deployment appear without reloading (the live partial, every
5 s), the polling pauses while the tab is hidden, the admin stops the app,
and the viewer's page says it is asleep. Both pages run under Dormouse's CSP
and fail the test on any violation (tests/test_browser.py's CspWatch).

Screenshots go to ``screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browsers import CspWatch
from tests.serving import serve

pytestmark = pytest.mark.timeout(300)
SHOTS = Path(__file__).resolve().parent.parent / "screenshots"
WAIT = 30_000  # ms
PASSWORD = "correct-horse"

# Counts, inside the admin page, each tick of the live partial's poll (htmx
# asks before every request, cancelled or not) and each request actually sent.
POLL_COUNTERS = """
window.adminTest = {ticks: 0, sent: 0};
document.addEventListener("htmx:beforeRequest", (e) => {
  if (e.detail.elt && e.detail.elt.id === "admin-live") { window.adminTest.ticks += 1; }
});
document.addEventListener("htmx:beforeSend", (e) => {
  if (e.detail.elt && e.detail.elt.id === "admin-live") { window.adminTest.sent += 1; }
});
"""


@pytest.fixture
def server(tmp_path):
    with serve(
        tmp_path,
        PING_INTERVAL="1",
        ACTIVITY_RESOLUTION="0",
        SWEEP_INTERVAL="3600",
        STATUS_POLL_INTERVAL="0.5",
    ) as live:
        live.flask("users", "create", "root", "--admin", "--password-stdin", stdin=f"{PASSWORD}\n")
        yield live


def counters(page: Page) -> tuple[int, int]:
    got = page.evaluate("[window.adminTest.ticks, window.adminTest.sent]")
    return got[0], got[1]


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_an_admin_watches_a_deployment_appear_and_stops_it(server, browser):
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    viewer_ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    watches = [CspWatch(admin_ctx), CspWatch(viewer_ctx)]
    try:
        admin = admin_ctx.new_page()
        admin.add_init_script(POLL_COUNTERS)
        admin.goto(f"{server.site}/login")
        admin.fill("input[name=username]", "root")
        admin.fill("input[name=password]", PASSWORD)
        admin.press("input[name=password]", "Enter")
        admin.wait_for_url(lambda url: "/login" not in url, timeout=WAIT)
        admin.goto(f"{server.site}/admin/")
        admin.wait_for_selector("#no-live", timeout=WAIT)
        assert admin.inner_text("#total-live") == "0"

        # someone opens an app elsewhere: it shows up on the dashboard by itself
        viewer = viewer_ctx.new_page()
        viewer.goto(f"{server.site}/demo/dash-wave/viz/")
        row = "#admin-live tr[data-status=running]"
        admin.wait_for_selector(row, timeout=120_000)
        viewer.wait_for_selector("iframe.viz-frame", timeout=90_000)
        text = admin.inner_text(row)
        assert "dash-wave" in text and "demo" in text and "pid " in text
        assert admin.inner_text("#total-live") == "1"
        assert admin.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
        shot(admin, "admin-dashboard-live")

        # hidden tab: the poll ticks on but sends nothing; shown again, it asks at once
        admin.evaluate(
            """() => {
            Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
        )
        ticks, sent = counters(admin)
        admin.wait_for_function(f"() => window.adminTest.ticks >= {ticks + 2}", timeout=WAIT)
        assert counters(admin)[1] == sent
        admin.evaluate(
            """() => {
            delete document.hidden;
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
        )
        admin.wait_for_function(f"() => window.adminTest.sent > {sent}", timeout=WAIT)

        # stop it from the dashboard: the viewer's page learns it at its next ping
        admin.locator(row).get_by_role("button", name="Stop now").click()
        admin.wait_for_selector("#no-live", timeout=WAIT)
        assert "Stopped demo/dash-wave" in admin.inner_text(".flashes")
        assert "stop" in admin.inner_text("#admin-actions") and "root" in admin.inner_text("#admin-actions")
        shot(admin, "admin-dashboard-stopped")
        viewer.wait_for_selector("#viz-status[data-status=stopped]", timeout=WAIT)
        status = viewer.inner_text("#viz-status")
        assert "asleep" in status and "An administrator stopped it" in status
        shot(viewer, "viewer-stopped-by-admin")
        assert server.status("/demo/dash-wave/")["stop_reason"] == "admin"

        admin.goto(f"{server.site}/admin/history?reason=admin")
        assert "dash-wave" in admin.inner_text("#history")
        shot(admin, "admin-history")
        admin.goto(f"{server.site}/admin/users")
        shot(admin, "admin-users")
    finally:
        admin_ctx.close()
        viewer_ctx.close()
    violations = [v for watch in watches for v in watch.violations]
    assert violations == [], "CSP violations:\n" + "\n".join(violations)
