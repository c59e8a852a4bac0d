"""Publish a new app."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..forms import PublishForm
from ..publishing import AppInput, PublishError, available_sources, publish

bp = Blueprint("publish", __name__)


@bp.route("/publish", methods=["GET", "POST"])
@login_required
def publish_app():
    form = PublishForm()
    settings = current_app.config["DORMOUSE"]
    if form.validate_on_submit():
        data = AppInput(
            **{name: getattr(form, name).data or "" for name in AppInput.TEXT_FIELDS},
            is_public=bool(form.is_public.data),
        )
        try:
            app = publish(current_user, data, settings)
        except PublishError as exc:
            for name, message in exc.errors.items():
                getattr(form, name).errors.append(message)
        else:
            flash(f"Published {app.slug_path}.", "success")
            return redirect(url_for("gallery.app_page", owner=current_user.username, title=app.title))
    status = 400 if form.errors else 200
    return render_template("publish.html", form=form, sources=available_sources(settings.apps_dir)), status
