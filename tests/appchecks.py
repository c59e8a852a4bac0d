"""Reusable checks that a deployed demo app really works through its URL prefix.

Plain functions (no fixtures) so both the backend tests and end-to-end tests
can call them; each raises AssertionError with a useful message on failure.

* :func:`check_dash_callback` - the ``examples/dash-wave`` app: index page,
  its ``_dash-config`` prefix, a component-suite script, the layout, and a real
  callback round-trip (``_dash-update-component``) whose figure follows the
  slider value.
* :func:`check_bokeh_app` - any Bokeh server app: page, static JS under the
  prefix, ``autoload.js`` and a websocket handshake (bokeh 3 sends the session
  token as the second websocket subprotocol) that receives the server's ACK.
* :func:`check_bokeh_origin_refused` - the websocket refuses a foreign Origin.

HTTP goes through ``requests``; the websocket through tornado (a Bokeh
dependency, so no extra package). Through the front door, first call
:func:`enter` with the iframe's entry URL (it holds the one-time token): it
returns the app's URL and a session that carries the cookie Traefik handed
back, as the iframe's later requests do; pass that session to the checks.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

TIMEOUT = 15.0
_SESSION = requests.Session()
_SESSION.trust_env = False  # never send 127.0.0.1 traffic through a proxy


APP_COOKIE = "dormouse_viz"


def _get(url: str, session: requests.Session | None = None, **kwargs: object) -> requests.Response:
    resp = (session or _SESSION).get(url, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]
    assert resp.status_code == 200, f"GET {url} -> HTTP {resp.status_code}: {resp.text[:300]}"
    return resp


def enter(entry_url: str) -> tuple[str, requests.Session]:
    """Open an app through the front door as its iframe does: the entry URL
    (with its token) once, then the cookie Traefik handed back on every
    request. (The cookie is ``Secure``, which browsers keep on ``*.localhost``
    over http; requests' cookie jar would not send it, so it goes in the
    header, as the browser's would.)"""
    session = requests.Session()
    session.trust_env = False
    first = _get(entry_url, session)
    value = first.cookies.get(APP_COOKIE)
    assert value, f"the front door set no {APP_COOKIE} cookie: {first.headers}"
    session.headers["Cookie"] = f"{APP_COOKIE}={value}"
    parts = urlsplit(entry_url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", session


# ---------------------------------------------------------------------- Dash
def dash_update(
    base_url: str, frequency: float, session: requests.Session | None = None
) -> dict[str, object]:
    """POST one ``frequency.value -> wave.figure`` callback; return the figure."""
    body = {
        "output": "wave.figure",
        "outputs": {"id": "wave", "property": "figure"},
        "inputs": [{"id": "frequency", "property": "value", "value": frequency}],
        "changedPropIds": ["frequency.value"],
        "state": [],
    }
    url = urljoin(base_url, "_dash-update-component")
    resp = (session or _SESSION).post(url, json=body, timeout=TIMEOUT)
    assert resp.status_code == 200, f"POST {url} -> HTTP {resp.status_code}: {resp.text[:500]}"
    data = resp.json()
    try:
        figure = data["response"]["wave"]["figure"]
    except (KeyError, TypeError):
        raise AssertionError(f"unexpected callback response: {str(data)[:500]}") from None
    assert isinstance(figure, dict) and figure.get("data"), f"empty figure: {str(figure)[:300]}"
    return figure


def check_dash_callback(base_url: str, session: requests.Session | None = None) -> None:
    """Check the dash-wave app served at ``base_url`` (which ends with the prefix + "/")."""
    assert base_url.endswith("/"), f"base_url must end with '/': {base_url}"
    prefix = urlsplit(base_url).path
    page = _get(base_url, session).text
    match = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page, re.S)
    assert match, f"no _dash-config in the page at {base_url}"
    config = json.loads(html.unescape(match.group(1)))
    assert config.get("requests_pathname_prefix") == prefix, (
        f"Dash's requests_pathname_prefix is {config.get('requests_pathname_prefix')!r}, expected {prefix!r}"
    )
    scripts = re.findall(r'src="([^"]*_dash-component-suites/[^"]+)"', page)
    assert scripts and all(s.startswith(prefix) for s in scripts), (
        f"scripts not under {prefix}: {scripts[:3]}"
    )
    _get(urljoin(base_url, scripts[0]), session)

    layout = _get(urljoin(base_url, "_dash-layout"), session).text
    assert '"frequency"' in layout and '"wave"' in layout, "layout lacks the slider or graph"
    deps = _get(urljoin(base_url, "_dash-dependencies"), session).json()
    assert any(d.get("output") == "wave.figure" for d in deps), f"no wave.figure callback: {deps}"

    low, high = dash_update(base_url, 1, session), dash_update(base_url, 7, session)
    y_low, y_high = low["data"][0].get("y"), high["data"][0].get("y")  # type: ignore[index]
    assert y_low and y_high and y_low != y_high, "the figure did not change with the slider value"
    assert "7" in json.dumps(high.get("layout", {})), "the title does not show the new frequency"


# --------------------------------------------------------------------- Bokeh
def bokeh_session_token(app_url: str, session: requests.Session | None = None) -> str:
    """GET the app page (which creates a session) and return its session token."""
    page = _get(app_url, session).text
    match = re.search(r'"token":\s*"([^"]+)"', page)
    assert match, f"no session token in the Bokeh page at {app_url}"
    return match.group(1)


async def _ws_first_message(ws_url: str, headers: dict[str, str], token: str) -> str | bytes | None:
    request = HTTPRequest(ws_url, headers=headers, connect_timeout=TIMEOUT, request_timeout=TIMEOUT)
    conn = await websocket_connect(request, subprotocols=["bokeh", token])
    try:
        return await asyncio.wait_for(conn.read_message(), TIMEOUT)
    finally:
        conn.close()


def bokeh_ws_first_message(
    app_url: str, origin: str, session: requests.Session | None = None
) -> str | bytes | None:
    """Open ``<app>/ws`` with a fresh session token and ``Origin: origin`` (and
    the session's cookie); return the first frame. Raises tornado's
    HTTPClientError if the handshake is refused."""
    token = bokeh_session_token(app_url, session)
    parts = urlsplit(app_url)
    ws_url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{parts.path.rstrip('/')}/ws"
    headers = {"Origin": origin}
    if session is not None and "Cookie" in session.headers:
        headers["Cookie"] = str(session.headers["Cookie"])
    return asyncio.run(_ws_first_message(ws_url, headers, token))


def check_bokeh_app(app_url: str, origin: str, session: requests.Session | None = None) -> None:
    """Check a Bokeh server app at ``app_url`` (prefix + app name, no trailing /).

    ``origin`` is the Origin the browser would send (``http://host:port`` of the
    iframe document); it must be one the server allows."""
    parts = urlsplit(app_url)
    path = parts.path.rstrip("/")
    page = _get(app_url, session).text
    prefix = path.rsplit("/", 1)[0] + "/"
    scripts = re.findall(r'src="([^"]*/static/js/bokeh[^"]*\.js[^"]*)"', page)
    assert scripts and all(s.startswith(prefix) for s in scripts), (
        f"scripts not under {prefix}: {scripts[:3]}"
    )
    _get(urljoin(app_url, scripts[0]), session)

    query = urlencode(
        {
            "bokeh-autoload-element": "x",
            "bokeh-app-path": path,
            "bokeh-absolute-url": f"{parts.scheme}://{parts.netloc}{path}",
        }
    )
    autoload = _get(f"{parts.scheme}://{parts.netloc}{path}/autoload.js?{query}", session)
    assert "javascript" in autoload.headers.get("Content-Type", ""), autoload.headers
    assert "bokeh" in autoload.text.lower(), "autoload.js does not look like Bokeh's"

    first = bokeh_ws_first_message(app_url, origin, session)
    assert first is not None, "the websocket closed without a message"
    header = json.loads(first)
    assert header.get("msgtype") == "ACK", f"first websocket message is not an ACK: {first!r}"


def check_bokeh_origin_refused(app_url: str, origin: str, session: requests.Session | None = None) -> None:
    """The websocket handshake with ``Origin: origin`` must be refused (HTTP 403)."""
    try:
        message = bokeh_ws_first_message(app_url, origin, session)
    except HTTPClientError as exc:
        assert exc.code == 403, f"expected HTTP 403 for Origin {origin}, got {exc.code}"
        return
    raise AssertionError(f"websocket with Origin {origin} was accepted (first frame {message!r})")
