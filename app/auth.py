"""Accounts: the login manager's user loader and the user service used by the
login view and ``flask users create``."""

from __future__ import annotations

import functools
import secrets
import unicodedata

from flask import Flask
from flask_login import AnonymousUserMixin
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db, login_manager
from .models import User, VizApp, utcnow
from .slugs import slug_error

MIN_PASSWORD = 8
MAX_PASSWORD = 200


class AccountError(ValueError):
    pass


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to continue."
    login_manager.login_message_category = "info"


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    """The user a session or remember-me cookie names (``id:session_version``),
    if that version is still current and the account is not disabled: a
    logout, a new password or disabling the account ends every such cookie."""
    ident, _, version = str(user_id).partition(":")
    if not ident.isdigit() or not version.isdigit():
        return None  # malformed, or a cookie from before session versions
    user = db.session.get(User, int(ident))
    if user is None or user.session_version != int(version) or not user.is_active:
        return None
    return user


def may_manage(user: User | AnonymousUserMixin, app: VizApp) -> bool:
    """The app's owner and admins: they may see a private app, its crash
    details and logs (``user`` is Flask-Login's current user, maybe anonymous)."""
    return isinstance(user, User) and (user.is_admin or user.id == app.owner_id)


def password_error(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"The password must have at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"The password must have at most {MAX_PASSWORD} characters."
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in password):
        return "The password must not contain control characters (tabs, line breaks, escapes...)."
    return None


def create_user(username: str, password: str, *, is_admin: bool = False) -> User:
    username = username.strip()
    if (err := slug_error(username, "username")) is not None:
        raise AccountError(err)
    if (err := password_error(password)) is not None:
        raise AccountError(err)
    user = User(username=username, is_admin=is_admin)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AccountError(f"The username {username!r} is taken.") from None
    return user


def authenticate(username: str, password: str) -> User | None:
    """The user, if the password is right and the account active. An unknown
    name costs the same password check as a known one, so the answer's timing
    does not tell which names exist."""
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not user.check_password(password) or not user.is_active:
        return None
    return user


@functools.cache
def _dummy_hash() -> str:
    """A hash made the way real ones are, of a password nobody knows."""
    return generate_password_hash(secrets.token_urlsafe(32))


def set_password(user: User, password: str) -> None:
    """A new password; every session and remember-me cookie of the user ends."""
    if (err := password_error(password)) is not None:
        raise AccountError(err)
    user.set_password(password)
    user.end_sessions()
    db.session.commit()


def end_sessions(user: User) -> None:
    user.end_sessions()
    db.session.commit()


def disable_user(user: User) -> list[str]:
    """Disable the account: its sessions end, it cannot log in, and every live
    deployment of its apps is stopped; returns what was stopped."""
    from . import lifecycle

    user.disabled_at = utcnow()
    user.end_sessions()
    db.session.commit()
    stopped = []
    for app in user.apps:
        dep = lifecycle.latest_deployment(app)
        if dep is not None and dep.is_live:
            lifecycle.stop(dep, reason="admin")
            stopped.append(f"{user.username}/{app.title}")
    return stopped


def get_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username))
