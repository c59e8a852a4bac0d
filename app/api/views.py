"""The API's routes: thin views over the modules the pages use (publishing,
managing, lifecycle, usage, costs), with the owner's page's rules: anyone
who may see an app reads it, its deployment's status, and may start it;
only its owner and admins edit, delete, stop it or read its statistics;
everyone else gets the very 404 a missing app gets (``visible_app``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from flask_login import current_user

from .. import app_envs, app_state, budget, costs, lifecycle, managing, usage, usage_report
from ..auth import may_manage
from ..editing import edit, input_of
from ..extensions import csrf
from ..models import VizApp, utcnow
from ..publishing import AppInput, PublishError, publish
from ..views.gallery import visible_app
from ..views.viz import BUSY_RETRY, ENV_FAILED, PREPARE_RETRY
from . import bearer, openapi
from .serialize import app_json, deployment_json, stats_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens only: a browser's cookies never authenticate a call
bp.before_request(bearer.authenticate)

MAX_STATS_DAYS = 366
TEXT_FIELDS = AppInput.TEXT_FIELDS  # JSON strings (env may be an object, embed_origins a list)
FIXED_FIELDS = ("title", "framework")  # name its URLs and how it runs: not editable


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _managed(owner: str, title: str) -> VizApp:
    app = visible_app(owner, title)
    if not may_manage(current_user, app):
        abort(404)
    return app


def _user():
    return current_user._get_current_object()


def _body() -> dict[str, Any] | Response:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return bearer.error(400, "Send a JSON object (Content-Type: application/json).")
    return data


def _text(name: str, value: object) -> str:
    """A field as the form would hold it: text; ``env`` may be an object and
    ``embed_origins`` a list. ValueError says why not."""
    if name == "env" and isinstance(value, dict):
        if not all(isinstance(v, str) for v in value.values()):
            raise ValueError("Give each variable's value as a string.")
        if any("=" in key or "\n" in key or "\r" in key for key in value):
            raise ValueError("A variable's name cannot hold '=' or a line break.")
        if any("\n" in v or "\r" in v for v in value.values()):
            raise ValueError("A variable's value cannot hold a line break.")
        return "\n".join(f"{key}={val}" for key, val in value.items())
    if name == "embed_origins" and isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("Give each origin as a string.")
        return "\n".join(value)
    if isinstance(value, str):
        return value
    if name == "port" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError("Write this field as a string.")


def _fields(data: dict[str, Any], base: AppInput) -> AppInput | Response:
    """``base`` with the JSON body's fields in; 422 naming every wrong field."""
    errors: dict[str, str] = {}
    values = dict(vars(base))
    for name, value in data.items():
        if name == "is_public":
            if isinstance(value, bool):
                values[name] = value
            else:
                errors[name] = "Write true or false."
        elif name in TEXT_FIELDS:
            try:
                values[name] = _text(name, value)
            except ValueError as exc:
                errors[name] = str(exc)
        else:
            errors[name] = "There is no such field."
    if errors:
        return _invalid(errors)
    return AppInput(**values)


def _invalid(errors: dict[str, str]) -> Response:
    return bearer.error(422, "The app is not valid; see the fields.", fields=errors)


def _app_response(app: VizApp, status: int = 200) -> Response:
    state = app_state.state_of(lifecycle.latest_deployment(app))
    response = jsonify(app_json(app, state, _user()))
    response.status_code = status
    return response


@bp.get("/openapi.json", endpoint="openapi")
def openapi_document():
    return jsonify(openapi.document())


@bp.get("/apps")
def list_apps():
    apps = managing.visible_apps(current_user)
    states = app_state.states([app.id for app in apps])
    return jsonify({"apps": [app_json(app, states[app.id], _user()) for app in apps]})


@bp.post("/apps")
def publish_app():
    data = _body()
    if isinstance(data, Response):
        return data
    missing = {name: "This field is required." for name in FIXED_FIELDS if name not in data}
    if missing:
        return _invalid(missing)
    fields = _fields(data, AppInput(title="", framework=""))
    if isinstance(fields, Response):
        return fields
    try:
        app = publish(_user(), fields, current_app.config["DORMOUSE"])
    except PublishError as exc:
        return _invalid(exc.errors)
    response = _app_response(app, 201)
    response.headers["Location"] = url_for("api.get_app", owner=app.owner.username, title=app.title)
    return response


