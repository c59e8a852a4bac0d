"""Crawlers and link previews (issue 8), replayed against the served product:
a page view must never start an app (only the viz page's own script, with
its CSRF token, does), so bots that follow every link wake nothing.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.security.helpers import deployment_rows, visitor
from tests.serving import REQUEST_TIMEOUT, LiveServer, serve

pytestmark = pytest.mark.timeout(240)
USER_AGENTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "curl/8.5.0",
]
# What a crawler finds by following links (and guessing the HTMX endpoints from the page).
PATHS = [
    "/",
    "/demo/dash-wave/",
    "/demo/dash-wave/viz/",
    "/demo/bokeh-sliders/",
    "/demo/bokeh-sliders/viz/",
    "/demo/dash-wave/viz/status",
    "/demo/bokeh-sliders/viz/status?deployment=default-abc234",
    "/demo/dash-wave/viz/start",
    "/demo/bokeh-sliders/viz/ping",
    "/robots.txt",
]
VIEWS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    with serve(tmp_path_factory.mktemp("crawlers"), SWEEP_INTERVAL="3600") as live:
        yield live


def test_two_hundred_crawler_page_views_start_nothing(server: LiveServer) -> None:
    """Attack (or accident): crawlers and link previews (Googlebot, bingbot,
    Slackbot, facebookexternalhit, Twitterbot, curl) fetch every page they
    find, viz pages and the HTMX endpoints' URLs included, 200 times in all,
    with GET and HEAD. Expected: nothing is started (no deployment row), the
    start and ping URLs refuse GET (405), and robots.txt, the page's meta tag
    and X-Robots-Tag tell well-behaved ones to keep out of viz pages."""
    bot = visitor()
    answers: Counter[tuple[str, int]] = Counter()
    for n, (agent, path) in enumerate(itertools.islice(itertools.cycle(itertools.product(USER_AGENTS, PATHS)),
                                                       VIEWS)):  # fmt: skip
        method = bot.head if n % 5 == 4 else bot.get
        answer = method(f"{server.base}{path}", headers={"User-Agent": agent}, timeout=REQUEST_TIMEOUT,
                        allow_redirects=False)  # fmt: skip
        answers[(path.split("?")[0], answer.status_code)] += 1
        if path.endswith(("/start", "/ping")):
            assert answer.status_code == 405, (path, answer.status_code)
        else:
            assert answer.status_code == 200, (path, answer.status_code)
    assert sum(answers.values()) == VIEWS
    assert deployment_rows(server) == [], answers
    for path in ("/demo/dash-wave/", "/demo/bokeh-sliders/"):
        assert server.status(path)["status"] == "none"

    robots = bot.get(f"{server.base}/robots.txt", timeout=REQUEST_TIMEOUT).text
    assert "Disallow: /*/*/viz/" in robots.splitlines()
    viz = bot.get(f"{server.base}/demo/dash-wave/viz/", timeout=REQUEST_TIMEOUT)
    assert '<meta name="robots" content="noindex, nofollow">' in viz.text
    assert "noindex" in viz.headers.get("X-Robots-Tag", "")
