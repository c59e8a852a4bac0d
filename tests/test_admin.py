"""The admin dashboard (/admin/): admins only (404 for everyone else); the
live table's time left is app.idle's own verdict; stop now; keep awake,
recorded with who did it and honoured by the sweep; failed deployments;
history filters; the users page's actions; the totals."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from app import admin, dashboard, idle, lifecycle, sweep
from app.auth import get_user
from app.extensions import db
from app.idle import IdleLimits
from app.models import AdminAction, Deployment, VizApp, utcnow
from app.prices import Prices
from tests.factories import CSRFClient, login, make_app, make_deployment, make_user
from tests.fakes import FakeBackend

HX = {"HX-Request": "true"}
TINY = IdleLimits(load_timeout=60, ping_timeout=30, start_timeout=120)


def admin_client(app: Flask) -> CSRFClient:
    if get_user("root") is None:
        make_user("root", admin=True)
    client: CSRFClient = app.test_client()  # type: ignore[assignment]
    assert login(client, "root").status_code == 302
    return client


def running(backend: FakeBackend, title: str, *, since_seconds: float = 600) -> Deployment:
    """A running deployment of a new app of alice's, loaded (and ready) ``since_seconds`` ago."""
    owner = get_user("alice") or make_user("alice")
    when = utcnow() - timedelta(seconds=since_seconds)
    dep = lifecycle.ensure_deployment(make_app(owner, title), now=when)
    lifecycle.record_load(dep, now=when)
    backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, now=when, force=True)
    assert dep.status == "running"
    return dep


def actions() -> list[tuple[str, str, str]]:
    rows = db.session.scalars(select(AdminAction).order_by(AdminAction.id))
    return [(a.actor, a.action, a.target) for a in rows]


# --- who may see it -------------------------------------------------------------------


