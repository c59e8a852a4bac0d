"""Who may do what, over every route and form, and CSRF on every POST.

The matrix: viewers (anonymous, another user, the owner, an admin) x every
route, for a public and a private app. A private app is 404 - not 403, its
existence is not revealed - to anyone but its owner and admins, on its page
and on every viz endpoint, and answers exactly what a missing app answers.
The route tables below are checked against ``app.url_map``: a new route (or a
new method on one) without a row here fails ``test_the_matrix_covers_every_route``.

Every POST without the CSRF token (or with another session's token) is
refused with 400 and changes nothing; with the token it works.

The backend is the scripted FakeBackend, so no process starts. The site
(tests/sites.py) opens a short app context only for the test's own database
work, so each request runs in its own, as in a real server. The Host header
and ``?next=`` are in tests/test_hosts_and_redirects.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app.auth import get_user
from app.extensions import db
from app.models import User, VizApp
from tests.factories import CSRFClient, login
from tests.sites import HX, JSON, PASSWORD, USERNAMES, Site, make_site, session_user, to_login, who

VIEWERS = ("anonymous", "other", "owner", "admin")
APPS = {"public": "wave", "private": "secret"}
EXPIRED = "session has expired"  # the CSRF refusal's message
NOTHING_HERE = {"error": "There is nothing here.", "status": 404}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with make_site(tmp_path) as made:
        yield made


def visible(viewer: str, visibility: str) -> bool:
    return visibility == "public" or viewer in ("owner", "admin")


def assert_hidden(client: CSRFClient, method: str, path: str, title: str, **kwargs) -> None:
    """404, and the very answer an app that does not exist gets."""
    call = client.post if method == "POST" else client.get
    response = call(f"/alice/{title}{path}", headers=JSON, **kwargs)
    missing = call(f"/alice/no-such-app{path}", headers=JSON, **kwargs)
    assert response.status_code == 404, (path, response.status_code)  # never 403
    assert response.get_json() == missing.get_json() == NOTHING_HERE, path
    # and as an HTMX partial, word for word
    response = call(f"/alice/{title}{path}", headers=HX, **kwargs)
    missing = call(f"/alice/no-such-app{path}", headers=HX, **kwargs)
    assert response.status_code == missing.status_code == 404, path
    assert response.get_data() == missing.get_data(), path


# ------------------------------------------------------ the app routes (x public/private)
AppCheck = Callable[[Site, CSRFClient, str, bool], None]


def check_app_page(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    if not shown:
        return assert_hidden(client, "GET", "/", title)
    response = client.get(f"/alice/{title}/")
    assert response.status_code == 200
    assert f"/alice/{title}/viz/" in response.get_data(as_text=True)


def check_viz_page(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    before = len(site.deployments(title)), site.backend.calls["create"]
    if not shown:
        assert_hidden(client, "GET", "/viz/", title)
    else:
        response = client.get(f"/alice/{title}/viz/")
        assert response.status_code == 200
        assert f'hx-post="/alice/{title}/viz/start"' in response.get_data(as_text=True)
    assert (len(site.deployments(title)), site.backend.calls["create"]) == before  # starts nothing


def check_start(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    before = site.backend.calls["create"]
    if not shown:
        assert_hidden(client, "POST", "/viz/start", title)
        assert site.deployments(title) == [] and site.backend.calls["create"] == before
        return
    response = client.post(f"/alice/{title}/viz/start", headers=HX)
    assert response.status_code == 200
    assert 'data-status="starting"' in response.get_data(as_text=True)
    (dep,) = site.deployments(title)
    assert dep.status == "starting" and dep.latest_load_at is not None
    assert site.backend.calls["create"] == before + 1


def check_status(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    public_name = site.ensure_deployment(title)
    if not shown:
        assert_hidden(client, "GET", "/viz/status", title)
        assert_hidden(client, "GET", f"/viz/status?deployment={public_name}", title)
        return
    data = client.get(f"/alice/{title}/viz/status?deployment={public_name}", headers=JSON).get_json()
    assert data["status"] == "starting" and data["public_name"] == public_name


def check_ping(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    public_name = site.ensure_deployment(title)
    form = {"deployment": public_name}
    if not shown:
        assert_hidden(client, "POST", "/viz/ping", title, data=form)
        (dep,) = site.deployments(title)
        assert dep.latest_ping_at is None  # the ping was not recorded
        return
    response = client.post(f"/alice/{title}/viz/ping", data=form, headers=JSON)
    assert response.status_code == 200 and response.get_json()["status"] == "starting"
    (dep,) = site.deployments(title)
    assert dep.latest_ping_at is not None


def manages(client: CSRFClient) -> bool:
    """The viewer is the apps' owner or an admin (the logs are theirs only)."""
    return who(client) in (USERNAMES["owner"], USERNAMES["admin"])


