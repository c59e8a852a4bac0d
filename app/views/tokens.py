"""The tokens page, ``/account/tokens``: a user's API tokens (label, created,
expires, last used, revoked), a form to make one - shown once, on the answer
to that POST, never again - and a revoke button on each. One sees and revokes
only one's own tokens; another's token is the 404 a missing one is. The rules
are in :mod:`app.api_tokens`."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from .. import api_tokens
from ..forms import TOKEN_LIFETIMES, TokenForm
from ..models import utcnow

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")


def _form(*, blank: bool = False) -> TokenForm:
    """The form; ``blank``: empty again (after a token was made), not the request's values."""
    max_ttl = current_app.config["DORMOUSE"].api_token_max_ttl
    form = TokenForm(formdata=None) if blank else TokenForm()
    form.ttl.choices = [(seconds, words) for seconds, words in TOKEN_LIFETIMES if seconds <= max_ttl] or [
        (int(max_ttl), f"{int(max_ttl)} seconds")
    ]
    return form


def _page(form: TokenForm, token: str | None = None, status: int = 200):
    user = current_user._get_current_object()
    response = current_app.make_response(
        (
            render_template(
                "tokens.html",
                form=form,
                token=token,
                rows=api_tokens.tokens_of(user),
                now=utcnow(),
                state=api_tokens.state,
            ),
            status,
        )
    )
    response.headers["Cache-Control"] = "no-store"  # the page may show a token once
    return response


@bp.route("", methods=["GET", "POST"])
@login_required
def page():
    form = _form()
    if form.validate_on_submit():
        settings = current_app.config["DORMOUSE"]
        try:
            token, _row = api_tokens.issue(
                current_user._get_current_object(), ttl=form.ttl.data, label=form.label.data or "",
                jwt_keys=settings.jwt_keys, max_ttl=settings.api_token_max_ttl,
            )  # fmt: skip
        except api_tokens.ApiTokenError as exc:
            form.label.errors.append(str(exc))
        else:
            return _page(_form(blank=True), token=token, status=201)
    return _page(form, status=400 if form.errors else 200)


@bp.post("/<jti>/revoke")
@login_required
def revoke(jti: str):
    row = api_tokens.find(jti)
    if row is None or row.user_id != current_user.id:
        abort(404)
    if api_tokens.revoke(row):
        flash(f"Revoked the token {row.label or row.jti[:8]!r}. It no longer works.", "success")
    else:
        flash("That token was revoked already.", "info")
    return redirect(url_for("tokens.page"))
