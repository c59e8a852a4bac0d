"""The viz page in real Chromium, served as `make run` serves it (Dormouse on
``dormouse.localhost``, the apps on ``viz.dormouse.localhost``, one port,
Traefik in front): start-up, the iframe, a Dash callback and Bokeh's websocket
inside it, focus-gated pings, the stopped state and a restart; a private
app's iframe URL copied into a fresh browser is refused; another site's page
cannot frame Dormouse's, except an app's viz page on the sites it names.

Every test runs with Dormouse's CSP on and fails on any CSP violation its
page reports (:class:`CspWatch`).

Needs Debian's chromium (`.ci/run` installs it) and the Playwright package
(its bundled driver; no browser download). Focus is steered by replacing
``document.hasFocus`` in the page: Playwright keeps every page "focused", and
the gate under test is our script's use of it.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page

from tests.browsers import WAIT, CspWatch
from tests.serving import serve

pytestmark = pytest.mark.timeout(300)
# Conditions for wait_for_function are written as functions ("() => ..."): an
# expression is eval'd in the page, which Dormouse's CSP refuses.
TICKS = 3  # ping intervals a "nothing happens" check watches for

# Counts, inside the page, the pings it sends and each time its ping timer asks
# whether the page has focus: exact, and independent of when Playwright
# delivers its events. (A reload would reset them, which the tests would see.)
COUNTERS = """
window.dormouseTest = {pings: 0, focusChecks: 0};
const realFetch = window.fetch;
window.fetch = function (url, options) {
  if (String(url).endsWith("/viz/ping")) { window.dormouseTest.pings += 1; }
  return realFetch.apply(this, arguments);
};
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
        yield live


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """The test's page, with Dormouse's CSP on; the test fails if anything in
    it (the app's iframe included) violates a CSP."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    csp = CspWatch(context)
    page = context.new_page()
    page.add_init_script(COUNTERS)
    yield page
    assert csp.violations == [], "CSP violations:\n" + "\n".join(csp.violations)


@contextmanager
def another_site(pages: dict[str, str]) -> Iterator[str]:
    """A site of someone else's on ``blog.dormouse.localhost`` (the same
    site as Dormouse's host, a different origin: a sibling subdomain), serving
    ``pages`` (path -> HTML; the dict may be filled once its origin is known)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "not here").encode())

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://blog.dormouse.localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def framing(*urls: str) -> str:
    frames = "".join(f'<iframe src="{html.escape(url)}" width="600" height="400"></iframe>' for url in urls)
    return f"<!doctype html><title>Another site</title><h1>Another site</h1>{frames}"


def pings(page: Page) -> int:
    return page.evaluate("window.dormouseTest.pings")


def set_focus(page: Page, focused: bool) -> None:
    """Steer the page's focus gate; every call of it is counted."""
    page.evaluate(
        """(focused) => {
        window.dormouseTest.focusChecks = 0;
        document.hasFocus = () => { window.dormouseTest.focusChecks += 1; return focused; };
    }""",
        focused,
    )


def wait_for_focus_checks(page: Page, count: int) -> None:
    """Until the page's ping timer has fired ``count`` times since set_focus (each
    tick with no ping in flight asks for focus before anything else)."""
    page.wait_for_function(f"() => window.dormouseTest.focusChecks >= {count}", timeout=WAIT)


def wait_ping_intervals(page: Page, count: int) -> None:
    """Until ``count`` ping intervals have passed by the page's own clock: a
    timer of the page's interval, in the page's event loop, has fired ``count``
    times (if the page's ping timer were running, it would have fired as often)."""
    page.evaluate(
        """(count) => new Promise((done) => {
        const seconds = parseFloat(document.getElementById("viz").dataset.pingInterval);
        let fired = 0;
        const timer = setInterval(() => {
            fired += 1;
            if (fired >= count) { clearInterval(timer); done(); }
        }, Math.max(1, seconds) * 1000);
    })""",
        count,
    )


