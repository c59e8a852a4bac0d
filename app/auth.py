"""Accounts: the login manager's user loader and the user service used by the
login view and ``flask users create``."""

from __future__ import annotations

from flask import Flask
from flask_login import AnonymousUserMixin
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .extensions import db, login_manager
from .models import User, VizApp
from .slugs import slug_error

MIN_PASSWORD = 8


class AccountError(ValueError):
    pass


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to continue."
    login_manager.login_message_category = "info"


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    try:
        return db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None


def may_manage(user: User | AnonymousUserMixin, app: VizApp) -> bool:
    """The app's owner and admins: they may see a private app, its crash
    details and logs (``user`` is Flask-Login's current user, maybe anonymous)."""
    return isinstance(user, User) and (user.is_admin or user.id == app.owner_id)


def create_user(username: str, password: str, *, is_admin: bool = False) -> User:
    username = username.strip()
    if (err := slug_error(username, "username")) is not None:
        raise AccountError(err)
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"The password must have at least {MIN_PASSWORD} characters.")
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
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.check_password(password):
        return None
    return user


def get_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username))
