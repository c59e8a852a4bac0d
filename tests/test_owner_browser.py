"""The owner's page in real Chromium, served as `make run` serves it: the
demo owner logs in, opens /demo/, stops a running demo, starts it and
restarts it, edits its description and deletes the other demo, with the
buttons of the page itself (plain forms, no script; the delete is confirmed
in a <details>). Any CSP violation fails the test (:class:`CspWatch`, as in
tests/test_browser.py). Screenshots of each step go to ``screenshots/``
(git-ignored) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browsers import ARGS, CHROMIUM, WAIT, CspWatch
from tests.serving import serve, start_app

pytestmark = pytest.mark.timeout(300)
SHOTS = Path(__file__).resolve().parent.parent / "screenshots"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path, SWEEP_INTERVAL="3600") as live:
        live.flask("users", "password", "demo", "--password-stdin", stdin=f"{PASSWORD}\n")
        yield live


@pytest.fixture
def page(server) -> Iterator[Page]:
    with sync_playwright() as pw:
        browser: Browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            csp = CspWatch(context)
            yield context.new_page()
            assert csp.violations == [], "CSP violations:\n" + "\n".join(csp.violations)
        finally:
            browser.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"owner-{name}.png"), full_page=True)


def row_state(page: Page, title: str) -> str:
    return page.get_attribute(f'li.app-row[data-app="{title}"]', "data-state") or ""


def wait_row_state(page: Page, title: str, state: str, timeout: float = 90) -> None:
    """Reload the owner's page (it is not polled) until the row shows ``state``."""
    for _ in range(int(timeout * 2)):
        if row_state(page, title) == state:
            return
        page.wait_for_timeout(500)
        page.reload()
    assert row_state(page, title) == state, f"{title} never showed {state}"


def click_in_row(page: Page, title: str, button: str) -> None:
    page.locator(f'li.app-row[data-app="{title}"]').get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()


def test_the_owner_stops_restarts_edits_and_deletes_from_their_page(server, page):
    start_app(server, requests.Session(), "/demo/dash-wave/")  # a visitor opened it
    server.wait(lambda: server.status("/demo/dash-wave/")["status"] == "running", 90, "dash-wave to run")

    page.goto(f"{server.site}/login")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(lambda url: "/login" not in url, timeout=WAIT)
    page.get_by_role("link", name="My apps").click()
    page.wait_for_url(f"{server.site}/demo/", timeout=WAIT)
    assert row_state(page, "dash-wave") == "running"
    assert "running since" in page.inner_text('li.app-row[data-app="dash-wave"]')
    shot(page, "1-running")

    # stop it: asleep, by its owner
    first = server.status("/demo/dash-wave/")["public_name"]
    click_in_row(page, "dash-wave", "Stop")
    assert "Stopped demo/dash-wave" in page.inner_text(".flashes")
    assert row_state(page, "dash-wave") == "asleep"
    assert "stopped by its owner" in page.inner_text('li.app-row[data-app="dash-wave"]')
    assert server.status("/demo/dash-wave/")["stop_reason"] == "owner"
    shot(page, "2-stopped")

    # start it again, then restart it: each time a new deployment
    click_in_row(page, "dash-wave", "Start")
    wait_row_state(page, "dash-wave", "running")
    second = server.status("/demo/dash-wave/")["public_name"]
    click_in_row(page, "dash-wave", "Restart")
    assert "Restarted demo/dash-wave" in page.inner_text(".flashes")
    wait_row_state(page, "dash-wave", "running")
    third = server.status("/demo/dash-wave/")["public_name"]
    assert len({first, second, third}) == 3
    shot(page, "3-restarted")

    # edit its description
    page.locator('li.app-row[data-app="dash-wave"]').get_by_role("link", name="Edit").click()
    page.wait_for_url(f"{server.site}/demo/dash-wave/edit", timeout=WAIT)
    shot(page, "4-edit-form")
    page.fill("textarea[name=description]", "A sine wave, edited by its owner.")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{server.site}/demo/", timeout=WAIT)
    assert "A sine wave, edited by its owner." in page.inner_text('li.app-row[data-app="dash-wave"]')
    assert "Saved demo/dash-wave" in page.inner_text(".flashes")

    # delete the other demo: a second step confirms it (no script: a <details>)
    row = page.locator('li.app-row[data-app="bokeh-sliders"]')
    row.locator("summary", has_text="Delete").click()
    shot(page, "5-confirm-delete")
    row.get_by_role("button", name="Delete bokeh-sliders").click()
    page.wait_for_load_state()
    assert "Deleted demo/bokeh-sliders" in page.inner_text(".flashes")
    assert page.locator('li.app-row[data-app="bokeh-sliders"]').count() == 0
    shot(page, "6-deleted")
    page.goto(f"{server.site}/")
    assert "bokeh-sliders" not in page.content() and "edited by its owner" in page.content()
    assert requests.get(f"{server.base}/demo/bokeh-sliders/", timeout=30).status_code == 404
