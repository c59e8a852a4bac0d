"""An app's output, for its owner and admins only.

``GET /<owner>/<title>/logs`` shows the last lines of the latest deployment's
output (``?deployment=<public_name>`` for another run of the app) and
``GET /<owner>/<title>/logs.txt`` downloads a longer tail. Everyone else gets
the very 404 a missing app gets, logged in or not (no login redirect: that
would tell an anonymous visitor the app exists).

The log is the app's own output, so untrusted: the page shows it only through
Jinja's autoescaping, and the download is an attachment, ``text/plain`` with
``nosniff``, so nothing in it can run on Dormouse's origin.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user

from .. import lifecycle
from ..auth import may_manage
from ..backends import BackendError
from ..models import Deployment, VizApp
from .gallery import visible_app

bp = Blueprint("logs", __name__, url_prefix="/<owner>/<title>")
# for the app page's link to the logs, shown to those who may read them
bp.add_app_template_global(may_manage, "may_manage")

SHOWN_BYTES = 64 * 1024  # the page's tail
DOWNLOAD_BYTES = 256 * 1024  # the download's tail


def _managed_app(owner: str, title: str) -> VizApp:
    app = visible_app(owner, title)
    if not may_manage(current_user, app):
        abort(404)
    return app


def _deployment(app: VizApp) -> Deployment | None:
    """The run named by ``?deployment=`` (404 if the app has no such run), else the latest."""
    public_name = request.args.get("deployment", "")
    if not public_name:
        return lifecycle.latest_deployment(app)
    dep = lifecycle.deployment_by_public_name(app, public_name)
    if dep is None:
        abort(404)
    return dep


def read_output(dep: Deployment | None, max_bytes: int) -> str:
    """The deployment's output from the backend that ran it ("" when there is
    none to read); BackendError when the backend cannot tell."""
    backend = lifecycle.backend()
    if dep is None or not dep.backend_ref or dep.backend != backend.name:
        return ""
    return backend.logs(dep.backend_ref, max_bytes)


@bp.get("/logs")
def page(owner: str, title: str):
    app = _managed_app(owner, title)
    dep = _deployment(app)
    error = ""
    try:
        text = read_output(dep, SHOWN_BYTES)
    except BackendError as exc:
        text, error = "", str(exc)
    response = Response(
        render_template(
            "logs.html",
            app=app,
            deployment=dep,
            text=text,
            error=error,
            shown_kib=SHOWN_BYTES // 1024,
            download_kib=DOWNLOAD_BYTES // 1024,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/logs.txt")
def download(owner: str, title: str):
    app = _managed_app(owner, title)
    dep = _deployment(app)
    if dep is None:
        abort(404)
    try:
        text = read_output(dep, DOWNLOAD_BYTES)
    except BackendError as exc:
        return Response(f"{exc}\n", 503, mimetype="text/plain", headers={"Cache-Control": "no-store"})
    response = Response(text, mimetype="text/plain")  # text/plain; charset=utf-8
    # owner, title and public name are slugs ([a-z0-9-]): nothing to quote
    filename = f"{app.owner.username}-{app.title}-{dep.public_name}.log"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
