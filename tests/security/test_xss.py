"""Script injection (issue 8): XSS payloads in every field a person types,
through the publish form, the CLI, the login form and the app's own crash
output, then every page that shows them: the gallery, the app's page, the viz
page, the publish form's errors, the status partial.

Run in this process with the scripted backend: what a page renders is what
is asserted, and that is the same in the served product (its templates and
Jinja's autoescaping). Expected everywhere: the text is shown as text, never
as markup; ``{{7*7}}`` is shown, not evaluated; no ``javascript:`` URL is
ever put in a link.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from markupsafe import escape

from app.extensions import db
from app.models import Deployment, User, VizApp
from tests.security.helpers import HX, JSON, Site

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
SINGLE = "'><svg onload=alert(1)>"
URL = "javascript:alert(1)"
TEMPLATE = "{{7*7}}"
STATEMENT = "{% print(7*7) %}"
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "srcdoc", "data", "hx-get", "hx-post"})
MARKUP = (SCRIPT, ATTRIBUTE, SINGLE)  # markup if they appear as they are
PAYLOADS = (*MARKUP, URL, TEMPLATE, STATEMENT)
ALL = " ".join(PAYLOADS)


class _Markup(HTMLParser):
    """What a browser would run in a page: event-handler attributes, inline
    scripts, ``javascript:`` URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in URL_ATTRIBUTES and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"inline script {data.strip()[:60]!r}")


def assert_inert(page: str, where: str) -> None:
    """No payload as markup: no event handler, inline script or javascript:
    URL anywhere in the page (Dormouse's own pages have none: the CSP forbids
    them), and no payload in the page as it was typed."""
    for payload in MARKUP:
        assert payload not in page, f"{where}: {payload!r} rendered as markup"
    parser = _Markup()
    parser.feed(page)
    parser.close()
    assert parser.found == [], f"{where}: {parser.found}"


def assert_shown_as_text(page: str, where: str) -> None:
    """The payloads are on the page, escaped: a person reads exactly what was typed."""
    assert_inert(page, where)
    for payload in PAYLOADS:
        assert str(escape(payload)) in page, f"{where}: {payload!r} is not shown (escaped) at all"
    assert TEMPLATE in page and STATEMENT in page, f"{where}: a template expression was evaluated"


def pages_of(site: Site, path: str, viewer: str | None = None) -> dict[str, str]:
    client = site.client(viewer)
    got = {
        "gallery": client.get("/"),
        "app page": client.get(f"{path}"),
        "viz page": client.get(f"{path}viz/"),
        "status partial": client.get(f"{path}viz/status", headers=HX),
    }
    for where, answer in got.items():
        assert answer.status_code in (200, 286), (where, answer.status_code)
    return {where: answer.get_data(as_text=True) for where, answer in got.items()}


def test_payloads_in_what_a_publisher_may_type_are_shown_as_text(site: Site) -> None:
    """Attack: a publisher puts script payloads in every text field the form
    accepts (description, command with an image, environment values) and
    publishes. Expected: published; the gallery, app page, viz page and status
    partial show the description as text to everyone."""
    alice = site.client("alice")
    form = {"title": "xss", "framework": "dash", "description": ALL, "source": "dash-wave/app.py:server",
            "image": "ghcr.io/alice/xss:1.0", "command": f"python serve.py --title {SCRIPT!r}",
            "env": f"GREETING={ATTRIBUTE}\nSTYLE={SCRIPT}", "cpu": "500m", "memory": "512Mi",
            "is_public": "y"}  # fmt: skip
    answer = alice.post("/publish", data=form)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:2000]
    for viewer in (None, "bob", "alice"):
        for where, page in pages_of(site, "/alice/xss/", viewer).items():
            if where in ("gallery", "app page"):
                assert_shown_as_text(page, f"{where} for {viewer}")
            else:
                assert_inert(page, f"{where} for {viewer}")


def test_payloads_published_from_the_command_line_are_shown_as_text(site: Site) -> None:
    """Attack: the same payloads through ``flask apps publish --description``.
    Expected: published, shown as text."""
    runner = site.app.test_cli_runner()
    args = ["apps", "publish", "--owner", "bob", "--title", "cli-xss", "--framework", "dash", "--source",
            "dash-wave/app.py:server", "--description", ALL, "--env", f"GREETING={SCRIPT}"]  # fmt: skip
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    for where, page in pages_of(site, "/bob/cli-xss/").items():
        (assert_shown_as_text if where in ("gallery", "app page") else assert_inert)(page, where)


