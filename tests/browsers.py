"""Chromium for the browser tests (Debian's, driven by Playwright's bundled
driver): how it is started, and the watch that fails a test on any violation
of Dormouse's Content-Security-Policy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, BrowserContext, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT = 30_000  # ms, for a condition the page reaches by itself


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed whatever happens."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Reports every CSP violation in every frame of the context, whatever the page
# does next (a binding outlives navigations; a page's variable would not).
CSP_EVENTS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.dormouseCspViolation(
    `${event.effectiveDirective} refused ${event.blockedURI || "inline code"} in ${document.location.href}`
  );
});
"""
CSP_MARKERS = ("Content Security Policy", "Refused to")


class CspWatch:
    """The CSP violations a browser context reports: its frames'
    ``securitypolicyviolation`` events, and console messages and uncaught
    errors that name one (Chromium logs one for each; for a refused frame
    the framing page gets only that message: "Framing '…' violates the
    following Content Security Policy directive: "frame-ancestors 'self'"")."""

    def __init__(self, context: BrowserContext) -> None:
        self.violations: list[str] = []
        context.expose_binding("dormouseCspViolation", lambda _source, text: self.violations.append(text))
        context.add_init_script(CSP_EVENTS)
        context.on("console", lambda message: self._note(f"console {message.type}: {message.text}"))
        context.on("weberror", lambda error: self._note(f"page error: {error.error}"))

    def _note(self, text: str) -> None:
        if any(marker in text for marker in CSP_MARKERS):
            self.violations.append(text)
