"""Who may use each site-wide route: gallery, login, publishing, admin,
account (the matrix is described in tests/access.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app import api_tokens
from app.auth import get_user
from app.extensions import db
from app.models import ApiToken, User, VizApp
from tests.access import NEW_APP, VIEWERS, visible
from tests.factories import CSRFClient, make_token
from tests.sites import HX, JSON, PASSWORD, USERNAMES, Site, make_site, session_user, to_login, who


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with make_site(tmp_path) as made:
        yield made


# ---------------------------------------------------------------- the site routes
SiteCheck = Callable[[Site, CSRFClient, str], None]


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


def check_admin_stats(site: Site, client: CSRFClient, viewer: str) -> None:
    site.ensure_deployment("secret")
    paths = ("/admin/stats", "/admin/stats?days=nonsense")
    shown = [admin_only(client, viewer, "GET", path) for path in paths]  # each path checked
    if all(shown):
        html = client.get("/admin/stats?days=7").get_data(as_text=True)
        assert 'id="plot-timeline"' in html and "alice/secret" in html  # private apps' runs too


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


def _budgeted(site: Site, title: str) -> None:
    """``title`` has a budget, not lifted."""
    with site.ctx():
        row = site.viz_app(title)
        row.monthly_budget, row.budget_lifted_until = 5.0, None
        db.session.commit()


def _lifted(site: Site, title: str) -> bool:
    with site.ctx():
        return site.viz_app(title).budget_lifted_until is not None


def _app_id(site: Site) -> int:
    with site.ctx():
        return site.viz_app("wave").id


def check_admin_lift_budget(site: Site, client: CSRFClient, viewer: str) -> None:
    _budgeted(site, "wave")
    path = f"/admin/apps/{_app_id(site)}/lift-budget"
    if admin_only(client, viewer, "POST", path):
        assert client.post(path).status_code == 302
    assert _lifted(site, "wave") == (viewer == "admin")


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


def check_tokens_page(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.get("/account/tokens")
    if viewer == "anonymous":
        return to_login(response, "/account/tokens")
    assert response.status_code == 200 and "Make a token" in response.get_data(as_text=True)


def check_tokens_make(site: Site, client: CSRFClient, viewer: str) -> None:
    response = client.post("/account/tokens", data={"label": "matrix", "ttl": "86400"})
    with site.ctx():
        made = db.session.scalars(select(ApiToken.user_id)).all()
        if viewer == "anonymous":
            to_login(response, "/account/tokens")
            assert made == []
            return
        assert response.status_code == 201 and 'class="token"' in response.get_data(as_text=True)
        assert made == [get_user(USERNAMES[viewer]).id]  # one's own token only


def check_tokens_revoke(site: Site, client: CSRFClient, viewer: str) -> None:
    """Alice's token: she revokes it; anyone else gets the 404 of a token that does not exist."""
    with site.ctx():
        alice = get_user("alice")
        make_token(alice, label="alice's")
        jti = db.session.scalar(select(ApiToken.jti).where(ApiToken.label == "alice's"))
    response = client.post(f"/account/tokens/{jti}/revoke")
    missing = client.post("/account/tokens/no-such-token/revoke")
    if viewer == "anonymous":
        to_login(response, f"/account/tokens/{jti}/revoke")
    elif viewer == "owner":
        assert response.status_code == 302 and response.headers["Location"] == "/account/tokens"
    else:
        assert response.status_code == missing.status_code == 404
    with site.ctx():
        assert (api_tokens.find(jti).revoked_at is not None) == (viewer == "owner")


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
    ("stats.site_stats", "GET"): check_admin_stats,
    ("admin.stop", "POST"): check_admin_stop,
    ("admin.keep_awake", "POST"): check_admin_keep_awake,
    ("admin.set_admin", "POST"): check_admin_set_admin,
    ("admin.lift_budget", "POST"): check_admin_lift_budget,
    ("admin.disable", "POST"): check_admin_disable,
    ("auth.account", "GET"): check_account_page,
    ("auth.account", "POST"): check_account_post,
    ("tokens.page", "GET"): check_tokens_page,
    ("tokens.page", "POST"): check_tokens_make,
    ("tokens.revoke", "POST"): check_tokens_revoke,
}


@pytest.mark.parametrize("viewer", VIEWERS)
def test_site_routes(site: Site, viewer: str) -> None:
    for (endpoint, method), check in SITE_CHECKS.items():
        client = site.client(viewer)
        try:
            check(site, client, viewer)
        except AssertionError as exc:
            raise AssertionError(f"{method} {endpoint} as {viewer}: {exc}") from exc
