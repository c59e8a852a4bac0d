"""The owner's page (/<owner>/), editing, stopping, restarting, unpublishing
and deleting an app, the account page, and the truthful state of an app in
the gallery, on its page and on its owner's page. The scripted backend
(tests/fakes.py) stands in; the route x viewer matrix and CSRF are in
tests/test_access_*.py, the browser in tests/test_owner_browser.py."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from app import lifecycle
from app.extensions import db
from app.models import Deployment, VizApp
from tests.factories import login, make_app, make_deployment, make_user

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
FAILED_AT = T0 + timedelta(minutes=2)


def rows(html: str) -> dict[str, str]:
    """The owner page's rows: title -> the row's state."""
    return dict(re.findall(r'data-app="([^"]+)" data-state="([^"]+)"', html))


def failed_wave(wave: VizApp) -> Deployment:
    return make_deployment(
        wave, T0, stopped_at=FAILED_AT, stop_reason="failed", status="failed",
        status_reason="Traceback ...\nKeyError: 'DB_PASSWORD'",
    )  # fmt: skip


def test_the_owner_page_shows_public_apps_to_all_and_private_ones_to_owner_and_admins(client, alice, wave):
    make_app(alice, "secret", is_public=False)
    make_user("bob")
    make_user("root", admin=True)
    page = client.get("/alice/").get_data(as_text=True)
    assert rows(page) == {"wave": "asleep"} and "Apps by alice" in page
    assert "/alice/wave/edit" not in page and "/alice/wave/delete" not in page
    login(client, "bob")
    assert "/alice/wave/edit" not in client.get("/alice/").get_data(as_text=True)
    client.post("/logout")
    for user in ("alice", "root"):
        login(client, user)
        page = client.get("/alice/").get_data(as_text=True)
        assert rows(page) == {"wave": "asleep", "secret": "asleep"}
        for action in ("edit", "restart", "unpublish", "delete"):
            assert f"/alice/wave/{action}" in page
        assert "/alice/wave/stop" not in page  # nothing runs: nothing to stop
        client.post("/logout")
    assert client.get("/nobody/").status_code == 404


def test_failed_shows_as_failed_with_when_everywhere_and_why_to_the_owner(client, alice, wave):
    failed_wave(wave)
    when = '<time datetime="2026-03-01T09:32:00+00:00">2026-03-01 09:32 UTC</time>'
    gallery = client.get("/").get_data(as_text=True)
    assert 'data-state="failed"' in gallery and f"failed at {when}" in gallery
    assert "asleep" not in gallery
    for url in ("/alice/wave/", "/alice/"):
        html = client.get(url).get_data(as_text=True)
        assert f"failed at {when}" in html and "DB_PASSWORD" not in html, url  # why: owner only
    login(client)
    for url in ("/alice/wave/", "/alice/"):
        assert "KeyError: &#39;DB_PASSWORD&#39;" in client.get(url).get_data(as_text=True), url


def test_running_starting_and_asleep_say_since_when(client, alice, wave):
    other = make_app(alice, "other")
    never = make_app(alice, "never")
    make_deployment(wave, T0, ready_at=T0 + timedelta(seconds=5))
    make_deployment(other, T0, ready_at=T0, stopped_at=T0 + timedelta(hours=1), stop_reason="owner")
    gallery = client.get("/").get_data(as_text=True)
    assert 'running since <time datetime="2026-03-01T09:30:05+00:00">' in gallery
    assert 'asleep since <time datetime="2026-03-01T10:30:00+00:00">' in gallery
    assert "(stopped by its owner)" in gallery and "never run yet" in gallery
    assert rows(client.get("/alice/").get_data(as_text=True)) == {
        "never": "asleep", "other": "asleep", "wave": "running"
    }  # fmt: skip
    assert never.id


def test_a_live_deployment_is_shown_before_a_newer_failed_one(client, alice, wave):
    make_deployment(wave, T0 + timedelta(hours=1), ready_at=T0 + timedelta(hours=1), name="default")
    make_deployment(wave, T0, status="failed", stopped_at=T0, stop_reason="failed")
    assert rows(client.get("/alice/").get_data(as_text=True)) == {"wave": "running"}


def test_the_owner_page_sees_a_start_through(client, wave, fake_backend, monkeypatch):
    monkeypatch.setattr(lifecycle, "STATUS_READ_INTERVAL", 0.0)
    login(client)
    assert client.post("/alice/wave/restart").status_code == 302  # "Start": nothing ran
    assert rows(client.get("/alice/").get_data(as_text=True)) == {"wave": "starting"}
    fake_backend.set(fake_backend.only_ref(), "running")
    page = client.get("/alice/").get_data(as_text=True)
    assert rows(page) == {"wave": "running"} and "/alice/wave/stop" in page


def test_stop_and_restart(client, wave, fake_backend):
    login(client)
    first = lifecycle.ensure_deployment(wave)
    response = client.post("/alice/wave/restart", follow_redirects=True)
    assert "Restarted alice/wave" in response.get_data(as_text=True)
    db.session.refresh(first)
    assert first.status == "stopped" and first.stop_reason == "owner"
    second = lifecycle.live_deployment(wave)
    assert second is not None and second.id != first.id
    assert fake_backend.stopped == [first.backend_ref]
    response = client.post("/alice/wave/stop", follow_redirects=True)
    assert "Stopped alice/wave" in response.get_data(as_text=True)
    assert lifecycle.live_deployment(wave) is None
    response = client.post("/alice/wave/stop", follow_redirects=True)
    assert "was not running" in response.get_data(as_text=True)


def test_an_admin_acting_on_someone_elses_app_is_recorded_as_admin(client, wave, fake_backend):
    make_user("root", admin=True)
    dep = lifecycle.ensure_deployment(wave)
    login(client, "root")
    client.post("/alice/wave/stop")
    db.session.refresh(dep)
    assert dep.stop_reason == "admin"


def test_restart_past_a_cap_says_so(app, client, wave, fake_backend):
    app.config["DORMOUSE"] = replace(app.config["DORMOUSE"], max_live_per_owner=1)
    other = make_app(wave.owner, "other")
    lifecycle.ensure_deployment(other)
    login(client)
    html = client.post("/alice/wave/restart", follow_redirects=True).get_data(as_text=True)
    assert "could not start again" in html and lifecycle.live_deployment(wave) is None


def test_unpublish_takes_it_out_of_the_gallery_and_stops_it(client, wave, fake_backend):
    dep = lifecycle.ensure_deployment(wave)
    login(client)
    client.post("/alice/wave/unpublish")
    db.session.refresh(wave)
    db.session.refresh(dep)
    assert wave.is_public is False and dep.status == "stopped"
    client.post("/logout")
    assert "/alice/wave/" not in client.get("/").get_data(as_text=True)
    assert client.get("/alice/wave/").status_code == 404
    assert rows(client.get("/alice/").get_data(as_text=True)) == {}


def test_delete_stops_it_keeps_history_and_frees_the_title(any_app, any_fake_backend):
    alice = make_user("alice")
    wave = make_app(alice, "wave")
    make_deployment(wave, T0, ready_at=T0, stopped_at=T0 + timedelta(hours=1))
    live = lifecycle.ensure_deployment(wave)
    client = any_app.test_client()
    login(client)
    html = client.post("/alice/wave/delete", follow_redirects=True).get_data(as_text=True)
    assert "Deleted alice/wave" in html and rows(html) == {}
    db.session.refresh(live)
    assert live.status == "stopped" and live.stop_reason == "owner"
    assert any_fake_backend.stopped == [live.backend_ref]
    kept = db.session.scalar(select(func.count(Deployment.id)).where(Deployment.app_id == wave.id))
    assert kept == 2  # the usage and cost history stays
    for url in ("/alice/wave/", "/alice/wave/viz/", "/alice/wave/edit", "/alice/wave/logs"):
        assert client.get(url).status_code == 404, url
    assert client.post("/alice/wave/viz/start").status_code == 404
    assert "/alice/wave/" not in client.get("/").get_data(as_text=True)
    # the title is free again (the unique index leaves deleted rows out), on both databases
    again = make_app(alice, "wave", description="The new one.")
    assert again.id != wave.id
    assert "The new one." in client.get("/alice/wave/").get_data(as_text=True)
    with pytest.raises(IntegrityError):  # but two live apps of one title still cannot be
        db.session.add(VizApp(owner=alice, title="wave", framework="dash", source="dash-wave/app.py"))
        db.session.commit()
    db.session.rollback()


def test_deleted_apps_do_not_count_against_the_publishing_limit(app, client, alice, wave):
    app.config["DORMOUSE"] = replace(app.config["DORMOUSE"], max_apps_per_owner=1)
    login(client)
    client.post("/alice/wave/delete")
    assert make_app(alice, "second").id


def test_the_cli_no_longer_finds_a_deleted_app_and_demo_load_does_not_bring_one_back(app, runner):
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    demo = db.session.scalar(select(VizApp).where(VizApp.title == "dash-wave"))
    make_user("root", admin=True)
    client = app.test_client()
    login(client, "root")
    assert client.post("/demo/dash-wave/delete").status_code == 302
    result = runner.invoke(args=["demo", "load"])
    assert "demo/dash-wave: deleted, not loaded again" in result.output
    assert db.session.scalar(select(func.count(VizApp.id)).where(VizApp.title == "dash-wave")) == 1
    result = runner.invoke(args=["deployments", "stop", "demo/dash-wave"])
    assert result.exit_code != 0 and "No app" in result.output
    assert demo.id


# ------------------------------------------------------------------------- editing
EDIT = {
    "description": "A better wave.",
    "source": "dash-wave/app.py:server",
    "cpu": "250m",
    "memory": "256Mi",
    "is_public": "y",
}


def test_the_edit_form_is_prefilled_and_hides_environment_values(client, alice):
    make_app(alice, "wave", description="A wave.", env="API_TOKEN=s3cr3t\nMODE=fast")
    login(client)
    html = client.get("/alice/wave/edit").get_data(as_text=True)
    assert "A wave." in html and "dash-wave/app.py:server" in html
    assert "API_TOKEN=********" in html and "MODE=********" in html and "s3cr3t" not in html
    assert 'name="title"' not in html and 'name="framework"' not in html  # they stay
    assert ">Save</button>" in html and 'href="/alice/">Cancel</a>' in html


def test_edit_saves_keeps_hidden_values_and_applies_to_the_next_deployment(client, alice, fake_backend):
    wave = make_app(alice, "wave", env="API_TOKEN=s3cr3t\nMODE=fast")
    login(client)
    form = {**EDIT, "env": "API_TOKEN=********\nMODE=slow\nNEW=1", "title": "renamed", "framework": "bokeh"}
    response = client.post("/alice/wave/edit", data=form)
    assert response.status_code == 302 and response.headers["Location"] == "/alice/"
    db.session.refresh(wave)
    assert (wave.title, wave.framework, wave.description) == ("wave", "dash", "A better wave.")
    assert wave.env == {"API_TOKEN": "s3cr3t", "MODE": "slow", "NEW": "1"}
    assert (wave.cpu, wave.memory) == ("250m", "256Mi")
    dep = lifecycle.ensure_deployment(wave)
    assert fake_backend.specs[dep.backend_ref].env["API_TOKEN"] == "s3cr3t"
    assert dep.cpu_millicores == 250
    # removing the line removes the variable
    client.post("/alice/wave/edit", data={**EDIT, "env": "MODE=slow"})
    db.session.refresh(wave)
    assert wave.env == {"MODE": "slow"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cpu", "lots", "Write CPU like"),
        ("memory", "9000Gi", "At most"),
        ("source", "../etc/passwd.py", "inside the apps folder"),
        ("env", "PATH=/tmp", "choose another name"),
        ("env", "GONE=********", "has no stored value to keep"),
        ("port", "80", "from 1024 to 65535"),
        ("embed_origins", "https://x.example/path", ""),
    ],
)
def test_edit_errors_are_shown_and_nothing_is_saved(client, alice, field, value, message):
    wave = make_app(alice, "wave", description="A wave.")
    login(client)
    response = client.post("/alice/wave/edit", data={**EDIT, field: value})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Nothing was saved" in html and message in html
    db.session.refresh(wave)
    assert wave.description == "A wave."


def test_making_an_app_private_in_the_edit_form_stops_it(client, wave, fake_backend):
    dep = lifecycle.ensure_deployment(wave)
    login(client)
    form = {k: v for k, v in EDIT.items() if k != "is_public"}
    html = client.post("/alice/wave/edit", data=form, follow_redirects=True).get_data(as_text=True)
    assert "its running deployment was stopped" in html
    db.session.refresh(dep)
    db.session.refresh(wave)
    assert wave.is_public is False and dep.status == "stopped"


# ------------------------------------------------------------------------- account
def test_changing_the_password_ends_other_sessions_only(app, client, alice):
    other = app.test_client()
    login(other)
    login(client)
    form = {"current": "correct-horse", "new": "battery-staple", "repeat": "battery-staple"}
    response = client.post("/account", data=form, follow_redirects=True)
    assert "Your password is changed" in response.get_data(as_text=True)
    assert client.get("/account").status_code == 200  # this session goes on
    assert other.get("/account").status_code == 302  # the other one has ended
    assert login(app.test_client(), "alice", "battery-staple").status_code == 302
    assert login(app.test_client(), "alice", "correct-horse").status_code == 400  # refused


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"current": "wrong-horse", "new": "battery-staple", "repeat": "battery-staple"}, "not your current"),
        ({"current": "correct-horse", "new": "battery-staple", "repeat": "battery-stapel"}, "differ"),
        ({"current": "correct-horse", "new": "short", "repeat": "short"}, "at least 8"),
    ],
)
def test_a_password_change_is_refused_with_a_reason(client, alice, form, message):
    login(client)
    response = client.post("/account", data=form)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    db.session.refresh(alice)
    assert alice.check_password("correct-horse")


def test_foreign_keys_are_on_again_after_the_migrations(app):
    assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