def check_logs_page(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    public_name = site.ensure_deployment(title)
    (ref,) = [ref for ref, spec in site.backend.specs.items() if spec.public_name == public_name]
    site.backend.outputs[ref] = "app output\n"
    if not (shown and manages(client)):  # even a public app's log is its owner's and admins'
        assert_hidden(client, "GET", "/logs", title)
        assert_hidden(client, "GET", f"/logs?deployment={public_name}", title)
        return
    response = client.get(f"/alice/{title}/logs?deployment={public_name}")
    assert response.status_code == 200 and "app output" in response.get_data(as_text=True)


def check_logs_download(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    public_name = site.ensure_deployment(title)
    (ref,) = [ref for ref, spec in site.backend.specs.items() if spec.public_name == public_name]
    site.backend.outputs[ref] = "app output\n"
    if not (shown and manages(client)):
        assert_hidden(client, "GET", "/logs.txt", title)
        assert_hidden(client, "GET", f"/logs.txt?deployment={public_name}", title)
        return
    response = client.get(f"/alice/{title}/logs.txt")
    assert response.status_code == 200 and response.get_data(as_text=True) == "app output\n"
    assert response.headers["Content-Disposition"].startswith("attachment;")


def app_row(site: Site, title: str) -> dict[str, object]:
    with site.ctx():
        row = site.viz_app(title)
        return {"description": row.description, "is_public": row.is_public, "deleted_at": row.deleted_at}


def live(site: Site, title: str) -> list[str]:
    return [d.public_name for d in site.deployments(title) if d.is_live]


def check_owner_page(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    """/alice/ lists the app to whoever may see it; the buttons are the owner's and admins'."""
    response = client.get("/alice/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert (f'data-app="{title}"' in html) == shown
    assert (f"/alice/{title}/edit" in html) == (shown and manages(client))
    assert client.get("/nobody/").status_code == 404


def check_edit_form(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    if not (shown and manages(client)):
        return assert_hidden(client, "GET", "/edit", title)
    response = client.get(f"/alice/{title}/edit")
    assert response.status_code == 200 and 'name="description"' in response.get_data(as_text=True)


def check_edit_post(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    before = app_row(site, title)
    form = {"description": "Edited.", "source": "dash-wave/app.py:server", "cpu": "500m", "memory": "512Mi"}
    if before["is_public"]:
        form["is_public"] = "y"
    if not (shown and manages(client)):
        assert_hidden(client, "POST", "/edit", title, data=form)
        assert app_row(site, title) == before
        return
    response = client.post(f"/alice/{title}/edit", data=form)
    assert response.status_code == 302 and response.headers["Location"] == "/alice/"
    assert app_row(site, title) == {**before, "description": "Edited."}


def check_stop(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    public_name = site.ensure_deployment(title)
    if not (shown and manages(client)):
        assert_hidden(client, "POST", "/stop", title)
        assert live(site, title) == [public_name]
        return
    response = client.post(f"/alice/{title}/stop")
    assert response.status_code == 302 and live(site, title) == []
    (dep,) = [d for d in site.deployments(title) if d.public_name == public_name]
    assert dep.stop_reason == ("owner" if who(client) == "alice" else "admin")


def check_restart(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    public_name = site.ensure_deployment(title)
    if not (shown and manages(client)):
        assert_hidden(client, "POST", "/restart", title)
        assert live(site, title) == [public_name]
        return
    response = client.post(f"/alice/{title}/restart")
    assert response.status_code == 302
    (now_live,) = live(site, title)
    assert now_live != public_name  # a new deployment; the old one stopped


def check_unpublish(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    before = app_row(site, title)
    if not (shown and manages(client)):
        assert_hidden(client, "POST", "/unpublish", title)
        assert app_row(site, title) == before
        return
    assert client.post(f"/alice/{title}/unpublish").status_code == 302
    assert app_row(site, title)["is_public"] is False


def check_delete(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    site.ensure_deployment(title)
    history = len(site.deployments(title))
    if not (shown and manages(client)):
        assert_hidden(client, "POST", "/delete", title)
        assert app_row(site, title)["deleted_at"] is None and live(site, title)
        return
    assert client.post(f"/alice/{title}/delete").status_code == 302
    assert app_row(site, title)["deleted_at"] is not None
    assert live(site, title) == [] and len(site.deployments(title)) == history  # history kept
    assert_hidden(client, "GET", "/", title)  # gone, even for its owner


APP_CHECKS: dict[tuple[str, str], AppCheck] = {
    ("gallery.app_page", "GET"): check_app_page,
    ("viz.page", "GET"): check_viz_page,
    ("viz.start", "POST"): check_start,
    ("viz.status", "GET"): check_status,
    ("viz.ping", "POST"): check_ping,
    ("logs.page", "GET"): check_logs_page,
    ("logs.download", "GET"): check_logs_download,
    ("owner.page", "GET"): check_owner_page,
    ("owner.edit_app", "GET"): check_edit_form,
    ("owner.edit_app", "POST"): check_edit_post,
    ("owner.stop", "POST"): check_stop,
    ("owner.restart", "POST"): check_restart,
    ("owner.unpublish", "POST"): check_unpublish,
    ("owner.delete", "POST"): check_delete,  # last: the app is gone afterwards
}


@pytest.mark.parametrize("visibility", APPS)
@pytest.mark.parametrize("viewer", VIEWERS)
def test_app_routes(site: Site, viewer: str, visibility: str) -> None:
    title, shown = APPS[visibility], visible(viewer, visibility)
    for (endpoint, method), check in APP_CHECKS.items():
        client = site.client(viewer)
        try:
            check(site, client, title, shown)
        except AssertionError as exc:
            raise AssertionError(f"{method} {endpoint} as {viewer} on the {visibility} app: {exc}") from exc


# ---------------------------------------------------------------- the site routes
SiteCheck = Callable[[Site, CSRFClient, str], None]
NEW_APP = {
    "title": "fresh-plot",
    "framework": "dash",
    "source": "dash-wave/app.py:server",
    "cpu": "250m",
    "memory": "256Mi",
    "is_public": "y",
}


def check_gallery(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "/alice/wave/" in html
    assert ("/alice/secret/" in html) == visible(viewer, "private")


def check_robots(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.get("/robots.txt")
    assert response.status_code == 200 and "Disallow: /*/*/viz/" in response.get_data(as_text=True)
    assert "secret" not in response.get_data(as_text=True)


def check_healthz(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["database"] == "ok"


def check_gate(site: Site, client: CSRFClient, viewer: str) -> None:
    """The front door's forwardAuth check: being logged in to Dormouse opens
    no app; only a token does (tests/test_gate.py)."""
    public_name = site.ensure_deployment("wave")
    response = client.get("/_auth/viz", headers={"X-Forwarded-Uri": f"/alice/wave/{public_name}/"})
    assert response.status_code == 401


def check_metrics(site: Site, client: CSRFClient, viewer: str) -> None:
    """Prometheus metrics answer a bearer token only (tests/test_metrics.py);
    with none configured, as here, there is no such page, for admins too."""
    assert client.get("/metrics").status_code == 404


def check_login_page(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.get("/login")
    if viewer == "anonymous":
        assert response.status_code == 200 and 'name="password"' in response.get_data(as_text=True)
    else:  # already logged in: off to the gallery
        assert response.status_code == 302 and response.headers["Location"] == "/"


def check_login_post(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    # the anonymous visitor is now alice; a logged-in user stays who they were
    assert who(client) == (USERNAMES.get(viewer) or "alice")


def check_logout(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.post("/logout")
    if viewer == "anonymous":  # it needs a login
        to_login(response, "/logout")
    else:
        assert response.status_code == 302 and response.headers["Location"] == "/"
    assert who(client) is None and session_user(client) is None


def check_publish_form(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.get("/publish")
    if viewer == "anonymous":
        return to_login(response, "/publish")
    assert response.status_code == 200 and 'name="title"' in response.get_data(as_text=True)


def check_publish_post(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.post("/publish", data=NEW_APP)
    if viewer == "anonymous":
        to_login(response, "/publish")
        assert "fresh-plot" not in site.app_titles()
        return
    username = USERNAMES[viewer]
    assert response.status_code == 302 and response.headers["Location"] == f"/{username}/fresh-plot/"
    with site.ctx():
        published = db.session.scalar(select(VizApp).join(User).where(VizApp.title == "fresh-plot"))
        assert published.owner.username == username  # published as the viewer, nobody else


def admin_only(client: CSRFClient, viewer: str, method: str, path: str, **kwargs) -> bool:
    """Whether the viewer is an admin; if not, asserts the route is 404 (not a
    login redirect, not 403: the dashboard's existence is not told)."""
    call = client.post if method == "POST" else client.get
    if viewer == "admin":
        return True
    for headers in ({}, HX, JSON):
        response = call(path, headers=headers, **kwargs)
        assert response.status_code == 404, (path, response.status_code)
    return False


def check_admin_page(site: Site, client: CSRFClient, viewer: str) -> None:
    if admin_only(client, viewer, "GET", "/admin/"):
        response = client.get("/admin/")
        assert response.status_code == 200 and 'id="admin-live"' in response.get_data(as_text=True)


def check_admin_live(site: Site, client: CSRFClient, viewer: str) -> None:
    public_name = site.ensure_deployment("secret")
    if admin_only(client, viewer, "GET", "/admin/live"):
        html = client.get("/admin/live", headers=HX).get_data(as_text=True)
        assert f'id="live-{public_name}"' in html  # private apps' too


def check_admin_history(site: Site, client: CSRFClient, viewer: str) -> None:
    if admin_only(client, viewer, "GET", "/admin/history?owner=alice"):
        assert client.get("/admin/history?owner=alice").status_code == 200


def check_admin_users(site: Site, client: CSRFClient, viewer: str) -> None:
    if admin_only(client, viewer, "GET", "/admin/users"):
        assert 'id="user-bob"' in client.get("/admin/users").get_data(as_text=True)


def check_admin_stop(site: Site, client: CSRFClient, viewer: str) -> None:
    public_name = site.ensure_deployment("wave")
    path = f"/admin/deployments/{public_name}/stop"
    if admin_only(client, viewer, "POST", path):
        assert client.post(path).status_code == 302
    dep = site.deployments("wave")[-1]  # earlier checks may have stopped one
    assert dep.is_live == (viewer != "admin")


def check_admin_keep_awake(site: Site, client: CSRFClient, viewer: str) -> None:
    public_name = site.ensure_deployment("wave")
    path = f"/admin/deployments/{public_name}/keep-awake"
    if admin_only(client, viewer, "POST", path, data={"minutes": "10"}):
        assert client.post(path, data={"minutes": "10"}).status_code == 302
    dep = site.deployments("wave")[-1]  # earlier checks may have stopped one
    assert (dep.keep_awake_until is not None) == (viewer == "admin")


def check_admin_set_admin(site: Site, client: CSRFClient, viewer: str) -> None:
    if admin_only(client, viewer, "POST", "/admin/users/bob/admin", data={"admin": "1"}):
        assert client.post("/admin/users/bob/admin", data={"admin": "1"}).status_code == 302
    with site.ctx():
        assert get_user("bob").is_admin == (viewer == "admin")


def check_admin_disable(site: Site, client: CSRFClient, viewer: str) -> None:
    if admin_only(client, viewer, "POST", "/admin/users/bob/disable"):
        assert client.post("/admin/users/bob/disable").status_code == 302
    with site.ctx():
        assert get_user("bob").is_active == (viewer != "admin")


def check_account_page(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.get("/account")
    if viewer == "anonymous":
        return to_login(response, "/account")
    assert response.status_code == 200 and 'name="current"' in response.get_data(as_text=True)


def check_account_post(site: Site, client: CSRFClient, viewer: str) -> None:
    """The viewer's own password only (the same one again, so later checks log in)."""
    form = {"current": PASSWORD, "new": PASSWORD, "repeat": PASSWORD}
    response = client.post("/account", data=form)
    if viewer == "anonymous":
        return to_login(response, "/account")
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    assert who(client) == USERNAMES[viewer]  # this session goes on
    assert client.post("/account", data={**form, "current": "wrong-horse"}).status_code == 400


SITE_CHECKS: dict[tuple[str, str], SiteCheck] = {
    ("gallery.index", "GET"): check_gallery,
    ("gallery.robots", "GET"): check_robots,
    ("gallery.healthz", "GET"): check_healthz,
    ("gate.check", "GET"): check_gate,
    ("metrics.scrape", "GET"): check_metrics,
    ("auth.login", "GET"): check_login_page,
    ("auth.login", "POST"): check_login_post,
    ("auth.logout", "POST"): check_logout,
    ("publish.publish_app", "GET"): check_publish_form,
    ("publish.publish_app", "POST"): check_publish_post,
    ("admin.index", "GET"): check_admin_page,
    ("admin.live", "GET"): check_admin_live,
    ("admin.history", "GET"): check_admin_history,
    ("admin.users", "GET"): check_admin_users,
    ("admin.stop", "POST"): check_admin_stop,
    ("admin.keep_awake", "POST"): check_admin_keep_awake,
    ("admin.set_admin", "POST"): check_admin_set_admin,
    ("admin.disable", "POST"): check_admin_disable,
    ("auth.account", "GET"): check_account_page,
    ("auth.account", "POST"): check_account_post,
}


@pytest.mark.parametrize("viewer", VIEWERS)
def test_site_routes(site: Site, viewer: str) -> None:
    for (endpoint, method), check in SITE_CHECKS.items():
        client = site.client(viewer)
        try:
            check(site, client, viewer)
        except AssertionError as exc:
            raise AssertionError(f"{method} {endpoint} as {viewer}: {exc}") from exc


# ---------------------------------------------------------------------------- CSRF
def post(client: CSRFClient, url: str, token: str, foreign: str, **kwargs):
    """POST with no token, another session's token, or the client's own."""
    if token == "own":
        return client.post(url, **kwargs)
    headers = dict(kwargs.pop("headers", {}))
    if token == "foreign":
        headers["X-CSRFToken"] = foreign
    return client.post(url, headers=headers, csrf=False, **kwargs)


def refused(response) -> bool:
    return response.status_code == 400 and EXPIRED in response.get_data(as_text=True)


def csrf_start(site: Site, token: str, foreign: str) -> None:
    client = site.client("owner")
    response = post(client, "/alice/wave/viz/start", token, foreign, headers=HX)
    if token != "own":
        assert refused(response), response.status_code
        assert site.deployments("wave") == [] and site.backend.calls["create"] == 0
        return
    assert response.status_code == 200
    assert [d.status for d in site.deployments("wave")] == ["starting"]


def csrf_ping(site: Site, token: str, foreign: str) -> None:
    public_name = site.ensure_deployment("wave")
    client = site.client("anonymous")
    response = post(
        client, "/alice/wave/viz/ping", token, foreign, data={"deployment": public_name}, headers=JSON
    )
    (dep,) = site.deployments("wave")
    if token != "own":
        assert refused(response), response.status_code
        assert dep.latest_ping_at is None
        return
    assert response.status_code == 200 and dep.latest_ping_at is not None


def csrf_publish(site: Site, token: str, foreign: str) -> None:
    client = site.client("owner")
    response = post(client, "/publish", token, foreign, data=NEW_APP)
    if token != "own":
        assert refused(response), response.status_code
        assert "fresh-plot" not in site.app_titles()
        return
    assert response.status_code == 302 and "fresh-plot" in site.app_titles()


def csrf_login(site: Site, token: str, foreign: str) -> None:
    client = site.client("anonymous")
    response = post(client, "/login", token, foreign, data={"username": "alice", "password": PASSWORD})
    if token != "own":
        assert refused(response), response.status_code
        assert session_user(client) is None and who(client) is None
        return
    assert response.status_code == 302 and who(client) == "alice"


def csrf_logout(site: Site, token: str, foreign: str) -> None:
    client = site.client("owner")
    response = post(client, "/logout", token, foreign)
    if token != "own":
        assert refused(response), response.status_code
        assert who(client) == "alice" and session_user(client) is not None  # still logged in
        return
    assert response.status_code == 302 and who(client) is None


def csrf_admin_stop(site: Site, token: str, foreign: str) -> None:
    public_name = site.ensure_deployment("wave")
    response = post(site.client("admin"), f"/admin/deployments/{public_name}/stop", token, foreign)
    (dep,) = site.deployments("wave")
    if token != "own":
        assert refused(response), response.status_code
        assert dep.is_live
        return
    assert response.status_code == 302 and dep.status == "stopped"


def csrf_admin_keep_awake(site: Site, token: str, foreign: str) -> None:
    public_name = site.ensure_deployment("wave")
    path = f"/admin/deployments/{public_name}/keep-awake"
    response = post(site.client("admin"), path, token, foreign, data={"minutes": "10"})
    (dep,) = site.deployments("wave")
    if token != "own":
        assert refused(response), response.status_code
        assert dep.keep_awake_until is None
        return
    assert response.status_code == 302 and dep.keep_awake_until is not None


def csrf_admin_set_admin(site: Site, token: str, foreign: str) -> None:
    response = post(site.client("admin"), "/admin/users/bob/admin", token, foreign, data={"admin": "1"})
    with site.ctx():
        if token != "own":
            assert refused(response), response.status_code
            assert not get_user("bob").is_admin
            return
        assert response.status_code == 302 and get_user("bob").is_admin


def csrf_admin_disable(site: Site, token: str, foreign: str) -> None:
    response = post(site.client("admin"), "/admin/users/bob/disable", token, foreign)
    with site.ctx():
        if token != "own":
            assert refused(response), response.status_code
            assert get_user("bob").is_active
            return
        assert response.status_code == 302 and not get_user("bob").is_active


def csrf_owner_action(action: str) -> Callable[[Site, str, str], None]:
    """The owner's POST ``/alice/wave/<action>`` changes nothing without its token."""

    def check(site: Site, token: str, foreign: str) -> None:
        site.ensure_deployment("wave")
        before = app_row(site, "wave"), [(d.public_name, d.status) for d in site.deployments("wave")]
        data = {"description": "Edited.", "source": "dash-wave/app.py:server", "cpu": "1", "memory": "1Gi"}
        response = post(site.client("owner"), f"/alice/wave/{action}", token, foreign, data=data)
        after = app_row(site, "wave"), [(d.public_name, d.status) for d in site.deployments("wave")]
        if token != "own":
            assert refused(response), response.status_code
            assert after == before
            return
        assert response.status_code == 302 and after != before

    return check


def csrf_account(site: Site, token: str, foreign: str) -> None:
    client = site.client("owner")
    form = {"current": PASSWORD, "new": "another-horse", "repeat": "another-horse"}
    response = post(client, "/account", token, foreign, data=form)
    if token != "own":
        assert refused(response), response.status_code
        assert site.client("owner")  # the old password still logs in
        return
    assert response.status_code == 302
    assert login(site.app.test_client(), "alice", "another-horse").status_code == 302


CSRF_CASES: dict[tuple[str, str], Callable[[Site, str, str], None]] = {
    ("viz.start", "POST"): csrf_start,
    ("viz.ping", "POST"): csrf_ping,
    ("publish.publish_app", "POST"): csrf_publish,
    ("auth.login", "POST"): csrf_login,
    ("auth.logout", "POST"): csrf_logout,
    ("admin.stop", "POST"): csrf_admin_stop,
    ("admin.keep_awake", "POST"): csrf_admin_keep_awake,
    ("admin.set_admin", "POST"): csrf_admin_set_admin,
    ("admin.disable", "POST"): csrf_admin_disable,
    ("auth.account", "POST"): csrf_account,
    ("owner.edit_app", "POST"): csrf_owner_action("edit"),
    ("owner.stop", "POST"): csrf_owner_action("stop"),
    ("owner.restart", "POST"): csrf_owner_action("restart"),
    ("owner.unpublish", "POST"): csrf_owner_action("unpublish"),
    ("owner.delete", "POST"): csrf_owner_action("delete"),
}


@pytest.mark.parametrize("token", ["missing", "foreign", "own"])
@pytest.mark.parametrize("route", CSRF_CASES, ids=lambda r: r[0])
def test_csrf(site: Site, route: tuple[str, str], token: str) -> None:
    foreign = site.app.test_client().csrf_token()  # valid, but another session's
    CSRF_CASES[route](site, token, foreign)


# ------------------------------------------------------------------------ coverage
def routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_the_matrix_covers_every_route(site: Site) -> None:
    found = routes(site.app)
    assert set(APP_CHECKS) | set(SITE_CHECKS) == found
    assert not set(APP_CHECKS) & set(SITE_CHECKS)
    # every route under /<owner>/<title>/ goes through the public/private matrix
    app_scoped = {
        (rule.endpoint, method)
        for rule in site.app.url_map.iter_rules()
        if "<owner>" in rule.rule
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert app_scoped == set(APP_CHECKS)
    # and every POST through the CSRF cases
    assert {r for r in found if r[1] == "POST"} == set(CSRF_CASES)
