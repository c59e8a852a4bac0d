"""The viz page's hot paths for a deployment that is not starting: what a
watching page's poll and ping read and write, through the worker's
:mod:`app.status_memo`.

- :func:`shown` is the app and the deployment a page names, from the memo
  (read at most a second ago) or by **one indexed query** (the deployment
  by its unique public name, joined to its app, the app's owner and the app's
  pending environment). The visibility decision (:func:`may_see`) is made
  for each request from it, as :func:`app.views.gallery.visible_app` makes it.
- :func:`record_ping` writes a ping only when the stored one may be older
  than ACTIVITY_RESOLUTION (the same conditional UPDATE as
  :func:`app.lifecycle.record_ping`), and never when this worker knows it is
  recent.

Neither calls the backend but for the iframe's URL, made once per worker
and deployment (the memo keeps it). A starting deployment is left to
:func:`app.lifecycle.refresh` (its readiness is read from the backend).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask, current_app
from flask_login import AnonymousUserMixin
from sqlalchemy import event, or_, select, update

from . import lifecycle, metrics, usage
from .auth import may_manage
from .backends import BackendError
from .extensions import db
from .models import LIVE_STATUSES, Deployment, Environment, User, VizApp
from .status_memo import EXTENSION, AppSeen, DeploymentSeen, Key, OwnerSeen, Seen, StatusMemo, needs_write

# A write to one of these tables in this process makes the memo read again
# (other processes' writes are seen within the memo's second).
WATCHED = ("deployments", "viz_apps", "environments", "users")
PING_WRITE = "dormouse_ping_write"  # an execution option: the UPDATE of record_ping below


def init_app(app: Flask) -> None:
    """The app's memo, and the hook that empties it when this process
    writes to what it remembers (a stop, an unpublish, a deletion...): a
    worker sees its own writes at once, the others' within a second."""
    found = app.extensions[EXTENSION] = StatusMemo()
    with app.app_context():
        engine = db.engine

    def after_write(conn, cursor, statement: str, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        head = statement.lstrip()[:7].upper()
        if not head.startswith(("UPDATE", "DELETE")) or not any(t in statement for t in WATCHED):
            return
        if context is not None and context.execution_options.get(PING_WRITE):
            return  # the hot path's own ping: it updates its entry itself
        found.forget_reads()

    event.listen(engine, "after_cursor_execute", after_write)


def memo() -> StatusMemo:
    return current_app.extensions[EXTENSION]


def _query(owner: str, title: str, public_name: str):
    return (
        select(
            Deployment.id,
            Deployment.app_id,
            Deployment.status,
            Deployment.status_reason,
            Deployment.stop_reason,
            Deployment.phase,
            Deployment.backend_ref,
            Deployment.created_at,
            Deployment.ready_at,
            Deployment.latest_load_at,
            Deployment.latest_ping_at,
            Deployment.stopped_at,
            Deployment.keep_awake_until,
            VizApp.owner_id,
            VizApp.framework,
            VizApp.is_public,
            VizApp.env_key,
            VizApp.pending_env_key,
            Environment.status.label("pending_status"),
        )  # fmt: skip
        .select_from(Deployment)
        .join(VizApp, VizApp.id == Deployment.app_id)
        .join(User, User.id == VizApp.owner_id)
        .outerjoin(Environment, Environment.key == VizApp.pending_env_key)
        .where(
            Deployment.public_name == public_name,
            VizApp.title == title,
            VizApp.deleted_at.is_(None),
            User.username == owner,
        )
    )


def read(key: Key) -> Seen | None:
    """The app at /<owner>/<title>/ (not deleted) and its deployment of that
    public name, by one query; None if there is no such pair."""
    owner, title, public_name = key
    row = db.session.execute(_query(owner, title, public_name)).first()
    db.session.commit()  # end the read transaction: nothing stays open between polls
    if row is None:
        return None
    published = bool(row.is_public) and (
        row.env_key is not None or row.pending_env_key is None or row.pending_status == "ready"
    )  # managing.is_published
    app = AppSeen(row.app_id, row.owner_id, OwnerSeen(owner), title, row.framework, published)
    return Seen(
        DeploymentSeen(
            id=row.id,
            app_id=row.app_id,
            app=app,
            public_name=public_name,
            status=row.status,
            status_reason=row.status_reason or "",
            stop_reason=row.stop_reason,
            phase=row.phase or "",
            backend_ref=row.backend_ref,
            created_at=row.created_at,
            ready_at=row.ready_at,
            latest_load_at=row.latest_load_at,
            latest_ping_at=row.latest_ping_at,
            stopped_at=row.stopped_at,
            keep_awake_until=row.keep_awake_until,
            url=_url(row.status, row.backend_ref),
        ),  # fmt: skip
        read_at=datetime.min.replace(tzinfo=row.created_at.tzinfo),  # set by shown()
    )


def _url(status: str, backend_ref: str | None) -> str | None:
    """The iframe's URL of a running deployment: kept from the last read of
    the same reference, else made by the backend (once per worker)."""
    if status != "running" or not backend_ref:
        return None
    m = memo()
    kept = m.url(backend_ref)
    if kept is not None:
        return kept
    try:
        made = lifecycle.backend().url(backend_ref)
    except BackendError:  # an unreadable ref: the next refresh finds it gone
        return None
    m.note_url(backend_ref, made)
    return made


def shown(owner: str, title: str, public_name: str, *, now: datetime) -> Seen | None:
    """What the page naming ``public_name`` shows, read at most a second
    before ``now``; None if no such app and deployment. A starting
    deployment is returned but not remembered (it changes by itself)."""
    key = (owner, title, public_name)
    found = memo().seen(key, now=now)
    if found is not None:
        return found
    found = read(key)
    if found is None:
        return None
    found = Seen(found.deployment, read_at=now)
    if found.deployment.status != "starting":
        memo().remember(key, found)
    return found


def may_see(user: User | AnonymousUserMixin, app: AppSeen) -> bool:
    """Published apps for everyone; the others for their owner and admins."""
    return app.published or may_manage(user, app)  # type: ignore[arg-type]


def record_ping(seen: Seen, *, now: datetime) -> Seen:
    """A ping from a focused page showing ``seen``'s live deployment: written
    only if the stored ping may be older than ACTIVITY_RESOLUTION (as far as
    this worker knows; the UPDATE checks it again), so the stored ping lags
    the latest one by at most that. Returns what the page is answered."""
    metrics.record_ping()
    dep = seen.deployment
    if not dep.is_live:
        return seen
    settings = lifecycle.settings()
    m = memo()
    if not _needs_write(m, dep.id, now, settings.activity_resolution):
        return seen
    cutoff = now - timedelta(seconds=settings.activity_resolution)
    result = db.session.execute(
        update(Deployment)
        .where(
            Deployment.id == dep.id,
            Deployment.status.in_(LIVE_STATUSES),
            or_(Deployment.latest_ping_at.is_(None), Deployment.latest_ping_at <= cutoff),
        )
        .values(
            latest_ping_at=now,
            viewer_seconds=usage.ping_credit(
                dep.latest_ping_at,
                now,
                ping_interval=settings.ping_interval,
                activity_resolution=settings.activity_resolution,
            ),  # fmt: skip
        )
        .execution_options(synchronize_session=False, **{PING_WRITE: True})
    )
    db.session.commit()
    key = (dep.app.owner.username, dep.app.title, dep.public_name)
    if result.rowcount == 1:
        return m.pinged(key, seen, now)
    # another worker's ping is newer than the cutoff, or the deployment is no
    # longer live: either way nothing to write until the next resolution;
    # read it again next time
    m.note_ping(dep.id, cutoff + timedelta(microseconds=1))
    m.forget(key)
    return seen


def _needs_write(m: StatusMemo, deployment_id: int, now: datetime, resolution: float) -> bool:
    return needs_write(m.known_ping(deployment_id), now=now, resolution=resolution)