@bp.get("/apps/<owner>/<title>")
def get_app(owner: str, title: str):
    return _app_response(visible_app(owner, title))


@bp.patch("/apps/<owner>/<title>")
def edit_app(owner: str, title: str):
    """Change an app as its edit form does: the fields sent, the rest kept
    (environment values too: ``env`` replaces the variables, and
    ``NAME=********`` keeps one's stored value). Made private, its running
    deployment stops."""
    app = _managed(owner, title)
    data = _body()
    if isinstance(data, Response):
        return data
    fixed = {
        name: "It cannot be changed."
        for name in FIXED_FIELDS
        if name in data and data[name] != getattr(app, name)
    }
    if fixed:
        return _invalid(fixed)
    fields = _fields({k: v for k, v in data.items() if k not in FIXED_FIELDS}, input_of(app))
    if isinstance(fields, Response):
        return fields
    was_public = app.is_public
    try:
        edit(app, fields, current_app.config["DORMOUSE"])
    except PublishError as exc:
        return _invalid(exc.errors)
    if was_public and not app.is_public:
        managing.stop_app(app, managing.reason_for(current_user, app))
    return _app_response(app)


@bp.delete("/apps/<owner>/<title>")
def delete_app(owner: str, title: str):
    app = _managed(owner, title)
    managing.delete(app, managing.reason_for(current_user, app))
    return "", 204


@bp.get("/apps/<owner>/<title>/deployment")
def deployment(owner: str, title: str):
    app = visible_app(owner, title)
    dep = lifecycle.latest_deployment(app)
    if dep is not None:
        lifecycle.refresh(dep)
    return jsonify(deployment_json(dep, _user()))


@bp.post("/apps/<owner>/<title>/deployment")
def start(owner: str, title: str):
    """Start the app (or find it live): 202 and its status; 503 with
    ``Retry-After`` when a cap on running apps is reached."""
    app = visible_app(owner, title)
    try:
        dep = lifecycle.ensure_deployment(app, now=utcnow())
    except budget.OverBudget as exc:  # not a wait: it starts again next month or when an admin lifts it
        return bearer.error(403, str(exc))
    except app_envs.EnvNotReady as exc:  # its environment is being built (503, ask again) or failed (409)
        if exc.failed:
            return bearer.error(409, str(exc) if may_manage(_user(), app) else ENV_FAILED)
        response = bearer.error(503, str(exc))
        response.headers["Retry-After"] = str(PREPARE_RETRY)
        return response
    except lifecycle.Busy as exc:
        response = bearer.error(503, str(exc))
        response.headers["Retry-After"] = str(BUSY_RETRY)
        return response
    lifecycle.refresh(dep)
    response = jsonify(deployment_json(dep, _user()))
    response.status_code = 202
    return response


@bp.delete("/apps/<owner>/<title>/deployment")
def stop(owner: str, title: str):
    """Stop the app's live deployment, as the owner's Stop button does."""
    app = _managed(owner, title)
    stopped = managing.stop_app(app, managing.reason_for(current_user, app))
    dep = stopped or lifecycle.latest_deployment(app)
    return jsonify({"stopped": stopped is not None, "deployment": deployment_json(dep, _user())})


@bp.get("/apps/<owner>/<title>/stats")
def stats(owner: str, title: str):
    """The app's usage over the last ``days`` days (default 10, as on its stats page) and its cost
    this month so far."""
    app = _managed(owner, title)
    raw = request.args.get("days", str(usage_report.DEFAULT_DAYS))
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= MAX_STATS_DAYS:
        return bearer.error(400, f"days must be a whole number from 1 to {MAX_STATS_DAYS}.")
    now = utcnow()
    numbers = usage.app_stats(app.id, now - timedelta(days=int(raw)), now)
    settings = current_app.config["DORMOUSE"]
    month_cost = costs.app_month_cost(app.id, now.year, now.month, settings.prices, now)
    return jsonify(stats_json(numbers, month_cost))
