"""Another site's page against Dormouse, in real Chromium, against the served
product: framing Dormouse's pages (clickjacking, or a hidden frame that
starts apps for its visitors), and making the visitor's browser POST a start
across sites.

The other site is ``evil.localhost`` on a port of its own: another site
altogether (``*.localhost`` names are each their own site), served by a
small thread here. Needs Debian's chromium and Playwright's driver, as
tests/test_browser.py does.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page

from tests.browsers import chromium
from tests.security.helpers import deployment_rows
from tests.serving import LiveServer, serve

pytestmark = pytest.mark.timeout(240)
REFUSALS = ("frame-ancestors", "X-Frame-Options", "Refused to frame", "Refused to display")
WAVE = "/demo/dash-wave/"
QUIET = 3_000  # ms a refused page is watched for a start it must not make (the viz page starts at once)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    with serve(tmp_path_factory.mktemp("framing"), SWEEP_INTERVAL="3600") as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@contextmanager
def evil_site(pages: dict[str, str]) -> Iterator[str]:
    """``http://evil.localhost:<port>`` serving ``pages`` (path -> HTML; may be
    filled once the origin is known)."""

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
        yield f"http://evil.localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@contextmanager
def stranger_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page in a fresh browser profile, and the console lines that refuse a frame."""
    context = browser.new_context()
    refusals: list[str] = []

    def note(text: str) -> None:
        if any(marker in text for marker in REFUSALS):
            refusals.append(text)

    context.on("console", lambda message: note(message.text))
    try:
        yield context.new_page(), refusals
    finally:
        context.close()


def browser_wait(page: Page, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Until ``predicate()`` holds, letting Playwright deliver the browser's events."""
    for _ in range(int(timeout * 10)):
        if predicate():
            return
        page.wait_for_timeout(100)
    assert predicate(), f"timed out after {timeout:g}s waiting for {what}"


def test_another_site_cannot_frame_dormouse_or_start_an_app_through_a_frame(
    server: LiveServer, browser: Browser
) -> None:
    """Attack: evil.localhost frames Dormouse's pages, visibly (to trick a
    click) or hidden (to start apps for every visitor of its own page): the
    viz page, the gallery, an app's page, the login form. Expected: Chromium
    refuses every frame (frame-ancestors 'self' / X-Frame-Options), nothing of
    Dormouse's shows in them, and no app is started."""
    targets = [f"{server.site}{WAVE}viz/", f"{server.site}/", f"{server.site}{WAVE}", f"{server.site}/login"]
    pages: dict[str, str] = {}
    with evil_site(pages) as evil, stranger_page(browser) as (page, refusals):
        frames = "".join(
            f'<iframe src="{html.escape(url)}" width="400" height="300"></iframe>'
            + f'<iframe src="{html.escape(url)}" style="opacity:0;position:absolute" width="1"></iframe>'
            for url in targets
        )
        pages["/"] = f"<!doctype html><title>Win a prize</title><h1>Click here</h1>{frames}"
        page.goto(f"{evil}/")
        browser_wait(page, lambda: len(refusals) >= 2 * len(targets), "Chromium to refuse every frame")
        page.wait_for_timeout(QUIET)
        for frame in page.frames[1:]:
            assert frame.url.startswith("chrome-error:") or not frame.url.startswith(server.site), frame.url
            assert "Dormouse" not in frame.content() and "csrf-token" not in frame.content()
    assert deployment_rows(server) == [], "a framed page started an app"
    assert server.status(WAVE)["status"] == "none"


def test_another_site_cannot_make_the_browser_start_an_app(server: LiveServer, browser: Browser) -> None:
    """Attack: evil.localhost makes its visitor's browser POST the viz page's
    start, by an auto-submitted form (into a hidden frame) and by ``fetch``
    (no-cors, with credentials), after the visitor had been on Dormouse (so
    the browser holds a Dormouse session). Expected: no CSRF token, no start:
    nothing is made."""
    start = f"{server.site}{WAVE}viz/start"
    script = f"""
      document.forms[0].submit();
      fetch({start!r}, {{method: "POST", mode: "no-cors", credentials: "include",
                         headers: {{"HX-Request": "true"}}, body: "x=1"}})
        .finally(() => {{ window.evilDone = true; }});
    """
    pages = {
        "/": "<!doctype html><title>Cats</title>"
        f'<form method="post" action="{html.escape(start)}" target="sink"><input name="x" value="1"></form>'
        f'<iframe name="sink" width="300" height="100"></iframe><script>{script}</script>'
    }
    with evil_site(pages) as evil, stranger_page(browser) as (page, _):
        page.goto(f"{server.site}/")  # a Dormouse session in this browser first
        with page.expect_response(lambda r: r.url == start and r.request.method == "POST") as posted:
            page.goto(f"{evil}/")
        assert posted.value.status in (400, 403), posted.value.status
        page.wait_for_function("window.evilDone === true", timeout=30_000)
        page.wait_for_timeout(QUIET)
    assert deployment_rows(server) == [], "a cross-site POST started an app"
