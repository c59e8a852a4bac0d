"""Who may call each API route (tests/access.py describes the matrix): every
route of ``/api/v1/`` x (no token, another user's token, the owner's, an
admin's) x (a public app, a private one). The API is bearer-only: without a
token it is 401 (a logged-in cookie alone too: tests/test_api_tokens.py);
with one, the owner's page's rules hold: anyone who may see an app reads it
and starts it, only its owner and admins change, stop, delete it or read its
statistics, and everyone else gets exactly the 404 a missing app gets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.auth import get_user
from tests.access import APPS, CASES, app_row, visible
from tests.factories import CSRFClient, bearer, make_token
from tests.sites import USERNAMES, Site, make_site

NOTHING_HERE = {"error": "There is nothing here.", "status": 404}
BARE = 'Bearer realm="dormouse"'


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with make_site(tmp_path) as made:
        yield made


def headers_for(site: Site, viewer: str) -> dict[str, str]:
    if viewer == "anonymous":
        return {}
    with site.ctx():
        return bearer(make_token(get_user(USERNAMES[viewer])))


def manages(viewer: str) -> bool:
    return viewer in ("owner", "admin")


def call(client: CSRFClient, method: str, path: str, headers: dict[str, str], **kwargs):
    return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)


def refused_without_token(response) -> bool:
    if response.status_code != 401:
        return False
    assert response.get_json()["status"] == 401 and response.headers["WWW-Authenticate"] == BARE
    return True


def assert_hidden(client: CSRFClient, method: str, path: str, title: str, headers, **kwargs) -> None:
    """404, and the very answer an app that does not exist gets."""
    response = call(client, method, path.format(app=f"alice/{title}"), headers, **kwargs)
    missing = call(client, method, path.format(app="alice/no-such-app"), headers, **kwargs)
    assert response.status_code == missing.status_code == 404, (path, response.status_code)  # never 403
    assert response.get_json() == missing.get_json() == NOTHING_HERE


# Each check: (site, client, headers, viewer, visibility). "anonymous" sends no token.
ApiCheck = Callable[[Site, CSRFClient, dict[str, str], str, str], None]


def check_openapi(site, client, headers, viewer, visibility) -> None:
    response = call(client, "GET", "/openapi.json", headers)
    assert response.status_code == 200 and response.get_json()["openapi"] == "3.1.0"  # no token needed


def check_list(site, client, headers, viewer, visibility) -> None:
    response = call(client, "GET", "/apps", headers)
    if viewer == "anonymous":
        assert refused_without_token(response)
        return
    titles = {a["title"] for a in response.get_json()["apps"]}
    assert (APPS[visibility] in titles) == visible(viewer, visibility)


def check_publish(site, client, headers, viewer, visibility) -> None:
    body = {"title": f"new-{visibility}", "framework": "dash", "source": "dash-wave/app.py:server"}
    body["is_public"] = visibility == "public"
    response = call(client, "POST", "/apps", headers, json=body)
    if viewer == "anonymous":
        assert refused_without_token(response)
        assert body["title"] not in site.app_titles()
        return
    assert response.status_code == 201 and response.get_json()["owner"] == USERNAMES[viewer]


def check_get(site, client, headers, viewer, visibility) -> None:
    title = APPS[visibility]
    if viewer == "anonymous":
        assert refused_without_token(call(client, "GET", f"/apps/alice/{title}", headers))
    elif visible(viewer, visibility):
        response = call(client, "GET", f"/apps/alice/{title}", headers)
        assert response.status_code == 200 and response.get_json()["title"] == title
        assert ("config" in response.get_json()) == manages(viewer)
    else:
        assert_hidden(client, "GET", "/apps/{app}", title, headers)


def check_edit(site, client, headers, viewer, visibility) -> None:
    title = APPS[visibility]
    body = {"description": f"Edited by {viewer}."}
    if viewer == "anonymous":
        assert refused_without_token(call(client, "PATCH", f"/apps/alice/{title}", headers, json=body))
    elif manages(viewer):
        response = call(client, "PATCH", f"/apps/alice/{title}", headers, json=body)
        assert response.status_code == 200
    else:
        assert_hidden(client, "PATCH", "/apps/{app}", title, headers, json=body)
    assert (app_row(site, title)["description"] == body["description"]) == manages(viewer)


def check_deployment(site, client, headers, viewer, visibility) -> None:
    title = APPS[visibility]
    if viewer == "anonymous":
        assert refused_without_token(call(client, "GET", f"/apps/alice/{title}/deployment", headers))
    elif visible(viewer, visibility):
        response = call(client, "GET", f"/apps/alice/{title}/deployment", headers)
        assert response.status_code == 200 and response.get_json()["status"] == "none"
    else:
        assert_hidden(client, "GET", "/apps/{app}/deployment", title, headers)


def check_start(site, client, headers, viewer, visibility) -> None:
    title = APPS[visibility]
    if viewer == "anonymous":
        assert refused_without_token(call(client, "POST", f"/apps/alice/{title}/deployment", headers))
    elif visible(viewer, visibility):
        response = call(client, "POST", f"/apps/alice/{title}/deployment", headers)
        assert response.status_code == 202 and response.get_json()["status"] == "starting"
    else:
        assert_hidden(client, "POST", "/apps/{app}/deployment", title, headers)
    started = [d.status for d in site.deployments(title)]
    assert started == (["starting"] if viewer != "anonymous" and visible(viewer, visibility) else [])


def check_stop(site, client, headers, viewer, visibility) -> None:
    title = APPS[visibility]
    public_name = site.ensure_deployment(title)  # the start check's, or a new one
    if viewer == "anonymous":
        assert refused_without_token(call(client, "DELETE", f"/apps/alice/{title}/deployment", headers))
    elif manages(viewer):
        response = call(client, "DELETE", f"/apps/alice/{title}/deployment", headers)
        assert response.status_code == 200 and response.get_json()["stopped"] is True
    else:
        assert_hidden(client, "DELETE", "/apps/{app}/deployment", title, headers)
    (dep,) = [d for d in site.deployments(title) if d.public_name == public_name]
    assert dep.is_live != manages(viewer)
    if manages(viewer):
        assert dep.stop_reason == ("owner" if viewer == "owner" else "admin")


def check_stats(site, client, headers, viewer, visibility) -> None:
    title = APPS[visibility]
    if viewer == "anonymous":
        assert refused_without_token(call(client, "GET", f"/apps/alice/{title}/stats", headers))
    elif manages(viewer):
        response = call(client, "GET", f"/apps/alice/{title}/stats", headers)
        assert response.status_code == 200 and "month_cost" in response.get_json()
    else:
        assert_hidden(client, "GET", "/apps/{app}/stats", title, headers)


def check_delete(site, client, headers, viewer, visibility) -> None:
    title = APPS[visibility]
    if viewer == "anonymous":
        assert refused_without_token(call(client, "DELETE", f"/apps/alice/{title}", headers))
    elif manages(viewer):
        assert call(client, "DELETE", f"/apps/alice/{title}", headers).status_code == 204
    else:
        assert_hidden(client, "DELETE", "/apps/{app}", title, headers)
    assert (app_row(site, title)["deleted_at"] is not None) == manages(viewer)


# in this order: the delete comes last
API_CHECKS: dict[tuple[str, str], ApiCheck] = {
    ("api.openapi", "GET"): check_openapi,
    ("api.list_apps", "GET"): check_list,
    ("api.publish_app", "POST"): check_publish,
    ("api.get_app", "GET"): check_get,
    ("api.edit_app", "PATCH"): check_edit,
    ("api.deployment", "GET"): check_deployment,
    ("api.start", "POST"): check_start,
    ("api.stop", "DELETE"): check_stop,
    ("api.stats", "GET"): check_stats,
    ("api.delete_app", "DELETE"): check_delete,
}


@pytest.mark.parametrize(("viewer", "visibility"), CASES)
def test_api_routes(site: Site, viewer: str, visibility: str) -> None:
    headers = headers_for(site, viewer)
    for (endpoint, method), check in API_CHECKS.items():
        client = site.app.test_client()
        try:
            check(site, client, headers, viewer, visibility)
        except AssertionError as exc:
            raise AssertionError(f"{method} {endpoint} as {viewer} on a {visibility} app: {exc}") from exc