def browser_wait(page: Page, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Until ``predicate()`` holds, letting Playwright deliver the browser's
    events meanwhile (they arrive only while it is called: a sleep would hold
    them back)."""
    for _ in range(int(timeout * 10)):
        if predicate():
            return
        page.wait_for_timeout(100)
    assert predicate(), f"timed out after {timeout:g}s waiting for {what}"


def latest_ping(server, path: str) -> datetime | None:
    value = server.status(path)["latest_ping_at"]
    return datetime.fromisoformat(value) if value else None


def test_dash_viz_page_pings_only_with_focus_and_recovers_from_a_stop(server, page):
    page.goto(f"{server.site}/demo/dash-wave/viz/")
    page.wait_for_selector("#viz-status[data-status=starting], iframe.viz-frame", timeout=30_000)
    page.wait_for_selector("iframe.viz-frame", timeout=90_000)
    src = page.get_attribute("iframe.viz-frame", "src") or ""
    assert src.startswith(f"{server.viz}/demo/dash-wave/") and "dormouse_token=" in src
    app = page.frame_locator("iframe.viz-frame")
    app.locator("#wave .main-svg").first.wait_for(timeout=60_000)

    # a real Dash callback inside the iframe: the slider's input redraws the graph
    box = app.locator("#frequency input").first
    box.fill("5")
    box.press("Enter")
    app.get_by_text("y = sin(5·x)").wait_for(timeout=30_000)

    # focused: pings go out and are recorded
    page.wait_for_function("() => window.dormouseTest.pings >= 2", timeout=WAIT)
    server.wait(lambda: latest_ping(server, "/demo/dash-wave/"), 30, "the server to record a ping")

    # unfocused: no pings at all. Once the timer has asked for focus, no ping
    # is in flight (it asks only then), so the server's record is settled.
    set_focus(page, False)
    wait_for_focus_checks(page, 1)
    before, recorded = pings(page), latest_ping(server, "/demo/dash-wave/")
    wait_for_focus_checks(page, 1 + TICKS)
    assert pings(page) == before
    assert latest_ping(server, "/demo/dash-wave/") == recorded

    # spun down meanwhile: the next ping learns it, the page says so, pings stop
    server.flask("deployments", "stop", "demo/dash-wave")
    set_focus(page, True)
    page.wait_for_selector("#viz-status[data-status=stopped]", timeout=15_000)
    assert page.locator("iframe.viz-frame").count() == 0
    assert "asleep" in page.inner_text("#viz-status")
    assert page.evaluate("window.dormouseViz.isPinging()") is False
    settled = pings(page)
    wait_ping_intervals(page, TICKS)
    assert pings(page) == settled  # no ping storm, no reload loop
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

    # restart from the page: a new deployment, the app again, pings again
    page.get_by_role("button", name="Start it again").click()
    page.wait_for_selector("iframe.viz-frame", timeout=90_000)
    page.frame_locator("iframe.viz-frame").locator("#wave .main-svg").first.wait_for(timeout=60_000)
    page.wait_for_function(f"() => window.dormouseTest.pings > {settled}", timeout=WAIT)


def test_bokeh_viz_page_shows_the_app_and_a_lost_session_plainly(server, page):
    page.goto(f"{server.site}/demo/bokeh-sliders/viz/")
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
    assert page.evaluate("window.dormouseViz.isPinging()") is False
    settled = pings(page)
    wait_ping_intervals(page, TICKS)
    assert pings(page) == settled
    assert page.locator("iframe.viz-frame").count() == 1


def test_a_private_apps_copied_iframe_url_opens_nothing_elsewhere(server, page):
    server.flask("users", "create", "alice", "--password-stdin", stdin="correct-horse\n")
    server.flask("apps", "publish", "--owner", "alice", "--title", "secret", "--framework", "dash",
                 "--source", "dash-wave/app.py:server", "--private")  # fmt: skip
    page.goto(f"{server.site}/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "correct-horse")
    page.press("input[name=password]", "Enter")
    page.wait_for_url(lambda url: "/login" not in url, timeout=WAIT)
    page.goto(f"{server.site}/alice/secret/viz/")
    page.wait_for_selector("iframe.viz-frame", timeout=90_000)
    page.frame_locator("iframe.viz-frame").locator("#wave .main-svg").first.wait_for(timeout=60_000)
    src = page.get_attribute("iframe.viz-frame", "src") or ""
    assert "dormouse_token=" in src
    app_url = src.split("?", 1)[0]

    stranger = page.context.browser.new_context()
    try:
        other = stranger.new_page()
        for url in (src, app_url, app_url + "_dash-layout"):  # the copied URL, its token spent; none
            response = other.goto(url)
            assert response is not None and response.status == 401, (url, response and response.status)
            assert "Sine wave" not in other.content()
        response = other.goto(f"{server.site}/alice/secret/viz/")
        assert response is not None and response.status == 404  # private: not even the page
    finally:
        stranger.close()


def test_another_site_cannot_frame_dormouse_but_an_apps_embedders_can(server, page):
    pages: dict[str, str] = {}
    with another_site(pages) as site:
        server.flask("apps", "publish", "--owner", "demo", "--title", "embeddable", "--framework", "bokeh",
                     "--source", "bokeh-sliders/main.py", "--embed-origin", site)  # fmt: skip
        pages["/framing"] = framing(f"{server.site}/demo/dash-wave/viz/", f"{server.site}/")
        pages["/embedding"] = framing(f"{server.site}/demo/embeddable/viz/")

        # a page of another origin (on the same site, so Dormouse's cookies
        # would go along) frames Dormouse's pages: the browser refuses both
        stranger = page.context.browser.new_context()
        try:
            watch = CspWatch(stranger)
            framed = stranger.new_page()
            framed.goto(f"{site}/framing")
            framed.wait_for_function("() => document.querySelectorAll('iframe').length === 2")
            browser_wait(framed, lambda: len(watch.violations) >= 2, "Chromium to refuse both frames")
            assert all("frame-ancestors 'self'" in v for v in watch.violations), watch.violations
            for frame in framed.frames[1:]:  # Chromium's error page in each
                assert not frame.url.startswith(server.site), frame.url
                assert "Dormouse" not in frame.content()
            assert server.status("/demo/dash-wave/")["status"] == "none"  # and it started nothing
        finally:
            stranger.close()

        # an app that names that site may be embedded there: the viz page loads
        # in the frame and starts the app, its CSP unbroken (the page fixture checks)
        page.goto(f"{site}/embedding")
        embedded = page.frame_locator("iframe")
        embedded.locator("#viz-status[data-status=starting], iframe.viz-frame").first.wait_for(timeout=WAIT)
        server.wait(lambda: server.status("/demo/embeddable/")["status"] in ("starting", "running"), 30,
                    "the embedded page to start its app")  # fmt: skip