def test_payloads_in_refused_fields_are_echoed_as_text(site: Site) -> None:
    """Attack: payloads in every field, refused ones included, so that the
    publish form echoes them: first in every field (the form's own checks
    refuse it), then in the fields whose refusals quote what was typed
    (title, source, image, command, environment names, embed origins).
    Expected: 400, the refusals named, nothing saved, nothing echoed as markup."""
    alice = site.client("alice")
    fields = ("title", "description", "source", "image", "command", "port", "cpu", "memory", "embed_origins",
              "monthly_budget")  # fmt: skip
    for payload in PAYLOADS:
        everywhere = dict.fromkeys(fields, payload)
        everywhere.update(framework="dash", env=f"{payload}={payload}\n{payload}")
        quoted = {"title": payload, "framework": "dash", "source": f"{payload}.py:server", "image": payload,
                  "command": payload, "cpu": "500m", "memory": "512Mi", "env": f"{payload}=1",
                  "embed_origins": payload}  # fmt: skip
        for form, errors in ((everywhere, 1), (quoted, 4)):
            answer = alice.post("/publish", data=form)
            page = answer.get_data(as_text=True)
            assert answer.status_code == 400, (payload, answer.status_code)
            assert page.count('class="error"') >= errors, f"the refusals are not named for {payload!r}"
            assert_inert(page, f"the publish form's errors for {payload!r}")
    assert site.titles() == {"wave"}


def test_payloads_at_login_and_signup_are_refused_and_not_echoed(site: Site) -> None:
    """Attack: a payload as the user name at login (the form is shown again
    with it), as ``?next=``, and as a new account's name on the command line.
    Expected: the login form echoes it as text; ``next`` never leads to a
    ``javascript:`` URL; the account is refused (the name grammar), nothing made."""
    client = site.client()
    for payload in PAYLOADS:
        answer = client.post("/login", data={"username": payload, "password": "whatever-123"})
        assert answer.status_code == 400
        assert_inert(answer.get_data(as_text=True), f"the login form for {payload!r}")
    answer = client.post(f"/login?next={URL}", data={"username": "alice", "password": "correct-horse"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/", answer.headers.get("Location")
    runner = site.app.test_cli_runner()
    for payload in PAYLOADS:
        result = runner.invoke(args=["users", "create", payload, "--password-stdin"], input="correct-horse\n")
        assert result.exit_code == 1 and "not allowed" in result.output, result.output
    with site.ctx():
        assert sorted(db.session.scalars(db.select(User.username))) == ["alice", "bob"]


@pytest.mark.parametrize("state", ["failed", "starting"])
def test_an_apps_own_output_is_shown_as_text_in_the_status_partial(site: Site, state: str) -> None:
    """Attack: an app prints payloads while it starts or as it crashes (its
    log tail becomes the failure reason its owner reads; a backend's phase is
    shown to every viewer). Expected: the status partial shows them as text,
    the JSON status is JSON (never rendered as HTML)."""
    owner = site.client("alice")
    assert owner.post("/alice/wave/viz/start", headers=HX).status_code == 200
    ref = site.backend.only_ref()
    with site.ctx():  # the backend is read at most once a second: let the next poll read it
        db.session.execute(db.update(Deployment).values(status_checked_at=None))
        db.session.commit()
    if state == "failed":
        site.backend.set(ref, "failed", reason=f"Traceback:\n  {ALL}\nRuntimeError: {SCRIPT}")
    else:
        site.backend.set(ref, "starting", phase=ALL)
    for viewer in ("alice", "bob", None):
        client = owner if viewer == "alice" else site.client(viewer)
        partial = client.get("/alice/wave/viz/status", headers=HX).get_data(as_text=True)
        assert f'data-status="{state}"' in partial
        if viewer == "alice" or state == "starting":
            assert_shown_as_text(partial, f"the {state} partial for {viewer}")
        else:
            assert_inert(partial, f"the {state} partial for {viewer}")
        data = client.get("/alice/wave/viz/status", headers=JSON)
        assert data.mimetype == "application/json" and data.headers["X-Content-Type-Options"] == "nosniff"


def test_payloads_in_the_address_are_not_echoed(site: Site) -> None:
    """Attack: payloads in the URL's path and query (a link sent to a
    victim), reflected by a 404 page or a redirect. Expected: nothing echoed
    as markup."""
    client = site.client()
    for payload in MARKUP:
        for url in (f"/{payload}/x/", f"/alice/{payload}/viz/",
                    f"/alice/wave/viz/status?deployment={payload}", f"/login?next={payload}"):  # fmt: skip
            answer = client.get(url, headers=HX if "status" in url else {})
            assert answer.status_code in (200, 286, 404), (url, answer.status_code)
            assert_inert(answer.get_data(as_text=True), url)
    with site.ctx():
        assert db.session.scalar(db.select(db.func.count(VizApp.id))) == 1
