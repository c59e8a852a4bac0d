"""The visitor's Host header and the login page's ``?next=``: what a visitor
sends that ends up in a URL the site hands back.

* Dormouse answers only on ``TRUSTED_HOSTS``: any other Host is 400, a header
  that is no host at all too, before any view runs; the iframe URL comes from
  configuration (``VIZ_HOST``), never from the visitor's Host; on the apps'
  host Dormouse shows none of its pages.
* A failed login says the same words for an unknown user and a wrong password.
* ``?next=`` after login only leads to a path on this site, however a browser
  would read the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from app.backends.local import LocalBackend
from app.extensions import db
from app.models import Deployment, utcnow
from tests.factories import EXAMPLES
from tests.sites import HX, JSON, PASSWORD, Site, make_site, session_user, to_login, who


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with make_site(tmp_path) as made:
        yield made


# ------------------------------------------------------------------------ Host
PORT, PATH = 8123, "/alice/wave/default-abc234/"


@pytest.fixture
def running_local(site: Site, tmp_path: Path) -> Site:
    """The public app with a running deployment, served by the real LocalBackend's
    url() from a stored ref (no process: a running row never asks the backend)."""
    site.app.extensions["dormouse.backend"] = LocalBackend(EXAMPLES, tmp_path / "run")
    ref = json.dumps(
        {
            "v": 1,
            "name": "alice-wave-default-abc234",
            "fw": "dash",
            "pid": 999999,
            "start": 1,
            "port": PORT,
            "path": PATH,
        }
    )
    with site.ctx():
        now = utcnow()
        db.session.add(
            Deployment(
                app=site.viz_app("wave"),
                name="default",
                public_name="default-abc234",
                status="running",
                backend="local",
                backend_ref=ref,
                created_at=now,
                ready_at=now,
            )
        )
        db.session.commit()
    return site


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "[::1]:8000", "dormouse.localhost:8000", "localhost"])
def test_the_iframe_url_comes_from_configuration(running_local: Site, host: str) -> None:
    client = running_local.client()
    data = client.get("/alice/wave/viz/status", headers={**JSON, "Host": host}).get_json()
    assert data["status"] == "running" and data["url"] == f"http://viz.dormouse.localhost:8000{PATH}"
    partial = client.get("/alice/wave/viz/status", headers={**HX, "Host": host}).get_data(as_text=True)
    src = re.search(r'<iframe class="viz-frame" src="([^"]+)"', partial)
    assert src and src.group(1).startswith(f"http://viz.dormouse.localhost:8000{PATH}?dormouse_token=")


# Host values that are no host Dormouse is configured for, however well formed.
BAD_HOSTS = ["example.org", "evil.com:8000", "-evil.org", "evil-.org", ".evil.org", "a..b", "..",
             "evil..org:80", "a" * 300, "dormouse.localhost.evil.com"]  # fmt: skip


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_an_untrusted_host_is_400(running_local: Site, host: str) -> None:
    client = running_local.client()
    response = client.get("/alice/wave/viz/status", headers={**JSON, "Host": host})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "could not be understood" in response.get_data(as_text=True)
    for path in ("/", "/login"):
        assert client.get(path, headers={"Host": host}).status_code == 400
    if host in ("example.org", "evil.com:8000", "dormouse.localhost.evil.com"):
        # Machines that ask by any (well-formed) name: Traefik's forwardAuth, health probes.
        assert client.get("/healthz", headers={"Host": host}).status_code == 200
        assert client.get("/_auth/viz", headers={"Host": host}).status_code == 401


def test_the_apps_host_shows_no_page_of_dormouse(running_local: Site) -> None:
    client = running_local.client()
    for path in ("/", "/login", "/alice/wave/viz/", PATH):
        response = client.get(path, headers={"Host": "viz.dormouse.localhost:8000"})
        assert response.status_code == 404 and response.mimetype == "text/plain", path
        assert "Set-Cookie" not in response.headers and "<" not in response.get_data(as_text=True)


# Host values with characters no host has: Werkzeug reads them as an empty
# host, and every route answers 400 before any view runs (app/security.py);
# the garbage is never reflected.
GARBAGE_HOSTS = ["evil host", "exa mple.org:80", 'x"onload=1', "evil.com/x", "a_b.org", "[::1", "<script>"]


@pytest.mark.parametrize("host", GARBAGE_HOSTS)
def test_a_garbage_host_is_400_everywhere_and_never_reflected(running_local: Site, host: str) -> None:
    client = running_local.client()
    for path in ("/", "/alice/wave/viz/status", "/login", "/healthz", "/_auth/viz"):
        for headers in (JSON, HX):
            response = client.get(path, headers={**headers, "Host": host})
            assert response.status_code == 400, (path, response.status_code)
            body = response.get_data(as_text=True)
            assert host not in body and host.replace('"', "&#34;") not in body


# ------------------------------------------------------------------------ login
@pytest.mark.parametrize("username, password", [("alice", "wrong-horse"), ("nobody", PASSWORD)])
def test_a_failed_login_is_400_with_a_message_and_no_session(
    site: Site, username: str, password: str
) -> None:
    client = site.client()
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 400
    # the same words for an unknown user and a wrong password
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert session_user(client) is None and who(client) is None
    to_login(client.get("/publish"), "/publish")


def browser_host(location: str) -> str:
    """The host a browser on http://dormouse.test/login goes to for this
    Location (WHATWG URL parsing: surrounding C0 controls and spaces trimmed,
    tabs and newlines removed, a backslash is a slash in http(s) URLs)."""
    cleaned = re.sub(r"[\t\n\r]", "", location.strip("".join(map(chr, range(0x21)))))
    return urlsplit(urljoin("http://dormouse.test/login", cleaned.replace("\\", "/"))).netloc


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/publish", "/publish"),
        ("/alice/wave/?tab=1", "/alice/wave/?tab=1"),
        ("//evil.com", "/"),
        ("///evil.com", "/"),
        ("https://evil.com", "/"),
        ("http:evil.com", "/"),
        ("javascript:alert(1)", "/"),
        ("\\\\evil.com", "/"),
        ("/\t/evil.com", "/"),
        ("/\\evil.com", "/"),  # a browser reads "\\" as "/"
        ("/\\/evil.com", "/"),
        ("evil.com", "/"),
    ],
)
def test_next_goes_only_to_same_site_paths(site: Site, target: str, expected: str | None) -> None:
    client = site.client()
    response = client.post(
        "/login", query_string={"next": target}, data={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert browser_host(location) == "dormouse.test", location
    if expected is not None:
        assert location == expected
    # a visitor who is already logged in is sent on by the same rule
    again = client.get("/login", query_string={"next": target})
    assert again.status_code == 302 and browser_host(again.headers["Location"]) == "dormouse.test"
    if expected is not None:
        assert again.headers["Location"] == expected
