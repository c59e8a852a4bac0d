"""The viz page and its HTMX endpoints.

``GET .../viz/`` renders the page and starts nothing (crawlers and link
previews must not spin up apps). The page itself POSTs ``.../viz/start`` once
it loads; that records the full page load and ensures a deployment. One status
partial answers the start, every poll and every ping: progress while starting
(and keep polling), the iframe once running (HTTP 286 ends the poll), the
reason and a retry button when failed, why it stopped and a wake button when
stopped (the page wakes an app that went to sleep by itself when it is
visible and focused, static/js/viz.js), and why it may not start when a cap
or its budget says no. The words are in :mod:`app.viewer_notes`, the start
estimate in :mod:`app.start_estimate`.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, abort, current_app, g, jsonify, make_response, render_template, request
from flask_login import current_user

from .. import (
    app_envs,
    budget,
    lifecycle,
    rate_limits,
    running_partial,
    start_estimate,
    start_schedule,
    tokens,
    viewer_notes,
    watching,
)
from ..auth import may_manage
from ..backends import BackendError
from ..idle import IdleLimits
from ..models import Deployment, VizApp, utcnow
from ..security import EMBEDDERS
from ..status_memo import AppSeen, DeploymentSeen, Seen
from .gallery import visible_app
from .gate import TOKEN_PARAM

bp = Blueprint("viz", __name__, url_prefix="/<owner>/<title>/viz")

STOP_POLLING = 286  # htmx: stop polling this element
BUSY_RETRY = 15  # seconds before a page that found the server full asks again
PREPARE_RETRY = 3  # seconds before a page whose app's environment is being built asks again
ENV_FAILED = "The app cannot start: its packages could not be installed. Its owner can see why on this page."
NOT_STARTED = "The app could not start. Its owner can see why on this page."


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _estimate(dep: Deployment) -> dict[str, float] | None:
    """While starting only: the app's usual start time (cached per process,
    so a poll of a running app never asks)."""
    if dep.status != "starting":
        return None
    found = start_estimate.for_app(dep.app_id)
    return None if found is None else {"typical": round(found.typical), "slow": round(found.slow)}


def status_payload(dep: Deployment | DeploymentSeen | None) -> dict[str, object]:
    """The status as plain data, for JSON and for the partial."""
    if dep is None:
        return {
            "status": "none",
            "reason": "",
            "stop_reason": None,
            "phase": "",
            "url": None,
            "public_name": None,
            "created_at": None,
            "ready_at": None,
            "latest_load_at": None,
            "latest_ping_at": None,
            "stopped_at": None,
            "elapsed": 0,
            "estimate": None,
            "sleep_notice": "",
            "why_stopped": "",
            "wakes_by_itself": False,
        }
    url = None
    if isinstance(dep, DeploymentSeen):
        url = dep.url  # made once per worker (app/watching.py)
    elif dep.status == "running" and dep.backend_ref:
        try:
            url = lifecycle.backend().url(dep.backend_ref)
        except BackendError:  # an unreadable ref: the next refresh finds it gone
            url = None
    reason = dep.status_reason or ""
    if dep.status == "failed" and not may_manage(current_user, dep.app):
        reason = NOT_STARTED  # the app's output is for its owner and admins only
    return plain_payload(dep, now=utcnow(), limits=lifecycle.limits(), url=url, reason=reason)


def plain_payload(
    dep: Deployment | DeploymentSeen, *, now: datetime, limits: IdleLimits, url: str | None, reason: str
) -> dict[str, object]:
    """:func:`status_payload` of a deployment once its URL and the reason
    its viewer may read are known (no request, no database; app/hot_wsgi.py
    calls it too)."""
    return {
        "status": dep.status,
        "reason": reason,
        "stop_reason": dep.stop_reason,
        "phase": dep.phase or "",
        "url": url,
        "public_name": dep.public_name,
        "created_at": _iso(dep.created_at),
        "ready_at": _iso(dep.ready_at),
        "latest_load_at": _iso(dep.latest_load_at),
        "latest_ping_at": _iso(dep.latest_ping_at),
        "stopped_at": _iso(dep.stopped_at),
        "elapsed": int(((dep.ready_at or dep.stopped_at or now) - dep.created_at).total_seconds()),
        "estimate": _estimate(dep),
        "sleep_notice": viewer_notes.sleep_notice(limits, keep_awake_until=dep.keep_awake_until, now=now)
        if dep.status == "running"
        else "",
        "why_stopped": viewer_notes.why_stopped(dep) if dep.status == "stopped" else "",
        "wakes_by_itself": dep.status == "stopped" and viewer_notes.wakes_by_itself(dep),
    }


def _viewer() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else "anonymous"


def _entry_token(public_name: str) -> str:
    """A one-time entry token for this viewer and deployment (only the
    page's partial carries one: the visitor was just checked by
    :func:`visible_app`); Traefik's forwardAuth exchanges it for a cookie."""
    settings = current_app.config["DORMOUSE"]
    return tokens.issue(
        settings.jwt_keys, public_name=public_name, subject=_viewer(), kind=tokens.ENTRY,
        ttl=settings.viz_token_ttl,
    )  # fmt: skip


