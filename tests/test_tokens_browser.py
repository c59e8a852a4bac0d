"""The tokens page in real Chromium, served as `make run` serves it: the
demo user goes from /account to /account/tokens, makes a token (shown once),
uses it against the API, and revokes it with the page's button. Any CSP
violation fails the test (:class:`CspWatch`); screenshots go to the
git-ignored ``screenshots/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browsers import ARGS, CHROMIUM, WAIT, CspWatch
from tests.serving import REQUEST_TIMEOUT, serve

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
    page.screenshot(path=str(SHOTS / f"tokens-{name}.png"), full_page=True)


def test_make_use_and_revoke_a_token_from_the_page(server, page):
    page.goto(f"{server.site}/login")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(lambda url: "/login" not in url, timeout=WAIT)
    page.goto(f"{server.site}/account")
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url(f"{server.site}/account/tokens", timeout=WAIT)
    assert page.get_by_text("You have no tokens yet.").is_visible()

    page.fill("input[name=label]", "my laptop")
    page.select_option("select[name=ttl]", label="7 days")
    page.get_by_role("button", name="Make a token").click()
    page.wait_for_load_state()
    token = page.inner_text("pre#new-token").strip()
    assert token.count(".") == 2 and page.get_by_text("Copy it now").is_visible()
    shot(page, "made")

    api = f"{server.base}/api/v1/apps"
    used = requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT)
    assert used.status_code == 200 and {a["title"] for a in used.json()["apps"]} == {
        "dash-wave",
        "bokeh-sliders",
    }

    page.goto(f"{server.site}/account/tokens")  # shown once: not again
    assert page.locator("pre#new-token").count() == 0 and token not in page.content()
    row = page.locator("tr", has_text="my laptop")
    assert row.get_attribute("data-state") == "active" and "never" not in row.inner_text()  # last used: now
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_load_state()
    assert page.locator("tr", has_text="my laptop").get_attribute("data-state") == "revoked"
    assert page.get_by_text("It no longer works").is_visible()
    shot(page, "revoked")
    refused = requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT)
    assert refused.status_code == 401
