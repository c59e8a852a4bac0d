"""The security headers on every answer of Dormouse's (issue 8): a CSP that
allows our own static files only and frames from the apps' host only, framing
by Dormouse's own pages (or an app's embed allow-list), nosniff, same-origin
referrers, HSTS over HTTPS, noindex on viz pages; none of it on the gate's
answers to Traefik."""

from __future__ import annotations

import re

import pytest

from app import create_app, lifecycle, tokens
from app.config import REPO_ROOT
from app.extensions import db
from app.security import content_security_policy
from app.views.gate import TOKEN_PARAM
from tests.factories import make_app, make_settings

HX = {"HX-Request": "true"}
VIZ_ORIGIN = "http://viz.dormouse.localhost:8000"  # the test settings' VIZ_HOST and port
COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Strict-Transport-Security",
    "X-Robots-Tag",
)


def policy(response) -> dict[str, list[str]]:
    """The response's CSP as {directive: [sources]}."""
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no CSP on {response.request.path}"
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} twice"
        directives[name] = sources
    return directives


def assert_dormouse_headers(response, ancestors: tuple[str, ...] = ()) -> None:
    csp = policy(response)
    assert csp == {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": [VIZ_ORIGIN],
        "frame-ancestors": ["'self'", *ancestors],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, name
    assert response.headers.get("X-Frame-Options") == (None if ancestors else "SAMEORIGIN")
    assert "Strict-Transport-Security" not in response.headers  # plain http


@pytest.mark.parametrize(
    "method, path, headers, status",
    [
        ("get", "/", {}, 200),
        ("get", "/login", {}, 200),
        ("get", "/publish", {}, 302),  # to the login page
        ("get", "/alice/wave/", {}, 200),
        ("get", "/alice/wave/viz/", {}, 200),
        ("get", "/alice/wave/viz/status", HX, 286),  # nothing running: no poll
        ("get", "/alice/wave/viz/status", {"Accept": "application/json"}, 200),
        ("post", "/alice/wave/viz/start", HX, 200),
        ("get", "/robots.txt", {}, 200),
        ("get", "/static/css/dormouse.css", {}, 200),
        ("get", "/static/js/viz.js", {}, 200),
        ("get", "/static/vendor/htmx-2.0.11.min.js", {}, 200),
        ("get", "/nobody/nothing/", {}, 404),
        ("get", "/nobody/nothing/viz/status", HX, 404),
        ("get", "/", {"Host": "evil.example.org"}, 400),  # not a trusted host
        ("post", "/login", {}, 400),  # no CSRF token
    ],
)
def test_every_answer_carries_the_headers(client, wave, fake_backend, method, path, headers, status):
    kwargs = {"csrf": False} if (method, path) == ("post", "/login") else {}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert response.status_code == status
    assert_dormouse_headers(response)


def test_the_csp_frames_only_the_apps_host_and_runs_no_inline_code(client, wave):
    csp = policy(client.get("/alice/wave/viz/"))
    assert csp["frame-src"] == [VIZ_ORIGIN]
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & {s for v in csp.values() for s in v}
    assert content_security_policy("https://viz.example.org").count("frame-src https://viz.example.org;") == 1


def test_pages_need_no_inline_code():
    """What the CSP refuses is not in any template: no inline script or
    style, no style attributes, no event handler attributes."""
    for template in (REPO_ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=|\shx-on|javascript:", text, re.I), template


def test_the_viz_page_keeps_htmx_within_the_csp(client, wave):
    page = client.get("/alice/wave/viz/").get_data(as_text=True)
    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page)
    assert config, "no htmx-config"
    assert '"includeIndicatorStyles": false' in config.group(1)  # else htmx adds an inline <style>
    assert '"allowEval": false' in config.group(1)
    css = (REPO_ROOT / "static/css/dormouse.css").read_text()
    assert ".htmx-request .htmx-indicator" in css  # the indicator still works


def test_viz_pages_and_only_they_are_noindex(client, wave, fake_backend):
    for path, headers, method in (
        ("/alice/wave/viz/", {}, "get"),
        ("/alice/wave/viz/status", HX, "get"),
        ("/alice/wave/viz/start", HX, "post"),
        ("/alice/wave/viz/ping", {"Accept": "application/json"}, "post"),
    ):
        response = getattr(client, method)(path, headers=headers)
        assert response.headers.get("X-Robots-Tag") == "noindex, nofollow", path
    for path in ("/", "/alice/wave/", "/login", "/robots.txt"):
        assert "X-Robots-Tag" not in client.get(path).headers, path


def test_hsts_over_https_only(client):
    https = client.get("/", environ_overrides={"wsgi.url_scheme": "https"})
    assert https.headers.get("Strict-Transport-Security") == "max-age=31536000"  # no includeSubDomains
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_hsts_always_when_cookies_are_secure_only(tmp_path):
    """Secure-only cookies mean an HTTPS-only site, whether or not gunicorn
    trusts the proxy that says so (browsers ignore HSTS over plain HTTP)."""
    app = create_app(settings=make_settings(tmp_path, SESSION_COOKIE_SECURE="1"))
    response = app.test_client().get("/robots.txt")
    assert response.headers.get("Strict-Transport-Security") == "max-age=31536000"
    with app.app_context():
        db.engine.dispose()


def test_the_gate_answers_skip_the_headers(app, fake_backend, wave):
    """Traefik reads only the gate's status (and its cookie): none of the
    header work runs on its hot path."""
    dep = lifecycle.ensure_deployment(wave)
    fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, force=True)
    gate = app.test_client(use_cookies=False)
    entry = tokens.issue(app.config["DORMOUSE"].jwt_keys, public_name=dep.public_name, subject="anonymous",
                         kind=tokens.ENTRY, ttl=60)  # fmt: skip
    answers = [
        gate.get("/_auth/viz", headers={"X-Forwarded-Uri": uri})
        for uri in (dep.prefix, f"{dep.prefix}?{TOKEN_PARAM}={entry}")
    ]
    assert [a.status_code for a in answers] == [401, 200]
    for answer in answers:
        assert not set(SECURITY_HEADERS) & set(answer.headers.keys()), answer.headers