def _with_token(url: str, token: str) -> str:
    """The iframe's URL carrying ``token``."""
    return f"{url}?{urlencode({TOKEN_PARAM: token})}"


def _wants_json() -> bool:
    if "HX-Request" in request.headers:
        return False
    if request.headers.get("Accept") == "application/json":  # the page's ping: no parsing
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _poll_delay(dep: Deployment | DeploymentSeen | None, slowest: float) -> float:
    """When the page polls a starting deployment next: soon while it is
    young, every ``slowest`` (STATUS_POLL_INTERVAL) later (app/start_schedule.py)."""
    if dep is None:
        return slowest
    return start_schedule.poll_delay(start_schedule.age_of(dep.created_at, utcnow()), slowest)


def status_response(app: VizApp | AppSeen, dep: Deployment | DeploymentSeen | None) -> Response:
    payload = status_payload(dep)
    if _wants_json():  # the hot path's answer: no provider, no sorting (jsonify cost it a tenth)
        response = Response(json.dumps(payload, separators=(",", ":")), mimetype="application/json")
    elif payload["status"] == "running" and payload["url"]:  # the iframe: its text remembered per worker
        url = str(payload["url"])
        rate_limits.count_entry_token(current_app)  # only answers that carry a token count
        token = _entry_token(str(payload["public_name"]))
        text = running_partial.running(
            current_app, app, payload, url, token, lambda token_text: _with_token(url, token_text)
        )
        response = Response(text, status=STOP_POLLING if request.headers.get("HX-Request") else 200)
    else:
        settings = current_app.config["DORMOUSE"]
        response = make_response(
            render_template(
                "partials/viz_status.html",
                app=app,
                s=payload,
                frame_url=None,  # no iframe, so no entry token
                poll_interval=_poll_delay(dep, settings.status_poll_interval),
            )
        )
        if payload["status"] != "starting" and request.headers.get("HX-Request"):
            response.status_code = STOP_POLLING
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "HX-Request, Accept"  # a new response has none yet
    return response


def busy_response(app: VizApp, message: str) -> Response:
    """A cap is reached: say so plainly, and (the page) try again later."""
    payload = {**status_payload(None), "status": "busy", "reason": message}
    if _wants_json():
        response = jsonify(payload)
    else:
        response = make_response(
            render_template("partials/viz_status.html", app=app, s=payload, retry_after=BUSY_RETRY)
        )
    response.status_code = 503
    response.headers["Retry-After"] = str(BUSY_RETRY)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    response.vary.add("Accept")
    return response


def preparing_response(app: VizApp, exc: app_envs.EnvNotReady) -> Response:
    """The app's environment is being built (no deployment was made): say
    so and ask again shortly; or it failed: why, for its owner and admins."""
    reason = str(exc) if not exc.failed or may_manage(current_user, app) else ENV_FAILED
    payload = {
        **status_payload(None),
        "status": "env-failed" if exc.failed else "preparing",
        "reason": reason,
    }
    if _wants_json():
        response = jsonify(payload)
    else:
        response = make_response(
            render_template("partials/viz_status.html", app=app, s=payload, retry_after=PREPARE_RETRY)
        )
    response.status_code = 409 if exc.failed else 503
    if not exc.failed:
        response.headers["Retry-After"] = str(PREPARE_RETRY)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    response.vary.add("Accept")
    return response


