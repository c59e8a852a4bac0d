"""``flask envs list|prune|build``: per-app environments from the command
line, wrappers over :mod:`app.env_builds` and :mod:`app.app_envs`.

flask --app wsgi envs list
flask --app wsgi envs prune [--dry-run]
flask --app wsgi envs build OWNER/TITLE     (foreground; exits 1 with uv's message)
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from . import app_envs, env_builds
from .env_builds import Builder, BuildError
from .extensions import db
from .models import Environment, User, VizApp, utcnow

envs_cli = AppGroup("envs", help="Per-app Python environments (local backend).")


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _mb(size: int | None) -> str:
    return "-" if size is None else f"{size / 1024 / 1024:.0f}MB"


@envs_cli.command("list")
def envs_list() -> None:
    """Every environment: key, status, framework, size, apps using it, builds, last use."""
    users = (
        select(VizApp.env_key, func.count(VizApp.id).label("apps"))
        .where(VizApp.deleted_at.is_(None))
        .group_by(VizApp.env_key)
        .subquery()
    )
    rows = db.session.execute(
        select(Environment, users.c.apps)
        .outerjoin(users, users.c.env_key == Environment.key)
        .order_by(Environment.created_at)
    ).all()
    click.echo(f"{'KEY':<14} {'STATUS':<9} {'FW':<6} {'SIZE':>8} {'APPS':>4} {'BUILDS':>6}  LAST USED")
    for env, apps in rows:
        used = env.last_used_at.strftime("%Y-%m-%d %H:%M") if env.last_used_at else "-"
        size = _mb(env.size_bytes)
        columns = f"{env.key[:12]:<14} {env.status:<9} {env.framework:<6} {size:>8} {apps or 0:>4}"
        click.echo(f"{columns} {env.builds:>6}  {used}")
        if env.status == "failed" and env.error:
            click.echo("    " + env.error.splitlines()[0][:200])


@envs_cli.command("prune")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def envs_prune(dry_run: bool) -> None:
    """Remove environments no app has used for ENV_KEEP_UNUSED, and build leftovers."""
    removed = env_builds.prune(
        Builder.from_settings(current_app.config["DORMOUSE"]), now=utcnow(), dry_run=dry_run
    )
    for key in removed:
        click.echo(f"{'would remove' if dry_run else 'removed'} {key[:12]}")
    if not removed:
        click.echo("nothing to remove")


@envs_cli.command("build")
@click.argument("app_path", metavar="OWNER/TITLE")
def envs_build(app_path: str) -> None:
    """Resolve and build the environment of OWNER/TITLE now, in the foreground."""
    settings = current_app.config["DORMOUSE"]
    owner, _, title = app_path.partition("/")
    app = db.session.scalar(
        select(VizApp)
        .join(VizApp.owner)
        .where(VizApp.title == title, User.username == owner, VizApp.deleted_at.is_(None))
    )
    if app is None:
        _fail(f"No app {app_path!r}.")
    builder = Builder.from_settings(settings)
    try:
        resolved = app_envs.resolve(builder, app.framework, app.requirements_text)
    except BuildError as exc:
        _fail(f"{app_path}: {exc}")
    app_envs.attach(app, resolved, builder, now=utcnow())
    row = env_builds.ensure(builder, resolved.key, resolved.lock, app.framework, now=utcnow())
    app_envs.promote(resolved.key)
    if row.status != "ready":
        _fail(f"{app_path}: the environment is {row.status}. {row.error or ''}".strip())
    click.echo(f"{app_path}: environment {row.key[:12]} ready ({_mb(row.size_bytes)})")
