"""Log in and out; the account page, where one changes one's password (the
current one required). A new password ends every session and remember-me
cookie of the user (:func:`app.auth.set_password`); this browser is logged in
again at once."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..auth import AccountError, authenticate, end_sessions, set_password
from ..forms import LoginForm, PasswordForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so ?next= cannot send people elsewhere
    (no backslash either: browsers read it as a slash, "/\\evil.com")."""
    if target:
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/")
            and not target.startswith("//")
            and "\\" not in target
        ):
            return target
    return url_for("gallery.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.username.data or "", form.password.data or "")
        if user is not None:
            login_user(user, remember=bool(form.remember.data))
            flash(f"Welcome back, {user.username}.", "success")
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("Wrong username or password.")
    status = 400 if form.errors else 200
    return render_template("login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    end_sessions(current_user)  # this session and every other of this user, remember-me cookies too
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("gallery.index"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    form = PasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if not user.check_password(form.current.data or ""):
            form.current.errors.append("That is not your current password.")
        elif form.new.data != form.repeat.data:
            form.repeat.errors.append("The two new passwords differ.")
        else:
            try:
                set_password(user, form.new.data or "")
            except AccountError as exc:
                form.new.errors.append(str(exc))
            else:
                login_user(user)  # this session goes on, under the new session version
                flash("Your password is changed. Every other session of yours has ended.", "success")
                return redirect(url_for("auth.account"))
    status = 400 if form.errors else 200
    return render_template("account.html", form=form), status
