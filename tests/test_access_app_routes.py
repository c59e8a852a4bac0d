"""Who may use each route under /<owner>/<title>/, for a public and a private app
(the matrix is described in tests/access.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.access import APPS, CASES, app_row, assert_hidden, opened_page, visible
from tests.factories import CSRFClient
from tests.sites import HX, JSON, USERNAMES, Site, make_site, who


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with make_site(tmp_path) as made:
        yield made


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


def check_goodbye(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    public_name = opened_page(site, title)
    form = {"deployment": public_name}
    (before,) = [d.goodbyes for d in site.deployments(title) if d.public_name == public_name]
    if not shown:
        assert_hidden(client, "POST", "/viz/goodbye", title, data=form)
        (dep,) = [d for d in site.deployments(title) if d.public_name == public_name]
        assert dep.goodbyes == before  # the goodbye was not recorded
        return
    response = client.post(f"/alice/{title}/viz/goodbye", data=form)
    assert response.status_code == 204 and response.get_data() == b""
    (dep,) = [d for d in site.deployments(title) if d.public_name == public_name]
    assert dep.goodbyes == before + 1 and dep.latest_goodbye_at is not None


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


def check_stats_page(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    site.ensure_deployment(title)
    if not (shown and manages(client)):  # even a public app's usage and cost are its owner's and admins'
        assert_hidden(client, "GET", "/stats", title)
        assert_hidden(client, "GET", "/stats?days=30", title)
        assert_hidden(client, "GET", "/stats?days=nonsense", title)
        return
    response = client.get(f"/alice/{title}/stats?days=30")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="plot-timeline"' in html and 'id="app-costs"' in html


def live(site: Site, title: str) -> list[str]:
    return [d.public_name for d in site.deployments(title) if d.is_live]


def check_owner_page(site: Site, client: CSRFClient, title: str, shown: bool) -> None:
    """/alice/ lists the app to whoever may see it; the buttons are the owner's and admins'."""
    response = client.get("/alice/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert (f'data-app="{title}"' in html) == shown
    assert (f"/alice/{title}/edit" in html) == (shown and manages(client))
    assert (f"/alice/{title}/stats" in html) == (shown and manages(client))
    assert ('id="owner-costs"' in html) == manages(client)  # the month's costs: the owner's and admins'
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
    ("viz.goodbye", "POST"): check_goodbye,
    ("logs.page", "GET"): check_logs_page,
    ("logs.download", "GET"): check_logs_download,
    ("stats.app_stats", "GET"): check_stats_page,
    ("owner.page", "GET"): check_owner_page,
    ("owner.edit_app", "GET"): check_edit_form,
    ("owner.edit_app", "POST"): check_edit_post,
    ("owner.stop", "POST"): check_stop,
    ("owner.restart", "POST"): check_restart,
    ("owner.unpublish", "POST"): check_unpublish,
    ("owner.delete", "POST"): check_delete,  # last: the app is gone afterwards
}


@pytest.mark.parametrize(("viewer", "visibility"), CASES)
def test_app_routes(site: Site, viewer: str, visibility: str) -> None:
    title, shown = APPS[visibility], visible(viewer, visibility)
    for (endpoint, method), check in APP_CHECKS.items():
        client = site.client(viewer)
        try:
            check(site, client, title, shown)
        except AssertionError as exc:
            raise AssertionError(f"{method} {endpoint} as {viewer} on the {visibility} app: {exc}") from exc
