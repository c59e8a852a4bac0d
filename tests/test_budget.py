"""An app's monthly budget (app/budget.py): the decision with the clock
passed in, the refusal in ensure_deployment (nothing half-created), an
admin's lift, the forms, and what the viz, owner, app and admin pages say,
on SQLite and PostgreSQL. The scripted backend (tests/fakes.py) stands in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import admin, budget, lifecycle
from app.caps import Busy
from app.costs import month_bounds
from app.extensions import db
from app.models import AdminAction, Deployment, VizApp, utcnow
from app.publishing import MAX_BUDGET, parse_budget
from tests.factories import bearer, login, make_app, make_deployment, make_token, make_user

T = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}
BIG = 10_000_000  # millicores: a deployment that costs dollars a second


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- pure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "problem"),
    [
        ("", None, None),
        ("  ", None, None),
        ("25", 25.0, None),
        ("$12.50", 12.5, None),
        (" 0.01 ", 0.01, None),
        (str(MAX_BUDGET), float(MAX_BUDGET), None),
        ("0", None, "more than $0"),
        ("-5", None, "more than $0"),
        ("1.234", None, "at most 2 decimals"),
        (str(MAX_BUDGET + 1), None, "At most $100,000"),
        ("ten", None, "Write the budget in dollars"),
        ("nan", None, "more than $0"),
        ("1e3", 1000.0, None),
    ],
)
def test_parse_budget(text, amount, problem):
    got, error = parse_budget(text)
    assert got == amount
    assert (error is None) == (problem is None)
    if problem:
        assert problem in error


@pytest.mark.parametrize(
    ("budget_", "spent", "lifted_until", "over"),
    [
        (None, 1000.0, None, False),  # no budget, no limit
        (10.0, 9.99, None, False),
        (10.0, 10.0, None, True),  # reached is over
        (10.0, 12.0, None, True),
        (10.0, 12.0, T + H, False),  # lifted until later
        (10.0, 12.0, T, True),  # the lift has ended
        (10.0, 12.0, T - H, True),
    ],
)
def test_is_over(budget_, spent, lifted_until, over):
    assert budget.is_over(budget=budget_, spent=spent, lifted_until=lifted_until, now=T) is over


def test_the_message_says_what_was_spent_of_what_and_until_when():
    text = budget.message(budget=10.0, spent=12.345, now=T)
    assert "$12.35 of its $10.00 budget for March 2026" in text
    assert "1 April 2026" in text and "admin lifts" in text
    assert "1 January 2027" in budget.message(budget=5.0, spent=6.0, now=utc(2026, 12, 31, 23, 59))


# --- enforcement ------------------------------------------------------------------


@pytest.fixture
def alice(any_app: Flask):
    return make_user("alice")


@pytest.fixture
def spent_wave(alice, any_fake_backend) -> VizApp:
    """alice's wave, $1.00 a month, that has cost about $2.18 this month (T)."""
    wave = make_app(alice, "wave", monthly_budget="1.00")
    make_deployment(wave, T - 3 * H, stopped_at=T - 2 * H, cpu_millicores=100_000, memory_mib=0)
    return wave


def deployments() -> int:
    return db.session.scalar(select(func.count(Deployment.id))) or 0


def test_over_budget_refuses_to_start_and_creates_nothing(spent_wave, any_fake_backend):
    with pytest.raises(budget.OverBudget, match=r"\$2\.18 of its \$1\.00 budget for March 2026") as caught:
        lifecycle.ensure_deployment(spent_wave, now=T)
    assert isinstance(caught.value, Busy)  # every caller that handles a full server handles this
    assert deployments() == 1 and any_fake_backend.calls["create"] == 0
    # last month's spending does not count: on the 1st it starts again
    assert lifecycle.ensure_deployment(spent_wave, now=utc(2026, 4, 1)).status == "starting"


def test_an_admins_lift_lets_it_start_until_next_month_and_is_recorded(spent_wave, any_fake_backend):
    root = make_user("root", admin=True)
    until = admin.lift_budget(spent_wave, root, now=T)
    assert until == utc(2026, 4, 1) == month_bounds(2026, 3)[1]
    dep = lifecycle.ensure_deployment(spent_wave, now=T)
    assert dep.status == "starting" and any_fake_backend.calls["create"] == 1
    (action,) = db.session.scalars(select(AdminAction)).all()
    assert (action.actor, action.action, action.target) == ("root", "lift-budget", "alice/wave")
    assert "$1.00 a month" in action.detail and "2026-04-01" in action.detail
    with pytest.raises(admin.AdminError, match="already lifted"):
        admin.lift_budget(spent_wave, root, now=T)
    with pytest.raises(admin.AdminError, match="no budget"):
        admin.lift_budget(make_app(spent_wave.owner, "free"), root, now=T)


def test_a_live_deployment_is_not_cut_off(alice, any_fake_backend):
    wave = make_app(alice, "wave", monthly_budget="1.00")
    live = make_deployment(wave, T - 2 * H, ready_at=T - 2 * H, cpu_millicores=100_000)
    assert lifecycle.ensure_deployment(wave, now=T).id == live.id  # over budget, still served
    db.session.refresh(live)
    assert live.status == "running"


