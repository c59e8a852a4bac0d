"""Apps, deployments and statistics as the API's JSON (plain dicts)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from flask import url_for

from .. import app_envs
from ..app_state import AppState
from ..auth import may_manage
from ..costs import Cost
from ..models import Deployment, User, VizApp
from ..usage import UsageStats
from ..views import viz


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def app_json(app: VizApp, state: AppState, user: User) -> dict[str, object]:
    """What anyone who may see the app reads; its configuration too for its
    owner and admins (environment variable names only, never their values)."""
    owner, title = app.owner.username, app.title
    data: dict[str, object] = {
        "owner": owner,
        "title": title,
        "framework": app.framework,
        "description": app.description or "",
        "is_public": app.is_public,
        "created_at": iso(app.created_at),
        "page_url": url_for("gallery.app_page", owner=owner, title=title, _external=True),
        "viz_url": url_for("viz.page", owner=owner, title=title, _external=True),
        "state": {"label": state.label, "since": iso(state.since)},
    }
    if may_manage(user, app):
        data["config"] = {
            "source": app.source if not app.callable else f"{app.source}:{app.callable}",
            "image": app.image,
            "command": app.command,
            "port": app.port,
            "cpu": app.cpu,
            "memory": app.memory,
            "env_names": sorted(app.env or {}),
            "embed_origins": list(app.embed_origins or ()),
            "requirements": app.requirements_text,  # the accepted lines; null: the framework's default
            "environment": _environment(app),
        }
    return data


def _environment(app: VizApp) -> dict[str, object]:
    """The app's Python environment (local backend), as its owner's page shows it."""
    env = app_envs.state_of(app)
    return {
        "status": env.label,
        "error": env.error or None,
        "size_bytes": env.size_bytes,
        "pending": env.pending,
    }


def deployment_json(dep: Deployment | None, user: User) -> dict[str, object]:
    """The viz status JSON (:func:`app.views.viz.status_payload`), with a
    failure's reason shown to the token's user only if they manage the app."""
    payload = viz.status_payload(dep)
    if dep is not None and dep.status == "failed":
        payload["reason"] = (dep.status_reason or "") if may_manage(user, dep.app) else viz.NOT_STARTED
    return payload


def _plain(value: object) -> object:
    return iso(value) if isinstance(value, datetime) else value


def stats_json(stats: UsageStats, month_cost: Cost) -> dict[str, object]:
    """An app's usage over a window (:func:`app.usage.app_stats`) and its cost this month so far."""
    usage = {name: _plain(value) for name, value in dataclasses.asdict(stats).items()}
    return {**usage, "month_cost": dataclasses.asdict(month_cost)}
