"""The admin dashboard, for admins only: everyone else, anonymous included,
gets the 404 any missing page gets (the dashboard's existence is not told).

``GET /admin/`` is the page; ``GET /admin/live`` its one partial (the totals
and the live table), which the page asks for every few seconds while it is
visible (``static/js/admin.js``). The page also lists the apps at or near
their monthly budget, each with a button that lifts it for the rest of the
month. Actions are plain forms (POST + CSRF),
answered with a redirect back and a message.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from .. import admin, budget, dashboard, lifecycle
from ..extensions import db
from ..models import Deployment, User, VizApp, utcnow

bp = Blueprint("admin", __name__, url_prefix="/admin")

REFRESH_SECONDS = 5  # how often a visible dashboard asks for its live partial
bp.add_app_template_filter(dashboard.duration, "duration")


@bp.before_request
def admins_only():
    if not (current_user.is_authenticated and current_user.is_admin):
        abort(404)


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response


def _live_context() -> dict[str, object]:
    now = utcnow()
    settings = current_app.config["DORMOUSE"]
    return {
        "now": now,
        "rows": dashboard.live_rows(now, lifecycle.limits(settings)),
        "totals": dashboard.totals(now, settings.prices),
        "sweep_interval": settings.sweep_interval,
        "refresh_seconds": REFRESH_SECONDS,
        "max_minutes": admin.MAX_KEEP_AWAKE_MINUTES,
    }


@bp.get("/")
def index():
    settings = current_app.config["DORMOUSE"]
    page = render_template(
        "admin/index.html",
        budgets=budget.near_or_over(now=utcnow(), prices=settings.prices),
        failed=dashboard.failed(),
        actions=dashboard.recent_actions(),
        **_live_context(),
    )
    return _no_store(make_response(page))


@bp.get("/live")
def live():
    return _no_store(make_response(render_template("admin/_live.html", **_live_context())))


def _deployment(public_name: str) -> Deployment:
    dep = db.session.scalar(select(Deployment).where(Deployment.public_name == public_name))
    if dep is None:
        abort(404)
    return dep


def _back():
    return redirect(url_for("admin.index"))


@bp.post("/deployments/<public_name>/stop")
def stop(public_name: str):
    dep = _deployment(public_name)
    if admin.stop_now(dep, current_user, now=utcnow()):
        flash(f"Stopped {dep.app.slug_path}.", "success")
    else:
        flash(f"{dep.app.slug_path} was not running.", "info")
    return _back()


@bp.post("/deployments/<public_name>/keep-awake")
def keep_awake(public_name: str):
    dep = _deployment(public_name)
    minutes = request.form.get("minutes", "")
    try:
        if not minutes.isdigit():
            raise admin.AdminError("Give a number of minutes.")
        until = admin.keep_awake(dep, int(minutes), current_user, now=utcnow())
    except admin.AdminError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{dep.app.slug_path} stays awake until {until:%H:%M} UTC.", "success")
    return _back()


@bp.post("/apps/<int:app_id>/lift-budget")
def lift_budget(app_id: int):
    app = db.session.get(VizApp, app_id)
    if app is None or app.deleted_at is not None:
        abort(404)
    try:
        until = admin.lift_budget(app, current_user, now=utcnow())
    except admin.AdminError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{app.slug_path} may start whatever it costs until {until:%Y-%m-%d} (UTC).", "success")
    return _back()


@bp.get("/history")
def history():
    filters = dashboard.HistoryFilter.from_args(request.args.to_dict())
    page = request.args.get("page", "1")
    pagination = db.paginate(
        dashboard.history_query(filters, utcnow()),
        page=int(page) if page.isdigit() and int(page) > 0 else 1,
        per_page=dashboard.HISTORY_PAGE,
        error_out=False,
    )
    response = make_response(
        render_template(
            "admin/history.html",
            filters=filters,
            pagination=pagination,
            reasons=dashboard.STOP_REASONS,
            windows=dashboard.WINDOWS,
        )
    )
    return _no_store(response)


@bp.get("/users")
def users():
    return _no_store(make_response(render_template("admin/users.html", rows=dashboard.user_rows())))


def _user(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        abort(404)
    return user


@bp.post("/users/<username>/admin")
def set_admin(username: str):
    user = _user(username)
    make = request.form.get("admin") == "1"
    try:
        admin.set_admin(user, make, current_user)
    except admin.AdminError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{user.username} is {'now' if make else 'no longer'} an admin.", "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<username>/disable")
def disable(username: str):
    user = _user(username)
    try:
        stopped = admin.disable(user, current_user)
    except admin.AdminError as exc:
        flash(str(exc), "error")
    else:
        apps = f"; stopped {', '.join(stopped)}" if stopped else ""
        flash(f"{user.username} is disabled: logged out everywhere{apps}.", "success")
    return redirect(url_for("admin.users"))
