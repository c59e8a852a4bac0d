"""The viz page in real Chromium: start-up, the iframe, a Dash callback inside
it, focus-gated pings, the stopped state and a restart.

Needs Debian's chromium (`.ci/run` installs it) and the Playwright package
(its bundled driver; no browser download). Focus is steered by replacing
``document.hasFocus`` in the page: Playwright keeps every page "focused", and
the gate under test is our script's use of it.
"""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.serving import LiveServer

pytestmark = pytest.mark.timeout(300)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server(tmp_path):
    live = LiveServer(tmp_path, PING_INTERVAL="1", ACTIVITY_RESOLUTION="0",
                      SWEEP_INTERVAL="3600", STATUS_POLL_INTERVAL="0.5")
    live.launch()
    try:
        yield live
    finally:
        live.close()


@pytest.fixture
def page():
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 800})
        finally:
            browser.close()


class PingCounter:
    def __init__(self, page: Page) -> None:
        self.count = 0
        page.on("request", self._seen)

    def _seen(self, request) -> None:
        if request.method == "POST" and request.url.endswith("/viz/ping"):
            self.count += 1


def set_focus(page: Page, focused: bool) -> None:
    page.evaluate(f"document.hasFocus = () => {'true' if focused else 'false'}")


def test_dash_viz_page_pings_only_with_focus_and_recovers_from_a_stop(server, page):
    pings = PingCounter(page)
    page.goto(f"{server.base}/demo/dash-wave/viz/")
    page.wait_for_selector("#viz-status[data-status=starting], iframe.viz-frame", timeout=30_000)
    page.wait_for_selector("iframe.viz-frame", timeout=90_000)
    app = page.frame_locator("iframe.viz-frame")
    app.locator("#wave .main-svg").first.wait_for(timeout=60_000)

    # a real Dash callback inside the iframe: the slider's input redraws the graph
    box = app.locator("#frequency input").first
    box.fill("5")
    box.press("Enter")
    app.get_by_text("y = sin(5·x)").wait_for(timeout=30_000)

    # focused: pings arrive and are recorded
    page.wait_for_timeout(2500)
    assert pings.count >= 2
    assert server.status("/demo/dash-wave/")["latest_ping_at"] is not None

    # unfocused: no pings at all
    set_focus(page, False)
    page.wait_for_timeout(1200)  # (Playwright delivers request events only while we call it)
    before = pings.count
    page.wait_for_timeout(3500)
    assert pings.count == before

    # spun down meanwhile: the next ping learns it, the page says so, pings stop
    server.flask("deployments", "stop", "demo/dash-wave")
    set_focus(page, True)
    page.wait_for_selector("#viz-status[data-status=stopped]", timeout=15_000)
    assert page.locator("iframe.viz-frame").count() == 0
    assert "asleep" in page.inner_text("#viz-status")
    assert page.evaluate("window.dormouseViz.isPinging()") is False
    settled = pings.count
    page.wait_for_timeout(3500)
    assert pings.count == settled  # no ping storm, no reload loop
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

    # restart from the page: a new deployment, the app again, pings again
    page.get_by_role("button", name="Start it again").click()
    page.wait_for_selector("iframe.viz-frame", timeout=90_000)
    page.frame_locator("iframe.viz-frame").locator("#wave .main-svg").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2500)
    assert pings.count > settled


def test_bokeh_viz_page_shows_the_app_and_a_lost_session_plainly(server, page):
    pings = PingCounter(page)
    page.goto(f"{server.base}/demo/bokeh-sliders/viz/")
    page.wait_for_selector("iframe.viz-frame", timeout=90_000)
    app = page.frame_locator("iframe.viz-frame")
    # the widgets are rendered by BokehJS from the server's document, over the websocket
    app.get_by_text("Amplitude").first.wait_for(timeout=60_000)
    app.locator("canvas").first.wait_for(timeout=60_000)

    # the session is lost (cookies cleared): pings are refused (CSRF), the page
    # says so once and stops pinging, and the app stays on screen
    page.context.clear_cookies()
    page.wait_for_selector("#viz-notice:not([hidden])", timeout=15_000)
    assert "Reload" in page.inner_text("#viz-notice")
    settled = pings.count
    page.wait_for_timeout(3000)
    assert pings.count == settled
    assert page.locator("iframe.viz-frame").count() == 1
