"""Command-line interface: thin wrappers over the same services the views use.

flask --app wsgi users create NAME [--admin]
flask --app wsgi users password NAME
flask --app wsgi users disable NAME
flask --app wsgi apps publish --owner NAME --title T --framework dash --source PATH[:CALLABLE]
    [--private] [--embed-origin https://blog.example.org ...]
flask --app wsgi demo load
flask --app wsgi sweep
flask --app wsgi reconcile
flask --app wsgi deployments list
flask --app wsgi deployments stop OWNER/TITLE
flask --app wsgi tokens issue|list|revoke ...   (app/cli_tokens.py)
flask --app wsgi envs list|prune|build ...       (app/cli_envs.py)
"""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from . import app_envs, lifecycle, sweep
from .auth import AccountError, create_user, disable_user, get_user, set_password
from .backends.frameworks import FRAMEWORKS
from .extensions import db
from .models import LIVE_STATUSES, Deployment, User, VizApp, utcnow
from .publishing import AppInput, PublishError, publish

users_cli = AppGroup("users", help="Manage user accounts.")
apps_cli = AppGroup("apps", help="Manage published apps.")
demo_cli = AppGroup("demo", help="The demo apps in examples/.")
deployments_cli = AppGroup("deployments", help="Inspect deployments.")

DEMO_OWNER = "demo"
DEMOS = (
    AppInput(
        title="dash-wave",
        framework="dash",
        source="dash-wave/app.py:server",
        description="A Dash/Plotly demo: move the slider and the callback redraws the wave.",
    ),
    AppInput(
        title="bokeh-sliders",
        framework="bokeh",
        source="bokeh-sliders/main.py",
        description="A Bokeh server demo: the sliders reshape the curve through a Python callback.",
    ),
)


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@users_cli.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt."
)
def users_create(username: str, admin: bool, password_stdin: bool) -> None:
    """Create a user; the password comes from a prompt, or from stdin when piped."""
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(username, password, is_admin=admin)
    except AccountError as exc:
        _fail(str(exc))
    click.echo(f"Created {'admin ' if user.is_admin else ''}user {user.username}.")


@users_cli.command("password")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt."
)
def users_password(username: str, password_stdin: bool) -> None:
    """Set a user's password; every session of theirs ends."""
    user = get_user(username)
    if user is None:
        _fail(f"No user {username!r}.")
        return
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        set_password(user, password)
    except AccountError as exc:
        _fail(str(exc))
    click.echo(f"Password of {user.username} changed; their sessions have ended.")


