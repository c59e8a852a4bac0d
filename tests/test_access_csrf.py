"""Every POST without the CSRF token (or with another session's token) is
refused with 400 and changes nothing; with the token it works. And the
matrix covers every route of ``app.url_map``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app import api_tokens
from app.auth import get_user
from app.extensions import db
from app.models import ApiToken
from tests.access import EXPIRED, NEW_APP, app_row, opened_page
from tests.factories import CSRFClient, bearer, login, make_token
from tests.sites import HX, JSON, PASSWORD, Site, make_site, session_user, who
from tests.test_access_api import API_CHECKS
from tests.test_access_app_routes import APP_CHECKS
from tests.test_access_site_routes import SITE_CHECKS


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with make_site(tmp_path) as made:
        yield made


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


def csrf_goodbye(site: Site, token: str, foreign: str) -> None:
    """The beacon sends no headers: its token is the form's ``csrf_token``."""
    public_name = opened_page(site, "wave")
    client = site.client("anonymous")
    form = {"deployment": public_name}
    if token != "missing":
        form["csrf_token"] = foreign if token == "foreign" else client.csrf_token()
    response = client.post("/alice/wave/viz/goodbye", data=form, csrf=False)
    (dep,) = site.deployments("wave")
    if token != "own":
        assert refused(response), response.status_code
        assert dep.goodbyes == 0 and dep.latest_goodbye_at is None
        return
    assert response.status_code == 204 and dep.goodbyes == 1 and dep.latest_goodbye_at is not None


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


def _app_id(site: Site) -> int:
    with site.ctx():
        return site.viz_app("wave").id


def csrf_admin_lift_budget(site: Site, token: str, foreign: str) -> None:
    with site.ctx():
        site.viz_app("wave").monthly_budget = 5.0
        db.session.commit()
    response = post(site.client("admin"), f"/admin/apps/{_app_id(site)}/lift-budget", token, foreign)
    with site.ctx():
        lifted = site.viz_app("wave").budget_lifted_until is not None
    if token != "own":
        assert refused(response), response.status_code
        assert not lifted
        return
    assert response.status_code == 302 and lifted


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


def csrf_tokens_make(site: Site, token: str, foreign: str) -> None:
    response = post(
        site.client("owner"), "/account/tokens", token, foreign, data={"label": "x", "ttl": "86400"}
    )
    with site.ctx():
        made = db.session.scalars(select(ApiToken)).all()
    if token != "own":
        assert refused(response), response.status_code
        assert made == [] and "eyJ" not in response.get_data(as_text=True)
        return
    assert response.status_code == 201 and len(made) == 1


def csrf_tokens_revoke(site: Site, token: str, foreign: str) -> None:
    with site.ctx():
        make_token(get_user("alice"))
        jti = db.session.scalar(select(ApiToken.jti))
    response = post(site.client("owner"), f"/account/tokens/{jti}/revoke", token, foreign)
    with site.ctx():
        revoked = api_tokens.find(jti).revoked_at is not None
    if token != "own":
        assert refused(response), response.status_code
        assert not revoked
        return
    assert response.status_code == 302 and revoked


CSRF_CASES: dict[tuple[str, str], Callable[[Site, str, str], None]] = {
    ("viz.start", "POST"): csrf_start,
    ("viz.ping", "POST"): csrf_ping,
    ("viz.goodbye", "POST"): csrf_goodbye,
    ("publish.publish_app", "POST"): csrf_publish,
    ("auth.login", "POST"): csrf_login,
    ("auth.logout", "POST"): csrf_logout,
    ("admin.stop", "POST"): csrf_admin_stop,
    ("admin.keep_awake", "POST"): csrf_admin_keep_awake,
    ("admin.set_admin", "POST"): csrf_admin_set_admin,
    ("admin.lift_budget", "POST"): csrf_admin_lift_budget,
    ("admin.disable", "POST"): csrf_admin_disable,
    ("auth.account", "POST"): csrf_account,
    ("owner.edit_app", "POST"): csrf_owner_action("edit"),
    ("owner.stop", "POST"): csrf_owner_action("stop"),
    ("owner.restart", "POST"): csrf_owner_action("restart"),
    ("owner.unpublish", "POST"): csrf_owner_action("unpublish"),
    ("owner.delete", "POST"): csrf_owner_action("delete"),
    ("tokens.page", "POST"): csrf_tokens_make,
    ("tokens.revoke", "POST"): csrf_tokens_revoke,
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
    # the API (bearer tokens only, no cookies, so no CSRF) has its own table
    api = {route for route in found if route[0].startswith("api.")}
    assert api == set(API_CHECKS)
    assert all(
        rule.rule.startswith("/api/v1/")
        for rule in site.app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
    )
    found -= api
    assert set(APP_CHECKS) | set(SITE_CHECKS) == found
    assert not set(APP_CHECKS) & set(SITE_CHECKS)
    # every route under /<owner>/<title>/ goes through the public/private matrix
    app_scoped = {
        (rule.endpoint, method)
        for rule in site.app.url_map.iter_rules()
        if "<owner>" in rule.rule and not rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert app_scoped == set(APP_CHECKS)
    # and every POST through the CSRF cases
    assert {r for r in found if r[1] == "POST"} == set(CSRF_CASES)
    # and no route but the API's takes PATCH, PUT or DELETE (the CSRF cases cover POST only)
    assert not {r for r in found if r[1] not in ("GET", "POST")}


def test_the_api_needs_no_csrf_token(site: Site) -> None:
    """Bearer tokens only: a call without a CSRF token works; a browser's cookies never authenticate one."""
    with site.ctx():
        headers = bearer(make_token(get_user("alice")))
    response = site.app.test_client().post("/api/v1/apps/alice/wave/deployment", headers=headers, csrf=False)
    assert response.status_code == 202
