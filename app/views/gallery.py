"""The gallery, each app's page, robots.txt and the health check."""

from __future__ import annotations

import urllib.request

from flask import Blueprint, Response, abort, current_app, render_template
from flask_login import current_user
from sqlalchemy import text

from .. import app_state, lifecycle, managing
from ..extensions import db
from ..models import VizApp, utcnow

bp = Blueprint("gallery", __name__)


def visible_app(owner: str, title: str) -> VizApp:
    """The app at /<owner>/<title>/, or 404 if it does not exist or the
    visitor may not see it (private apps, and apps whose first environment
    is not ready, are for their owner and admins)."""
    app = managing.visible(owner, title, current_user)
    if app is None:
        abort(404)
    return app


@bp.get("/")
def index():
    apps = managing.visible_apps(current_user)
    states = app_state.with_budgets(
        app_state.states([app.id for app in apps]), apps, now=utcnow(), prices=_prices()
    )
    return render_template("gallery.html", apps=apps, states=states)


def _prices():
    return current_app.config["DORMOUSE"].prices


@bp.get("/<owner>/<title>/")
def app_page(owner: str, title: str):
    app = visible_app(owner, title)
    deployment = lifecycle.latest_deployment(app)
    state = app_state.with_budgets(
        {app.id: app_state.state_of(deployment)}, [app], now=utcnow(), prices=_prices()
    )[app.id]
    return render_template("app_page.html", app=app, deployment=deployment, state=state)


@bp.get("/robots.txt")
def robots():
    # By pattern, so the file names no app: crawlers must not start apps or
    # keep them alive, and robots.txt must not become a list of what exists.
    body = "User-agent: *\nDisallow: /*/*/viz/\nDisallow: /login\nDisallow: /publish\n"
    return Response(body, mimetype="text/plain")


@bp.get("/healthz")
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        return {"status": "error", "database": "unreachable"}, 503
    traefik = current_app.config["DORMOUSE"].traefik_internal_url
    ping = f"{traefik}/ping" if traefik else ""
    if ping and not traefik_answers(ping):  # under the front door, Traefik is the way in
        return {"status": "error", "database": "ok", "traefik": "unreachable"}, 503
    return {"status": "ok", "database": "ok", **({"traefik": "ok"} if ping else {})}


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def traefik_answers(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=2) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False