@users_cli.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disable a user: their sessions end, they cannot log in, their apps stop."""
    user = get_user(username)
    if user is None:
        _fail(f"No user {username!r}.")
        return
    stopped = disable_user(user)
    click.echo(f"Disabled {user.username}; their sessions have ended.")
    for name in stopped:
        click.echo(f"stopped {name}")


@apps_cli.command("publish")
@click.option("--owner", required=True)
@click.option("--title", required=True)
@click.option("--framework", required=True, type=click.Choice(list(FRAMEWORKS)))
@click.option("--source", default="", help="PATH[:CALLABLE], relative to APPS_DIR.")
@click.option("--image", default="", help="Container image, for cluster backends.")
@click.option(
    "--command",
    "command",
    default="",
    help="With --image: the container's command instead of the framework's default.",
)
@click.option("--description", default="")
@click.option("--port", default="")
@click.option("--cpu", default="500m")
@click.option("--memory", default="512Mi")
@click.option("--env", "env_items", multiple=True, help="KEY=VALUE (repeatable).")
@click.option(
    "--embed-origin",
    "embed_origins",
    multiple=True,
    help="A site that may embed the app's page in a frame, e.g. https://blog.example.org (repeatable).",
)
@click.option("--private", is_flag=True, help="Leave it out of the gallery; only the owner sees it.")
@click.option(
    "--requirements",
    default="",
    help="Its requirements file, relative to APPS_DIR (default: requirements.txt beside the source).",
)
@click.option("--monthly-budget", default="", help="Dollars a month it may cost; it does not start past it.")
def apps_publish(
    owner: str,
    title: str,
    framework: str,
    source: str,
    image: str,
    command: str,
    description: str,
    port: str,
    cpu: str,
    memory: str,
    env_items: tuple[str, ...],
    embed_origins: tuple[str, ...],
    private: bool,
    requirements: str,
    monthly_budget: str,
) -> None:
    """Publish an app for OWNER; its environment is built before this returns."""
    user = get_user(owner)
    if user is None:
        _fail(f"No user {owner!r}; create one with 'flask users create {owner}'.")
    data = AppInput(
        title=title,
        framework=framework,
        description=description,
        source=source,
        image=image,
        command=command,
        port=port,
        cpu=cpu,
        memory=memory,
        env="\n".join(env_items),
        embed_origins="\n".join(embed_origins),
        is_public=not private,
        requirements=requirements,
        monthly_budget=monthly_budget,
    )
    try:
        app = publish(user, data, current_app.config["DORMOUSE"], build_now=True)
    except PublishError as exc:
        for name, message in exc.errors.items():
            click.echo(f"Error: {name}: {message}", err=True)
        sys.exit(1)
    env = app_envs.state_of(app)
    if env.label == "failed":
        click.echo(f"Published {app.slug_path}, but its environment failed:\n{env.error}", err=True)
        sys.exit(1)
    click.echo(f"Published {app.slug_path} at /{app.slug_path}/viz/")


@demo_cli.command("load")
def demo_load() -> None:
    """Publish the demo apps (idempotent: existing ones are left alone)."""
    settings = current_app.config["DORMOUSE"]
    if settings.backend != "local":
        click.echo(
            f"Skipped: the demos run from examples/ on the local backend, not on "
            f"BACKEND={settings.backend}. Publish apps with an image instead."
        )
        return
    owner = get_user(DEMO_OWNER)
    if owner is None:
        import secrets

        owner = create_user(DEMO_OWNER, secrets.token_urlsafe(24))
    for demo in DEMOS:
        # a demo its owner or an admin deleted stays deleted
        mine = (VizApp.owner_id == owner.id, VizApp.title == demo.title)
        rows = db.session.execute(select(VizApp.id, VizApp.deleted_at).where(*mine)).all()
        if rows:
            deleted = all(row.deleted_at is not None for row in rows)
            said = "deleted, not loaded again" if deleted else "already published"
            click.echo(f"{DEMO_OWNER}/{demo.title}: {said}")
            continue
        try:
            publish(owner, demo, settings, build_now=True)
        except PublishError as exc:
            if set(exc.errors) == {"requirements"}:  # e.g. no package index reachable: try next time
                click.echo(f"{DEMO_OWNER}/{demo.title}: not loaded: {exc.errors['requirements']}", err=True)
                continue
            _fail(f"{demo.title}: {exc}")
        click.echo(f"{DEMO_OWNER}/{demo.title}: published")


def _age(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    seconds = int((now - value).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


@deployments_cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include stopped and failed ones.")
def deployments_list(show_all: bool) -> None:
    """One line per deployment: owner/title, status and ages."""
    now = utcnow()
    query = select(Deployment).order_by(Deployment.created_at.desc())
    if not show_all:
        query = query.where(Deployment.status.in_(LIVE_STATUSES))
    rows = db.session.scalars(query).all()
    if not rows:
        click.echo("No deployments." if show_all else "No live deployments.")
        return
    click.echo(f"{'APP':<40} {'DEPLOYMENT':<18} {'STATUS':<9} {'AGE':>5} {'LOAD':>5} {'PING':>5}  REASON")
    for dep in rows:
        reason = dep.stop_reason or ""
        click.echo(
            f"{dep.app.slug_path:<40} {dep.public_name:<18} {dep.status:<9} "
            f"{_age(dep.created_at, now):>5} {_age(dep.latest_load_at, now):>5} "
            f"{_age(dep.latest_ping_at, now):>5}  {reason}"
        )


@deployments_cli.command("stop")
@click.argument("app_path", metavar="OWNER/TITLE")
def deployments_stop(app_path: str) -> None:
    """Stop the live deployment of OWNER/TITLE now (stop reason: admin)."""
    owner, _, title = app_path.partition("/")
    app = db.session.scalar(
        select(VizApp)
        .join(VizApp.owner)
        .where(VizApp.title == title, User.username == owner, VizApp.deleted_at.is_(None))
    )
    if app is None:
        _fail(f"No app {app_path!r}.")
    dep = lifecycle.live_deployment(app)
    if dep is None or not lifecycle.stop(dep, reason="admin", detail="stopped from the command line"):
        _fail(f"{app_path} has no live deployment.")
    click.echo(f"stopped {app_path} ({dep.public_name})")


def _report(report: sweep.SweepReport, nothing: str) -> None:
    if not report.ran:
        _fail("another sweep is running (the sweep lease is held); try again shortly")
    for line in report.lines():
        click.echo(line)
    if not report.changed:
        click.echo(nothing)
    if report.errors:
        _fail(f"{report.errors} item(s) could not be handled; see the log")


@click.command("sweep")
def sweep_command() -> None:
    """Run one sweep now with the configured limits; print what it stopped."""
    _report(sweep.under_lease(sweep.sweep), "Nothing to stop.")


@click.command("reconcile")
def reconcile_command() -> None:
    """Make the database and the backend agree (stop orphans, mark vanished)."""
    _report(sweep.under_lease(sweep.reconcile), "Everything agrees.")


def register_cli(app: Flask) -> None:
    from .cli_envs import envs_cli
    from .cli_tokens import tokens_cli

    commands = (users_cli, apps_cli, demo_cli, deployments_cli, tokens_cli, envs_cli)
    for command in (*commands, sweep_command, reconcile_command):
        app.cli.add_command(command)
