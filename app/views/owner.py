"""The owner's page and what an owner does to an app.

``GET /<owner>/`` lists the owner's apps with their state: the public ones for
everyone, the private ones too for the owner and admins, who also get the
buttons. ``/<owner>/<title>/edit`` changes an app (not its title or framework);
``POST /<owner>/<title>/stop|restart|unpublish|delete`` act on it and come back
to the owner's page. Anyone but the owner and admins gets the very 404 a
missing app gets. The rules live in :mod:`app.managing` and :mod:`app.publishing`.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import app_state, lifecycle, managing, usage_report
from ..auth import get_user, may_manage
from ..editing import edit, input_of
from ..forms import EditForm
from ..models import User, VizApp, utcnow
from ..publishing import AppInput, PublishError, available_sources
from .gallery import visible_app

bp = Blueprint("owner", __name__)

EDIT_FIELDS = tuple(name for name in AppInput.TEXT_FIELDS if name not in ("title", "framework"))


def _managed_app(owner: str, title: str) -> VizApp:
    app = visible_app(owner, title)
    if not may_manage(current_user, app):
        abort(404)
    return app


def _back(app: VizApp):
    return redirect(url_for("owner.page", owner=app.owner.username))


@bp.get("/<owner>/")
def page(owner: str):
    user = get_user(owner)
    if user is None:
        abort(404)
    manages = isinstance(current_user, User) and (current_user.is_admin or current_user.id == user.id)
    apps = managing.owned_apps(user, with_private=manages)
    latest = app_state.latest_deployments([app.id for app in apps])
    if manages:  # the owner sees a start through: one backend read a second at most (lifecycle.refresh)
        for dep in latest.values():
            lifecycle.refresh(dep)
    prices = current_app.config["DORMOUSE"].prices
    now = utcnow()
    states = app_state.with_budgets(
        {app.id: app_state.state_of(latest.get(app.id)) for app in apps}, apps, now=now, prices=prices
    )
    costs = usage_report.owner_costs(user, apps, now, prices) if manages else None
    return render_template("owner.html", owner=user, apps=apps, states=states, manages=manages, costs=costs)


@bp.route("/<owner>/<title>/edit", methods=["GET", "POST"])
def edit_app(owner: str, title: str):
    app = _managed_app(owner, title)
    settings = current_app.config["DORMOUSE"]
    form = EditForm(data=vars(input_of(app))) if request.method == "GET" else EditForm()
    if form.validate_on_submit():
        was_public = app.is_public
        data = AppInput(
            title=app.title,
            framework=app.framework,
            **{name: getattr(form, name).data or "" for name in EDIT_FIELDS},
            is_public=bool(form.is_public.data),
        )
        try:
            edit(app, data, settings)
        except PublishError as exc:
            for name, message in exc.errors.items():
                getattr(form, name).errors.append(message)
        else:
            message = f"Saved {app.slug_path}. Changes to how it runs apply when it next starts."
            if was_public and not app.is_public and managing.stop_app(app, _reason(app)):
                message += " It is private now, so its running deployment was stopped."
            flash(message, "success")
            return _back(app)
    status = 400 if form.errors else 200
    return render_template(
        "edit.html", app=app, form=form, sources=available_sources(settings.apps_dir)
    ), status


def _reason(app: VizApp) -> str:
    return managing.reason_for(current_user, app)


@bp.post("/<owner>/<title>/stop")
def stop(owner: str, title: str):
    app = _managed_app(owner, title)
    if managing.stop_app(app, _reason(app)):
        flash(f"Stopped {app.slug_path}.", "success")
    else:
        flash(f"{app.slug_path} was not running.", "info")
    return _back(app)


@bp.post("/<owner>/<title>/restart")
def restart(owner: str, title: str):
    app = _managed_app(owner, title)
    try:
        managing.restart_app(app, _reason(app))
    except lifecycle.Busy as exc:
        flash(f"{app.slug_path} is stopped and could not start again: {exc}", "error")
    else:
        flash(f"Restarted {app.slug_path}: a new deployment is starting.", "success")
    return _back(app)


@bp.post("/<owner>/<title>/unpublish")
def unpublish(owner: str, title: str):
    app = _managed_app(owner, title)
    stopped = managing.unpublish(app, _reason(app))
    flash(
        f"{app.slug_path} is private now: out of the gallery, for its owner and admins only"
        + (", and its running deployment was stopped." if stopped else "."),
        "success",
    )
    return _back(app)


@bp.post("/<owner>/<title>/delete")
def delete(owner: str, title: str):
    app = _managed_app(owner, title)
    slug_path = app.slug_path
    managing.delete(app, _reason(app))
    flash(f"Deleted {slug_path}. Its usage history is kept.", "success")
    return _back(app)
