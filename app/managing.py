"""What an app's owner (or an admin) does to it from the owner's page: stop or
restart its deployment, unpublish it, delete it. The views, and any command
that wants the same, call these; each stop goes through
:func:`app.lifecycle.stop`, so it is the same conditional update the sweep uses.

Who acted is told by the stop reason: ``owner`` when the owner did, ``admin``
when an admin did it to someone else's app.
"""

from __future__ import annotations

from flask_login import AnonymousUserMixin
from sqlalchemy import and_, or_, select

from . import lifecycle
from .auth import may_manage
from .extensions import db
from .models import Deployment, Environment, User, VizApp, utcnow


def reason_for(user: User | AnonymousUserMixin, app: VizApp) -> str:
    return "owner" if isinstance(user, User) and user.id == app.owner_id else "admin"


def find(owner: str, title: str) -> VizApp | None:
    """The app at /<owner>/<title>/ that is not deleted."""
    return db.session.scalar(
        select(VizApp)
        .join(User)
        .where(User.username == owner, VizApp.title == title, VizApp.deleted_at.is_(None))
    )


def published():
    """The SQL rule for an app shown to others (besides being public): it
    has an environment to run in, or is not waiting for its first one (a
    pending environment that is ready counts, even before the switch)."""
    return or_(
        VizApp.env_key.is_not(None),
        VizApp.pending_env_key.is_(None),
        VizApp.pending_env_key.in_(select(Environment.key).where(Environment.status == "ready")),
    )


def is_published(app: VizApp) -> bool:
    """:func:`published` for one app: public, and not waiting for its first
    environment (being prepared or failed: its owner's and admins' only)."""
    if not app.is_public:
        return False
    if app.env_key is not None or app.pending_env_key is None:
        return True
    row = db.session.get(Environment, app.pending_env_key)
    return row is not None and row.status == "ready"


def visible(owner: str, title: str, user: User | AnonymousUserMixin) -> VizApp | None:
    """The app at /<owner>/<title>/ if ``user`` may see it: a published one
    for everyone, the others (private, or first environment not ready) for
    their owner and admins; else None, whether it exists or not."""
    app = find(owner, title)
    if app is None or not (is_published(app) or may_manage(user, app)):
        return None
    return app


def start_joins(owner: str, title: str, user: User | AnonymousUserMixin) -> bool:
    """Whether ``user`` starting /<owner>/<title>/ now would only join its
    live deployment (and create nothing). False for an app ``user`` may not
    see, live or not, so that nothing answered differently tells a stranger
    whether a private app is running."""
    app = visible(owner, title, user)
    return app is not None and lifecycle.live_deployment(app) is not None


def visible_apps(user: User | AnonymousUserMixin) -> list[VizApp]:
    """The apps (not deleted) ``user`` may see, newest first: the public ones
    whose first environment is ready (:func:`published`), a user's own
    private or unready ones too, and every app for an admin."""
    query = (
        select(VizApp)
        .join(User)
        .where(VizApp.deleted_at.is_(None))
        .order_by(VizApp.created_at.desc(), VizApp.id.desc())
    )
    if not isinstance(user, User):
        query = query.where(VizApp.is_public.is_(True), published())
    elif not user.is_admin:
        query = query.where(or_(and_(VizApp.is_public.is_(True), published()), VizApp.owner_id == user.id))
    return list(db.session.scalars(query))


def owned_apps(owner: User, *, with_private: bool) -> list[VizApp]:
    """The owner's apps not deleted, newest first; private ones (and those
    waiting for their first environment) only if asked."""
    query = select(VizApp).where(VizApp.owner_id == owner.id, VizApp.deleted_at.is_(None))
    if not with_private:
        query = query.where(VizApp.is_public.is_(True), published())
    return list(db.session.scalars(query.order_by(VizApp.created_at.desc(), VizApp.id.desc())))


def stop_app(app: VizApp, reason: str) -> Deployment | None:
    """Stop the app's live deployment, if it has one; return it if this call stopped it."""
    dep = lifecycle.live_deployment(app)
    if dep is not None and lifecycle.stop(dep, reason=reason, detail=f"stopped by its {reason}"):
        return dep
    return None


def restart_app(app: VizApp, reason: str) -> Deployment:
    """Stop the live deployment (if any) and start a new one, with the app as
    it is now (an edit applies). :class:`app.lifecycle.Busy` if a cap is
    reached; the old deployment is stopped either way."""
    stop_app(app, reason)
    return lifecycle.ensure_deployment(app)


def unpublish(app: VizApp, reason: str) -> Deployment | None:
    """Take the app out of the gallery (private: its owner and admins only)
    and stop its live deployment, so no other viewer keeps watching it (an
    app cookie already handed out would otherwise last its session)."""
    app.is_public = False
    db.session.commit()
    return stop_app(app, reason)


def delete(app: VizApp, reason: str) -> Deployment | None:
    """Delete the app: gone from every page and command at once, its live
    deployment stopped, its row and its deployments kept for usage and cost
    history; its title may be published again."""
    app.deleted_at = utcnow()
    app.is_public = False
    db.session.commit()
    return stop_app(app, reason)  # after the mark: no page can start it again meanwhile
