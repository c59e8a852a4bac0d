"""The usage and cost pages.

``GET /<owner>/<title>/stats`` shows one app's usage over a chosen window
(``?days=``, one of :data:`app.usage_report.WINDOW_DAYS`), its three plots and
its monthly costs, to the app's owner and admins; everyone else gets the very
404 a missing app gets (as the logs do). ``GET /admin/stats`` shows the whole
site's, with this month's cost per owner and per app, to admins only (404 for
everyone else, as the rest of /admin/). What they show is gathered by
:mod:`app.usage_report`.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, make_response, render_template, request
from flask_login import current_user

from .. import usage_report
from ..auth import may_manage
from ..models import utcnow
from .gallery import visible_app

bp = Blueprint("stats", __name__)


def _page(template: str, status: int, **context: object):
    response = make_response(render_template(template, windows=usage_report.WINDOW_DAYS, **context), status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<owner>/<title>/stats")
def app_stats(owner: str, title: str):
    app = visible_app(owner, title)
    if not may_manage(current_user, app):
        abort(404)
    days, error = usage_report.parse_days(request.args.get("days"))
    report = usage_report.app_report(app, days, utcnow(), current_app.config["DORMOUSE"].prices)
    return _page("stats.html", 400 if error else 200, app=app, report=report, error=error)


@bp.get("/admin/stats")
def site_stats():
    if not (current_user.is_authenticated and current_user.is_admin):
        abort(404)
    days, error = usage_report.parse_days(request.args.get("days"))
    report = usage_report.site_report(days, utcnow(), current_app.config["DORMOUSE"].prices)
    return _page("admin/stats.html", 400 if error else 200, report=report, error=error)
