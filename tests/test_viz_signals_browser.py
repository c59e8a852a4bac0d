"""The viz page's signals, in real Chromium, served as `make run` serves it
(the local backend, Traefik in front): the page pings the moment it regains
focus (the timer's next tick is an hour away), and says goodbye when it is
closed or navigated away from (and hello again when restored from the
back/forward cache, steered here by dispatching the events); the sweep (run here with a clock set past the
grace, not waiting a minute) then stops the app whose last page closed, while
another open tab keeps it. The CSP is watched.

Focus is steered by replacing ``document.hasFocus`` in the page (Playwright
keeps every page focused and visible; the gate under test is our script's
use of it). The database is read by a short script with the server's
environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browsers import CspWatch
from tests.serving import REPO, LiveServer, serve

pytestmark = pytest.mark.timeout(300)
APP = "/demo/dash-wave/"
GRACE = 3700  # seconds: GOODBYE_GRACE, longer than PING_INTERVAL + ACTIVITY_RESOLUTION (the config asks)

# Prints the deployment's goodbye columns; with a number of seconds, first
# sweeps with the clock that many seconds after its latest goodbye.
DEPLOYMENT = """
import json, sys
from datetime import timedelta
from app import create_app, sweep
from app.extensions import db
from app.models import Deployment

app = create_app()
with app.app_context():
    dep = db.session.scalar(db.select(Deployment).where(Deployment.public_name == sys.argv[1]))
    if len(sys.argv) > 2:
        sweep.sweep(now=dep.latest_goodbye_at + timedelta(seconds=float(sys.argv[2])))
        db.session.refresh(dep)
    print(json.dumps({
        "status": dep.status, "page_loads": dep.page_loads, "goodbyes": dep.goodbyes,
        "goodbye": dep.latest_goodbye_at is not None, "stop_reason": dep.stop_reason,
    }))
"""


@pytest.fixture
def server(tmp_path) -> Iterator[LiveServer]:
    with serve(
        tmp_path,
        PING_INTERVAL="3600",  # no timer tick during the test: a ping is the focus ping
        ACTIVITY_RESOLUTION="0",
        SWEEP_INTERVAL="3600",  # the test runs the sweep itself
        STATUS_POLL_INTERVAL="0.5",
        IDLE_LOAD_TIMEOUT="36000",  # only the goodbye may stop it within the test
        IDLE_PING_TIMEOUT="36000",
        GOODBYE_GRACE=str(GRACE),
    ) as live:
        yield live


def deployment(server: LiveServer, public_name: str, sweep_after: float | None = None) -> dict:
    args = [sys.executable, "-c", DEPLOYMENT, public_name]
    if sweep_after is not None:
        args.append(str(sweep_after))
    done = subprocess.run(
        args, cwd=REPO, env=server.env, check=True, timeout=120, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def running_app(page: Page) -> str:
    page.wait_for_selector("iframe.viz-frame", timeout=90_000)
    page.frame_locator("iframe.viz-frame").locator("#wave .main-svg").first.wait_for(timeout=60_000)
    return page.get_attribute("#viz-status", "data-deployment") or ""


def test_focus_pings_at_once_and_the_last_goodbye_lets_the_sweep_stop_it(server, browser):
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    csp = CspWatch(context)
    try:
        first = context.new_page()
        first.goto(f"{server.site}{APP}viz/")
        name = running_app(first)
        assert server.status(APP)["latest_ping_at"] is None  # the timer has not ticked

        # focus leaves, then comes back: a ping reaches the server at once
        first.evaluate("() => { document.hasFocus = () => false; window.dispatchEvent(new Event('blur')); }")
        first.evaluate("() => { document.hasFocus = () => true; window.dispatchEvent(new Event('focus')); }")
        server.wait(lambda: server.status(APP)["latest_ping_at"] is not None, 15, "the focus ping")
        assert first.evaluate("window.dormouseViz.lastPingAt()") > 0
        # at most one a second: a second focus at once sends nothing more
        sent = first.evaluate("window.dormouseViz.lastPingAt()")
        first.evaluate("() => window.dispatchEvent(new Event('focus'))")
        assert first.evaluate("window.dormouseViz.lastPingAt()") == sent

        # put in the back/forward cache and restored (the events as the browser
        # sends them): a goodbye, then a hello that counts the page again; the
        # same deployment still runs, so the app is not reloaded
        first.evaluate("() => { window.signalsMarker = 'kept'; }")
        first.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}))")
        server.wait(lambda: deployment(server, name)["goodbyes"] == 1, 30, "the cached page's goodbye")
        first.evaluate("() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
        server.wait(lambda: deployment(server, name)["page_loads"] == 2, 30, "the restored page's hello")
        assert first.get_attribute("#viz-status", "data-deployment") == name
        assert first.evaluate("window.signalsMarker") == "kept"

        # a second tab shows the same deployment: two pages open
        second = context.new_page()
        second.goto(f"{server.site}{APP}viz/")
        assert running_app(second) == name
        assert deployment(server, name)["page_loads"] == 3

        # the first navigates away: its goodbye is recorded; the other tab keeps the app
        first.goto(f"{server.site}/")
        server.wait(lambda: deployment(server, name)["goodbyes"] == 2, 30, "the first page's goodbye")
        kept = deployment(server, name, sweep_after=GRACE + 1)
        assert kept["status"] == "running", kept

        # the last page is closed: its goodbye too; stopped once the grace is past
        second.close(run_before_unload=True)
        server.wait(lambda: deployment(server, name)["goodbyes"] == 3, 30, "the last page's goodbye")
        assert deployment(server, name, sweep_after=GRACE - 5)["status"] == "running"
        gone = deployment(server, name, sweep_after=GRACE + 1)
        assert (gone["status"], gone["stop_reason"]) == ("stopped", "idle"), gone
        assert server.status(APP)["status"] == "stopped"
    finally:
        context.close()
    assert csp.violations == [], "CSP violations:\n" + "\n".join(csp.violations)
