"""The sleeping page wakes in place, in real Chromium, served as `make run`
serves it (the local backend, Traefik in front): the viz page shows how long
this app usually takes to start (seeded past cold starts), then the app with
a quiet "sleeps after …" note; nobody looks, the sweep stops it as idle; the
page, focused again, says it went to sleep and wakes it by itself once it is
visible (and, the second time, with one click) — the iframe comes back with
no reload: a marker set on the page after it loaded survives. The CSP is
watched, and the page's own console must stay free of errors.

Focus and visibility are steered by replacing ``document.hasFocus`` and
``document.visibilityState`` in the page (Playwright keeps every page focused
and visible; the gates under test are our script's use of them).
Screenshots: screenshots/viz-starting.png, viz-running.png and viz-asleep.png.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browsers import WAIT, CspWatch
from tests.live_instance import apps_dir
from tests.serving import REPO, LiveServer, serve

pytestmark = pytest.mark.timeout(300)
SHOTS = REPO / "screenshots"
APP = "/demo/dash-wave/"
IDLE = "3"  # seconds: the idle limits of this server, so the sweep may stop it soon
START_DELAY = 2  # seconds each start of the demo takes at least, so the page shows it

# Past cold starts of demo/dash-wave (10, 12, 15 s): "usually ready in about 12 s".
SEED = """
from datetime import timedelta
from app import create_app
from app.extensions import db
from app.models import User, VizApp, utcnow
from tests.factories import make_deployment

app = create_app()
with app.app_context():
    wave = db.session.scalar(
        db.select(VizApp).join(User).where(User.username == "demo", VizApp.title == "dash-wave")
    )
    base = utcnow() - timedelta(days=1)
    for n, took in enumerate((10, 12, 15)):
        created = base + timedelta(hours=n)
        make_deployment(wave, created, ready_at=created + timedelta(seconds=took),
                        stopped_at=created + timedelta(minutes=30))
"""


@pytest.fixture
def server(tmp_path) -> Iterator[LiveServer]:
    # The demo, made slow to start: its first answer would otherwise often come
    # before the start's own answer, and the page would never show "starting".
    apps = apps_dir(tmp_path)
    with (apps / "dash-wave" / "app.py").open("a", encoding="utf-8") as source:
        source.write(f"\nimport time as _time\n\n_time.sleep({START_DELAY})  # the test's, not the demo's\n")
    with serve(
        tmp_path,
        APPS_DIR=str(apps),
        PING_INTERVAL="1",
        ACTIVITY_RESOLUTION="0",
        SWEEP_INTERVAL="3600",  # the test runs the sweep itself
        STATUS_POLL_INTERVAL="0.5",
        IDLE_LOAD_TIMEOUT=IDLE,
        IDLE_PING_TIMEOUT=IDLE,
    ) as live:
        subprocess.run([sys.executable, "-c", SEED], cwd=REPO, env=live.env, check=True, timeout=120)
        yield live


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def steer(page: Page, *, focused: bool, visible: bool) -> None:
    """Set what the page's script sees of focus and visibility, and tell it."""
    page.evaluate(
        """([focused, visible]) => {
        document.hasFocus = () => focused;
        Object.defineProperty(document, "visibilityState", {
            configurable: true, get: () => (visible ? "visible" : "hidden")
        });
        document.dispatchEvent(new Event("visibilitychange"));
    }""",
        [focused, visible],
    )


def put_to_sleep(server: LiveServer) -> None:
    """Run the sweep (as the scheduler would) until it stops the app as idle."""

    def asleep() -> bool:
        server.flask("sweep")
        status = server.status(APP)
        return status["status"] == "stopped" and status["stop_reason"] == "idle"

    server.wait(asleep, 60, "the sweep to stop the app as idle")


def running_app(page: Page) -> None:
    page.wait_for_selector("iframe.viz-frame", timeout=90_000)
    page.frame_locator("iframe.viz-frame").locator("#wave .main-svg").first.wait_for(timeout=60_000)


def test_the_sleeping_page_wakes_in_place(server, browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    csp = CspWatch(context)
    errors: list[str] = []
    context.on(
        "console",
        lambda m: (
            errors.append(f"{m.location.get('url')}: {m.text}")
            if m.type == "error" and str(m.location.get("url", "")).startswith(server.site)
            else None
        ),
    )
    try:
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.goto(f"{server.site}{APP}viz/")

        # starting: the phase, the seconds, and the usual time from past starts
        page.wait_for_selector("#viz-status[data-status=starting]", timeout=WAIT)
        starting = page.inner_text("#viz-status")
        assert "Starting dash-wave" in starting and "s elapsed" in starting
        assert "usually ready in about 12 s" in starting
        shot(page, "viz-starting")
        page.evaluate("() => { window.wakeMarker = 'set after load'; }")

        # running: the quiet note says when it sleeps
        running_app(page)
        note = page.locator("#viz-sleep-note")
        assert note.inner_text() == "Sleeps after 3 s without viewers"
        shot(page, "viz-running")
        first = page.get_attribute("#viz-status", "data-deployment")

        # nobody looks (no focus: no pings); the sweep stops it as idle
        steer(page, focused=False, visible=False)
        put_to_sleep(server)

        # focused but hidden: the next ping learns it; the page says so, waits
        steer(page, focused=True, visible=False)
        page.wait_for_selector("#viz-status[data-status=stopped]", timeout=WAIT)
        asleep = page.inner_text("#viz-status")
        assert "dash-wave is asleep" in asleep
        assert "This app went to sleep after" in asleep and "without viewers" in asleep
        assert page.locator("#viz-wake").inner_text() == "Wake it"
        assert page.locator("iframe.viz-frame").count() == 0
        shot(page, "viz-asleep")
        # hidden, it does not wake by itself, whatever the page is told (its
        # wake check runs on these events, synchronously)
        page.evaluate(
            """() => {
            document.dispatchEvent(new Event("visibilitychange"));
            window.dispatchEvent(new Event("focus"));
        }"""
        )
        assert page.evaluate("window.dormouseViz.wokenByItself()") == 0
        assert page.get_attribute("#viz-status", "data-status") == "stopped"

        # visible again: it wakes by itself, in place
        steer(page, focused=True, visible=True)
        page.wait_for_selector("#viz-status[data-status=starting], iframe.viz-frame", timeout=WAIT)
        running_app(page)
        second = page.get_attribute("#viz-status", "data-deployment")
        assert second and second != first
        assert page.evaluate("window.dormouseViz.wokenByItself()") == 1
        assert page.evaluate("window.wakeMarker") == "set after load"
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1

        # once more, woken with one click while the page is hidden
        steer(page, focused=False, visible=False)
        put_to_sleep(server)
        steer(page, focused=True, visible=False)
        page.wait_for_selector("#viz-status[data-status=stopped]", timeout=WAIT)
        page.get_by_role("button", name="Wake it").click()
        running_app(page)
        assert page.get_attribute("#viz-status", "data-deployment") not in (first, second)
        assert page.evaluate("window.dormouseViz.wokenByItself()") == 1  # the click, not the page
        assert page.evaluate("window.wakeMarker") == "set after load"
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        assert server.status(APP)["status"] == "running"
    finally:
        context.close()
    assert csp.violations == [], "CSP violations:\n" + "\n".join(csp.violations)
    assert errors == [], "console errors:\n" + "\n".join(errors)