def test_the_budget_list_and_the_marks(spent_wave, any_app):
    other = make_app(spent_wave.owner, "other", monthly_budget="100")
    make_deployment(other, T - H, stopped_at=T, cpu_millicores=1000, memory_mib=0)  # 2 cents of $100
    prices = any_app.config["DORMOUSE"].prices
    rows = budget.rows([spent_wave, other], now=T, prices=prices)
    assert [row.app.title for row in rows] == ["wave", "other"]
    assert rows[0].over and rows[0].spent == pytest.approx(2.1811) and not rows[1].over
    assert budget.over_budget_ids([spent_wave, other], now=T, prices=prices) == {spent_wave.id}
    spent_wave.budget_lifted_until = utc(2026, 4, 1)
    assert budget.over_budget_ids([spent_wave, other], now=T, prices=prices) == set()


# --- pages (the real clock: the spending is made now) ------------------------------


@pytest.fixture
def over_now(alice, any_fake_backend) -> VizApp:
    """alice's wave, over its $0.01 budget this month."""
    wave = make_app(alice, "wave", monthly_budget="0.01")
    now = utcnow()
    start = max(month_bounds(now.year, now.month)[0], now - H)
    make_deployment(wave, start, stopped_at=now, cpu_millicores=BIG, memory_mib=0)
    return wave


def test_the_viz_page_says_why_it_does_not_start_and_does_not_loop(any_app, over_now, any_fake_backend):
    client = any_app.test_client()
    response = client.post("/alice/wave/viz/start", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "is over its budget" in html and "of its $0.01 budget" in html and "admin lifts" in html
    assert "hx-trigger" not in html and "hx-post" not in html  # nothing asks again by itself
    data = client.post("/alice/wave/viz/start", headers=JSON).get_json()
    assert data["status"] == "over-budget" and "$0.01" in data["reason"]
    assert deployments() == 1 and any_fake_backend.calls["create"] == 0


def test_the_api_refuses_an_over_budget_start_with_403(any_app, over_now, any_fake_backend):
    client = any_app.test_client()
    auth = bearer(make_token(db.session.get(VizApp, over_now.id).owner))
    response = client.post("/api/v1/apps/alice/wave/deployment", headers=auth)
    assert response.status_code == 403 and "Retry-After" not in response.headers
    assert response.get_json()["status"] == 403 and "of its $0.01 budget" in response.get_json()["error"]
    assert deployments() == 1 and any_fake_backend.calls["create"] == 0


def test_the_pages_show_over_budget_and_an_admin_lifts_it(any_app, over_now, any_fake_backend):
    make_user("root", admin=True)
    owner = any_app.test_client()
    login(owner, "alice")
    for path in ("/alice/", "/alice/wave/", "/"):
        assert "over budget" in owner.get(path).get_data(as_text=True), path
    html = owner.post("/alice/wave/restart", follow_redirects=True).get_data(as_text=True)
    assert "could not start again" in html and "budget" in html and deployments() == 1

    root = any_app.test_client()
    login(root, "root")
    page = root.get("/admin/").get_data(as_text=True)
    assert 'id="budgets"' in page and "over budget" in page and "Lift for this month" in page
    response = root.post(f"/admin/apps/{over_now.id}/lift-budget", follow_redirects=True)
    assert "may start whatever it costs until" in response.get_data(as_text=True)
    assert "lifted until" in root.get("/admin/").get_data(as_text=True)
    assert "over budget" not in owner.get("/alice/").get_data(as_text=True)
    response = owner.post("/alice/wave/viz/start", headers=JSON)
    assert response.status_code == 200 and response.get_json()["status"] == "starting"
    assert root.post("/admin/apps/9999/lift-budget").status_code == 404


def test_a_running_app_over_budget_is_not_marked(any_app, alice, any_fake_backend):
    wave = make_app(alice, "wave", monthly_budget="0.01")
    now = utcnow()
    start = max(month_bounds(now.year, now.month)[0], now - H)
    make_deployment(wave, start, ready_at=start, cpu_millicores=BIG, memory_mib=0)
    html = any_app.test_client().get("/alice/").get_data(as_text=True)
    assert 'data-state="running"' in html and "over budget" not in html


# --- forms ------------------------------------------------------------------------


def test_the_publish_and_edit_forms_take_a_budget(any_app, alice):
    client = any_app.test_client()
    login(client)
    form = {"title": "plot", "framework": "dash", "source": "dash-wave/app.py:server",
            "cpu": "500m", "memory": "512Mi", "monthly_budget": "12.50"}  # fmt: skip
    assert client.post("/publish", data=form).status_code == 302
    plot = db.session.scalar(select(VizApp).where(VizApp.title == "plot"))
    assert plot.monthly_budget == 12.5
    assert 'value="12.50"' in client.get("/alice/plot/edit").get_data(as_text=True)
    edit = {"source": "dash-wave/app.py:server", "cpu": "500m", "memory": "512Mi", "is_public": "y"}
    assert client.post("/alice/plot/edit", data={**edit, "monthly_budget": ""}).status_code == 302
    db.session.refresh(plot)
    assert plot.monthly_budget is None
    for bad, message in (("0", "more than $0"), ("1.005", "2 decimals"), ("lots", "in dollars")):
        response = client.post("/alice/plot/edit", data={**edit, "monthly_budget": bad})
        assert response.status_code == 400 and message in response.get_data(as_text=True)
        response = client.post("/publish", data={**form, "title": "again", "monthly_budget": bad})
        assert response.status_code == 400 and message in response.get_data(as_text=True)
    db.session.refresh(plot)
    assert plot.monthly_budget is None
    assert db.session.scalar(select(func.count(VizApp.id))) == 1
