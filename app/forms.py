"""WTForms forms. They check shape only; the rules about what a valid app or
account is live in :mod:`app.publishing` and :mod:`app.auth`."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from .backends.frameworks import FRAMEWORKS


def _framework_choices() -> list[SelectChoice]:
    """The registry's frameworks, asked each time a form is made."""
    return [SelectChoice(fw.name, fw.label) for fw in FRAMEWORKS.values()]


def _default_ports() -> str:
    return ", ".join(f"{fw.default_port} for {fw.badge}" for fw in FRAMEWORKS.values())


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=40)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me logged in")


def _optional_text(label: str, max_length: int, description: str) -> StringField:
    return StringField(label, validators=[Optional(), Length(max=max_length)], description=description)


class PublishForm(FlaskForm):
    title = StringField(
        "Title",
        validators=[DataRequired(), Length(max=40)],
        description="Lowercase letters, digits and hyphens; it becomes part of the URL.",
    )
    framework = SelectField("Framework", choices=_framework_choices)
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    source = _optional_text(
        "Source",
        500,
        "A Python file in the apps folder; for Dash add the WSGI callable, e.g. dash-wave/app.py:server.",
    )
    image = _optional_text("Container image", 500, "For cluster deployments, e.g. ghcr.io/you/app:1.0.")
    command = _optional_text(
        "Command",
        500,
        "With an image only: the container's command instead of the framework's "
        "default, e.g. python serve.py --port 8050 (split like a shell would, but no shell runs it).",
    )
    port = _optional_text(
        "Port",
        5,
        f"The port the app listens on in its container (default {_default_ports()}).",
    )
    cpu = StringField("CPU", default="500m", validators=[Length(max=20)])
    memory = StringField("Memory", default="512Mi", validators=[Length(max=20)])
    env = TextAreaField(
        "Environment",
        validators=[Optional(), Length(max=10000)],
        description="One KEY=VALUE per line.",
    )
    embed_origins = TextAreaField(
        "Sites that may embed it",
        validators=[Optional(), Length(max=5000)],
        description="Optional: origins of other sites whose pages may show the app's page in a frame, "
        "one per line, e.g. https://blog.example.org (scheme, host and port only).",
    )
    monthly_budget = _optional_text(
        "Monthly budget (dollars)",
        20,
        "Optional: once the app has cost this much in a month (UTC), it does not start again "
        "until the 1st of the next month (a running one is not cut off). Blank: no budget.",
    )
    requirements = _optional_text(
        "Requirements file",
        500,
        "Optional: the app's requirements file in the apps folder, e.g. my-app/requirements.txt. Blank: "
        "requirements.txt beside the source, if there is one; without one the app gets its framework only. "
        "Package names and versions only (no options, URLs or paths); it must list the framework.",
    )
    is_public = BooleanField("Listed in the gallery and open to everyone", default=True)


class EditForm(PublishForm):
    """The publish form without the title and framework, which stay: they
    name the app's URLs and how it runs."""

    title = None  # type: ignore[assignment]
    framework = None  # type: ignore[assignment]
    env = TextAreaField(
        "Environment",
        validators=[Optional(), Length(max=10000)],
        description="One KEY=VALUE per line. Stored values are not shown: a line left as "
        "KEY=******** keeps its value; type a new value to change it, delete the line to remove it.",
    )


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=200)])
    new = PasswordField("New password", validators=[DataRequired(), Length(max=200)])
    repeat = PasswordField("New password again", validators=[DataRequired(), Length(max=200)])


#: The lifetimes the tokens page offers (seconds, words); those above API_TOKEN_MAX_TTL are left out.
TOKEN_LIFETIMES = ((86400, "1 day"), (7 * 86400, "7 days"), (30 * 86400, "30 days"), (90 * 86400, "90 days"))


class TokenForm(FlaskForm):
    label = StringField(
        "Label",
        validators=[Optional(), Length(max=80)],
        description="What the token is for, e.g. 'CI deploys' (only you see it).",
    )
    ttl = SelectField("Valid for", coerce=int)