def over_budget_response(app: VizApp, message: str) -> Response:
    """The app's monthly budget is spent: say so plainly; the page does not
    ask again (nothing will change until next month or an admin's lift)."""
    payload = {**status_payload(None), "status": "over-budget", "reason": message}
    if _wants_json():
        response = jsonify(payload)
    else:
        response = make_response(render_template("partials/viz_status.html", app=app, s=payload))
    response.status_code = 403
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    response.vary.add("Accept")
    return response


def _shown_deployment(app: VizApp, public_name: str) -> Deployment | None:
    """The deployment the page shows, when it names one; else the latest."""
    if public_name:
        return lifecycle.deployment_by_public_name(app, public_name)
    return lifecycle.latest_deployment(app)


@bp.get("/")
def page(owner: str, title: str):
    app = visible_app(owner, title)
    settings = current_app.config["DORMOUSE"]
    g.setdefault(EMBEDDERS, app.embed_origins or ())  # for the frame-ancestors header
    response = make_response(
        render_template(
            "viz.html",
            app=app,
            ping_interval=settings.ping_interval,
            poll_interval=settings.status_poll_interval,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/start")
def start(owner: str, title: str):
    app = visible_app(owner, title)
    now = utcnow()
    try:
        dep = lifecycle.ensure_deployment(app, now=now)
    except budget.OverBudget as exc:
        return over_budget_response(app, str(exc))
    except app_envs.EnvNotReady as exc:
        return preparing_response(app, exc)
    except lifecycle.Busy as exc:
        return busy_response(app, str(exc))
    lifecycle.record_load(dep, now=now)
    lifecycle.refresh(dep)  # a fresh clock: creating may have taken a while
    return status_response(app, dep)


def _watched(owner: str, title: str, public_name: str, now: datetime) -> Seen | None:
    """The hot path (app/watching.py): the app and the deployment the page
    names, if it is not starting (from the worker's memo, or one query),
    after the visibility check; None to take the general path."""
    if not public_name:
        return None
    seen = watching.shown(owner, title, public_name, now=now)
    if seen is None or seen.deployment.status == "starting":
        return None
    if not watching.may_see(current_user, seen.app):
        abort(404)  # exactly what visible_app answers
    return seen


@bp.get("/status")
def status(owner: str, title: str):
    seen = _watched(owner, title, request.args.get("deployment", ""), utcnow())
    if seen is not None:
        return status_response(seen.app, seen.deployment)
    app = visible_app(owner, title)
    dep = _shown_deployment(app, request.args.get("deployment", ""))
    if dep is not None:
        lifecycle.refresh(dep)
    return status_response(app, dep)


def _form_field(name: str) -> str:
    """One field of a small url-encoded form (a ping's body) without
    Werkzeug's form parser, which cost a ping more than its view; anything
    else goes through ``request.form``."""
    if request.mimetype == "application/x-www-form-urlencoded" and (request.content_length or 0) <= 1024:
        for key, value in parse_qsl(request.get_data(cache=True, as_text=True)):
            if key == name:
                return value
        return ""
    return request.form.get(name, "")


@bp.post("/ping")
def ping(owner: str, title: str):
    """Record that a focused page is showing the app. The page names the
    deployment it shows (``deployment=<public_name>``), so a page whose
    deployment was stopped learns so even if someone else has since started a
    new one, and offers a restart instead of pinging a dead iframe."""
    now = utcnow()
    seen = _watched(owner, title, _form_field("deployment"), now)
    if seen is not None:
        seen = watching.record_ping(seen, now=now)
        return status_response(seen.app, seen.deployment)
    app = visible_app(owner, title)
    dep = _shown_deployment(app, _form_field("deployment"))
    if dep is not None and dep.is_live:
        now = utcnow()
        lifecycle.record_ping(dep, now=now)
        lifecycle.refresh(dep, now=now)
    return status_response(app, dep)


@bp.post("/goodbye")
def goodbye(owner: str, title: str):
    """A page is being closed (its ``pagehide`` beacon, static/js/viz.js):
    one open page fewer for the deployment it names, so the idle policy may
    stop the app soon after its last page closed. The beacon carries the
    CSRF token in its form body; the answer is empty (nobody reads it)."""
    app = visible_app(owner, title)
    public_name = request.form.get("deployment", "")
    dep = lifecycle.deployment_by_public_name(app, public_name) if public_name else None
    if dep is not None and dep.is_live:
        lifecycle.record_goodbye(dep, now=utcnow())
    response = make_response("", 204)
    response.headers["Cache-Control"] = "no-store"
    return response