def admin_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every admin route, with sample arguments."""
    sample = {"public_name": "default-abc234", "username": "alice", "int:app_id": "1"}
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        path = rule.rule
        for name, value in sample.items():
            path = path.replace(f"<{name}>", value)
        found += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def test_every_admin_route_is_404_for_everyone_but_admins(app, fake_backend):
    alice = make_user("alice")
    dep = lifecycle.ensure_deployment(make_app(alice, "wave"))
    routes = admin_routes(app)
    assert len(routes) == 9, routes  # a new admin route is checked here too
    anonymous: CSRFClient = app.test_client()  # type: ignore[assignment]
    user: CSRFClient = app.test_client()  # type: ignore[assignment]
    login(user, "alice")
    user.get("/")  # shows (and so clears) the welcome message

    def page(
        response,
    ) -> str:  # the login link names the page it was on; the CSRF token is signed with the second
        html = re.sub(r"next=[^\"]*", "next=", response.get_data(as_text=True))
        token = re.search(r'name="csrf-token" content="([^"]*)"', html)
        return html.replace(token.group(1), "") if token and token.group(1) else html

    for client in (anonymous, user):
        missing = page(client.get("/no-such/page/at-all"))
        for method, path in routes:
            path = path.replace("default-abc234", dep.public_name)
            call = client.post if method == "POST" else client.get
            for headers in ({}, HX):
                response = call(path, headers=headers, data={"minutes": "5", "admin": "1"})
                assert response.status_code == 404, (method, path, response.status_code)
                if not headers and method == "GET":
                    assert page(response) == missing, path  # the very page a missing one gets
    db.session.refresh(dep)
    db.session.refresh(alice)
    assert dep.is_live and dep.keep_awake_until is None and not alice.is_admin and alice.is_active
    assert actions() == []
    # the gallery shows admins only a link to it
    assert "/admin/" not in user.get("/").get_data(as_text=True)
    assert 'href="/admin/"' in admin_client(app).get("/").get_data(as_text=True)


def test_admins_get_every_page(app, fake_backend):
    client = admin_client(app)
    for path in ("/admin/", "/admin/history", "/admin/users"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"
    partial = client.get("/admin/live", headers=HX)
    assert partial.status_code == 200
    html = partial.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="admin-live"') and "<html" not in html
    assert 'hx-trigger="every 5s, refresh"' in html


def test_a_non_admin_who_was_an_admin_loses_the_dashboard_at_once(app, fake_backend):
    client = admin_client(app)
    root = get_user("root")
    root.is_admin = False
    db.session.commit()
    assert client.get("/admin/live", headers=HX).status_code == 404


# --- the live table -------------------------------------------------------------------


def test_live_rows_show_the_time_left_the_idle_rule_gives(app, fake_backend):
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    limits = IdleLimits(load_timeout=1800, ping_timeout=600, start_timeout=120)
    alice = make_user("alice")
    loaded = make_deployment(
        make_app(alice, "loaded"),
        now - timedelta(hours=1),
        ready_at=now - timedelta(hours=1),
        latest_load_at=now - timedelta(seconds=100),
        backend_ref='{"v": 1, "pid": 4242, "port": 8123}',
    )
    pinged = make_deployment(
        make_app(alice, "pinged", framework="bokeh"),
        now - timedelta(hours=2),
        ready_at=now - timedelta(hours=2),
        latest_load_at=now - timedelta(hours=1),
        latest_ping_at=now - timedelta(seconds=60),
    )
    idle_one = make_deployment(
        make_app(alice, "idle"),
        now - timedelta(hours=3),
        ready_at=now - timedelta(hours=3),
        latest_load_at=now - timedelta(hours=1),
    )
    starting = make_deployment(make_app(alice, "slow"), now - timedelta(seconds=20))
    make_deployment(make_app(alice, "asleep"), now - timedelta(hours=5), stopped_at=now - timedelta(hours=4))

    rows = {row.deployment.id: row for row in dashboard.live_rows(now, limits)}
    assert set(rows) == {loaded.id, pinged.id, idle_one.id, starting.id}
    for dep in (loaded, pinged, idle_one, starting):
        verdict = idle.decide(now=now, deployment=dep, limits=limits)
        assert rows[dep.id].verdict == verdict
    assert rows[loaded.id].time_left == 1700  # 1800 s after the load
    assert rows[pinged.id].time_left == 540  # 600 s after the ping
    assert rows[idle_one.id].time_left is None  # the next sweep stops it
    assert rows[starting.id].time_left == 100  # before START_TIMEOUT
    assert rows[loaded.id].backend == "pid 4242, port 8123"
    assert rows[loaded.id].load_age == 100 and rows[loaded.id].ping_age is None


def test_the_partial_shows_each_live_deployment(app, fake_backend, monkeypatch):
    settings = replace(app.config["DORMOUSE"], idle_load_timeout=1800.0, idle_ping_timeout=600.0)
    monkeypatch.setitem(app.config, "DORMOUSE", settings)
    dep = running(fake_backend, "wave", since_seconds=100)
    client = admin_client(app)
    html = client.get("/admin/live", headers=HX).get_data(as_text=True)
    row = html[html.index(f'id="live-{dep.public_name}"') :]
    row = row[: row.index("</tr>")]
    assert ">wave</a>" in row and "alice" in row and "running" in row
    assert re.search(r"(28|29)m \d\ds", row)  # ~1700 s left of its 1800 s load limit
    assert "500m CPU" in row and "512 MiB" in row
    assert f"/admin/deployments/{dep.public_name}/stop" in row
    assert f"/admin/deployments/{dep.public_name}/keep-awake" in row


# --- actions on deployments ---------------------------------------------------------


def test_stop_now_stops_it_and_records_who(app, fake_backend):
    dep = running(fake_backend, "wave")
    client = admin_client(app)
    response = client.post(f"/admin/deployments/{dep.public_name}/stop")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "admin"
    assert dep.status_reason == "stopped by root"
    assert fake_backend.calls["stop"] == 1
    assert actions() == [("root", "stop", f"alice/wave ({dep.public_name})")]
    # again: nothing more happens, and nothing more is recorded
    client.post(f"/admin/deployments/{dep.public_name}/stop")
    assert fake_backend.calls["stop"] == 1 and len(actions()) == 1
    assert client.post("/admin/deployments/default-nothere/stop").status_code == 404


def test_keep_awake_records_who_and_the_sweep_keeps_it(any_app, any_fake_backend):
    dep = running(any_fake_backend, "wave", since_seconds=600)  # idle under TINY limits
    client = admin_client(any_app)
    before = utcnow()
    response = client.post(f"/admin/deployments/{dep.public_name}/keep-awake", data={"minutes": "30"})
    assert response.status_code == 302
    db.session.refresh(dep)
    root = get_user("root")
    assert dep.keep_awake_by == root.id and dep.kept_awake_by.username == "root"
    assert before + timedelta(minutes=30) <= dep.keep_awake_until <= utcnow() + timedelta(minutes=30)
    (action,) = db.session.scalars(select(AdminAction)).all()
    assert (action.actor, action.action, action.deployment_id) == ("root", "keep-awake", dep.id)
    assert "30 min" in action.detail

    # the sweep keeps it while the moment is ahead...
    until = dep.keep_awake_until
    report = sweep.sweep(now=until - timedelta(seconds=1), lim=TINY)
    assert report.stopped == [] and report.errors == 0
    db.session.refresh(dep)
    assert dep.status == "running"
    # ...and the dashboard says for how long
    (row,) = dashboard.live_rows(until - timedelta(seconds=1), TINY)
    assert row.time_left == 1
    # then stops it as idle
    report = sweep.sweep(now=until + timedelta(seconds=1), lim=TINY)
    assert [d.id for d, _ in report.stopped] == [dep.id]
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "idle"


def test_keep_awake_between_the_decision_and_the_stop_keeps_it(any_app, any_fake_backend, monkeypatch):
    dep = running(any_fake_backend, "wave")
    real_decide = idle.decide

    def decide_then_keep(**kwargs):
        verdict = real_decide(**kwargs)
        with db.engine.begin() as other:  # an admin's request, on its own connection
            other.execute(
                update(Deployment)
                .where(Deployment.id == dep.id)
                .values(keep_awake_until=utcnow() + timedelta(hours=1))
            )
        return verdict

    monkeypatch.setattr(idle, "decide", decide_then_keep)
    report = sweep.sweep(lim=TINY)
    assert report.stopped == [] and report.errors == 0
    db.session.refresh(dep)
    assert dep.status == "running"


@pytest.mark.parametrize("minutes", ["0", "-5", "abc", "", "100000"])
def test_keep_awake_refuses_nonsense(app, fake_backend, minutes):
    dep = running(fake_backend, "wave")
    client = admin_client(app)
    response = client.post(
        f"/admin/deployments/{dep.public_name}/keep-awake", data={"minutes": minutes}, follow_redirects=True
    )
    assert response.status_code == 200 and "minutes" in response.get_data(as_text=True)
    db.session.refresh(dep)
    assert dep.keep_awake_until is None and actions() == []


def test_keep_awake_of_a_stopped_deployment_is_refused(app, fake_backend):
    dep = running(fake_backend, "wave")
    lifecycle.stop(dep, reason="idle")
    client = admin_client(app)
    response = client.post(
        f"/admin/deployments/{dep.public_name}/keep-awake", data={"minutes": "5"}, follow_redirects=True
    )
    assert "no longer running" in response.get_data(as_text=True)
    db.session.refresh(dep)
    assert dep.keep_awake_until is None and actions() == []


# --- failed, history -------------------------------------------------------------------


def test_failed_deployments_show_their_reasons(app, fake_backend):
    now = utcnow()
    alice = make_user("alice")
    make_deployment(
        make_app(alice, "broken"),
        now - timedelta(minutes=5),
        stopped_at=now - timedelta(minutes=4),
        stop_reason="failed",
        status="failed",
        status_reason="ImportError: no module named <script>",
    )
    html = admin_client(app).get("/admin/").get_data(as_text=True)
    failed = html[html.index('id="failed"') :]
    assert "broken" in failed and "ImportError: no module named &lt;script&gt;" in failed


def test_history_filters(app, fake_backend):
    now = utcnow()
    alice, bob = make_user("alice"), make_user("bob")
    wave, plot = make_app(alice, "wave"), make_app(bob, "plot")

    def ended(viz: VizApp, hours_ago: float, reason: str) -> str:
        at = now - timedelta(hours=hours_ago)
        status = "failed" if reason == "failed" else "stopped"
        dep = make_deployment(
            viz, at - timedelta(minutes=10), stopped_at=at, stop_reason=reason, status=status
        )
        return dep.public_name

    a_idle = ended(wave, 1.5, "idle")
    a_admin = ended(wave, 30, "admin")
    b_idle = ended(plot, 2, "idle")
    b_failed = ended(plot, 24 * 10, "failed")
    live = running(fake_backend, "live-one").public_name
    client = admin_client(app)

    def shown(**args: str) -> set[str]:
        html = client.get("/admin/history", query_string=args).get_data(as_text=True)
        return set(re.findall(r'<tr data-deployment="([^"]+)"', html))

    assert shown() == {a_idle, a_admin, b_idle}  # the last 7 days, ended ones only
    assert live not in shown(window="all")
    assert shown(window="all") == {a_idle, a_admin, b_idle, b_failed}
    assert shown(window="24h") == {a_idle, b_idle}
    assert shown(window="1h") == set()
    assert shown(owner="alice") == {a_idle, a_admin}
    assert shown(app="plot", window="all") == {b_idle, b_failed}
    assert shown(reason="idle") == {a_idle, b_idle}
    assert shown(reason="failed", window="30d") == {b_failed}
    assert shown(owner="alice", reason="admin") == {a_admin}
    assert shown(reason="nonsense", window="nonsense") == {a_idle, a_admin, b_idle}  # ignored
    # the form keeps what was asked
    html = client.get("/admin/history?owner=alice&reason=idle").get_data(as_text=True)
    assert 'value="alice"' in html and '<option value="idle" selected>' in html


def test_history_pages(app, fake_backend):
    now = utcnow()
    viz = make_app(make_user("alice"), "wave")
    for n in range(dashboard.HISTORY_PAGE + 3):
        make_deployment(
            viz,
            now - timedelta(minutes=n + 2),
            stopped_at=now - timedelta(minutes=n + 1),
            name=f"run{n}",
        )
    client = admin_client(app)
    first = client.get("/admin/history").get_data(as_text=True)
    second = client.get("/admin/history?page=2").get_data(as_text=True)
    assert first.count("<tr data-deployment=") == dashboard.HISTORY_PAGE
    assert second.count("<tr data-deployment=") == 3
    assert "page=2" in first and "Page 2 of 2" in second
    assert client.get("/admin/history?page=x").status_code == 200


# --- users -----------------------------------------------------------------------------


def test_make_and_remove_admin(app, fake_backend):
    make_user("alice")
    client = admin_client(app)
    assert client.post("/admin/users/alice/admin", data={"admin": "1"}).status_code == 302
    assert get_user("alice").is_admin
    client.post("/admin/users/alice/admin", data={"admin": "0"})
    db.session.expire_all()
    assert not get_user("alice").is_admin
    assert actions() == [("root", "make-admin", "alice"), ("root", "remove-admin", "alice")]
    # not oneself: an admin cannot lock themselves out
    response = client.post("/admin/users/root/admin", data={"admin": "0"}, follow_redirects=True)
    assert "cannot remove your own" in response.get_data(as_text=True)
    db.session.expire_all()
    assert get_user("root").is_admin
    assert client.post("/admin/users/nobody/admin", data={"admin": "1"}).status_code == 404


def test_disable_ends_sessions_and_stops_apps(app, fake_backend):
    dep = running(fake_backend, "wave")
    alice_client: CSRFClient = app.test_client()  # type: ignore[assignment]
    login(alice_client, "alice")
    assert alice_client.get("/publish").status_code == 200
    client = admin_client(app)
    response = client.post("/admin/users/alice/disable", follow_redirects=True)
    assert "alice is disabled" in response.get_data(as_text=True)
    db.session.expire_all()
    assert not get_user("alice").is_active
    assert db.session.get(Deployment, dep.id).status == "stopped"
    assert alice_client.get("/publish").status_code == 302  # logged out
    assert actions() == [("root", "disable", "alice")]
    assert "alice/wave" in db.session.scalars(select(AdminAction.detail)).one()
    # not oneself
    response = client.post("/admin/users/root/disable", follow_redirects=True)
    assert "cannot disable your own" in response.get_data(as_text=True)
    db.session.expire_all()
    assert get_user("root").is_active


def test_the_users_page_lists_everyone(app, fake_backend):
    running(fake_backend, "wave")
    make_user("bob")
    html = admin_client(app).get("/admin/users").get_data(as_text=True)
    for name in ("alice", "bob", "root"):
        assert f'id="user-{name}"' in html
    alice_row = html[html.index('id="user-alice"') :]
    alice_row = alice_row[: alice_row.index("</tr>")]
    assert "<td>1</td>" in alice_row and "Make admin" in alice_row and "Disable" in alice_row


# --- totals ----------------------------------------------------------------------------


def test_totals(app, fake_backend):
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    viz = make_app(make_user("alice"), "wave")
    # yesterday 22:00 to today 02:00: 2 h today, not started today; 1000m and 1024 MiB
    make_deployment(
        viz,
        now - timedelta(hours=14),
        stopped_at=now - timedelta(hours=10),
        cpu_millicores=1000,
        memory_mib=1024,
        name="night",
    )
    # today 11:00, still live: 1 h, started today
    make_deployment(
        viz,
        now - timedelta(hours=1),
        ready_at=now - timedelta(hours=1),
        cpu_millicores=1000,
        memory_mib=1024,
    )
    prices = Prices(cpu_hour=1.0, gb_hour=0.5)
    t = dashboard.totals(now, prices)
    assert t.live == 1 and t.started_today == 1
    assert t.running_hours_today == pytest.approx(3.0)
    # this month: 4 h + 1 h, at 1 core and 1 GB: 5 × (1.0 + 0.5)
    assert t.cost_this_month == pytest.approx(7.5)


def test_totals_at_midnight(app):
    now = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    t = dashboard.totals(now, Prices())
    assert (t.live, t.started_today, t.running_hours_today, t.cost_this_month) == (0, 0, 0.0, 0.0)


def test_actions_are_listed_on_the_dashboard(app, fake_backend):
    dep = running(fake_backend, "wave")
    root = make_user("root", admin=True)
    admin.keep_awake(dep, 15, root, now=utcnow())
    html = admin_client(app).get("/admin/").get_data(as_text=True)
    log = html[html.index('id="admin-actions"') :]
    assert "root" in log and "keep-awake" in log and "for 15 min" in log
    # and the live table says who keeps it awake
    assert "kept awake by root" in html