def test_a_stray_request_on_the_apps_host_may_show_in_dormouses_frame(client):
    """A stopped app's iframe reaches Dormouse on VIZ_HOST: the plain 404 it
    gets must not be refused by the frame it is shown in."""
    response = client.get("/alice/wave/default-abc234/", headers={"Host": "viz.dormouse.localhost:8000"})
    assert response.status_code == 404
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    assert "X-Frame-Options" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_an_apps_embed_list_lets_those_sites_frame_its_viz_page_only(client, alice, wave, fake_backend):
    make_app(alice, "embedded", embed_origins="https://blog.example.org\nhttp://localhost:8080")
    allowed = client.get("/alice/embedded/viz/")
    assert allowed.status_code == 200
    assert_dormouse_headers(allowed, ancestors=("https://blog.example.org", "http://localhost:8080"))
    # its other answers, and every other app's viz page, stay Dormouse's own
    for response in (
        client.get("/alice/embedded/"),
        client.get("/alice/embedded/viz/status", headers=HX),
        client.get("/alice/wave/viz/"),
        client.get("/"),
    ):
        assert_dormouse_headers(response)


def test_only_origins_reach_the_header_whatever_is_stored(client, alice):
    """Publishing refuses anything but origins; a row changed behind its back
    still cannot add a directive or a wildcard to the CSP."""
    app = make_app(alice, "edited")
    app.embed_origins = ["https://ok.example.org", "https://x.org; script-src *", "*", "'unsafe-inline'", 7]
    db.session.commit()
    assert_dormouse_headers(client.get("/alice/edited/viz/"), ancestors=("https://ok.example.org",))
