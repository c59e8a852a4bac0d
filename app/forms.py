"""WTForms forms. They check shape only; the rules about what a valid app or
account is live in :mod:`app.publishing` and :mod:`app.auth`."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from .publishing import DEFAULT_PORTS


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=40)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me logged in")


class PublishForm(FlaskForm):
    title = StringField(
        "Title", validators=[DataRequired(), Length(max=40)],
        description="Lowercase letters, digits and hyphens; it becomes part of the URL.",
    )
    framework = SelectField("Framework", choices=[SelectChoice("dash", "Dash / Plotly"), SelectChoice("bokeh", "Bokeh")])
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    source = StringField(
        "Source", validators=[Optional(), Length(max=500)],
        description="A Python file in the apps folder; for Dash add the WSGI callable, "
        "e.g. dash-wave/app.py:server.",
    )
    image = StringField(
        "Container image", validators=[Optional(), Length(max=500)],
        description="For cluster deployments, e.g. ghcr.io/you/app:1.0.",
    )
    port = StringField(
        "Port", validators=[Optional(), Length(max=5)],
        description=f"The port the app listens on in its container "
        f"(default {DEFAULT_PORTS['dash']} for Dash, {DEFAULT_PORTS['bokeh']} for Bokeh).",
    )
    cpu = StringField("CPU", default="500m", validators=[Length(max=20)])
    memory = StringField("Memory", default="512Mi", validators=[Length(max=20)])
    env = TextAreaField(
        "Environment", validators=[Optional(), Length(max=10000)],
        description="One KEY=VALUE per line.",
    )
    is_public = BooleanField("Listed in the gallery and open to everyone", default=True)
