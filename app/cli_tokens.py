"""``flask tokens issue|list|revoke``: API tokens from the command line,
wrappers over :mod:`app.api_tokens`.

flask --app wsgi tokens issue USER --ttl SECONDS [--label L]   (prints only the token)
flask --app wsgi tokens list USER
flask --app wsgi tokens revoke JTI
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from . import api_tokens
from .auth import get_user
from .models import utcnow

tokens_cli = AppGroup("tokens", help="API tokens (bearer tokens for /api/v1/).")


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@tokens_cli.command("issue")
@click.argument("username")
@click.option(
    "--ttl", type=int, required=True, help="Seconds the token is valid (at most API_TOKEN_MAX_TTL)."
)
@click.option("--label", default="", help="What the token is for (shown on the tokens page).")
def tokens_issue(username: str, ttl: int, label: str) -> None:
    """Make an API token for USER and print it (only it, on stdout: it is not stored)."""
    user = get_user(username)
    if user is None:
        _fail(f"No user {username!r}.")
    settings = current_app.config["DORMOUSE"]
    try:
        token, row = api_tokens.issue(
            user, ttl=ttl, label=label, jwt_keys=settings.jwt_keys, max_ttl=settings.api_token_max_ttl
        )
    except api_tokens.ApiTokenError as exc:
        _fail(str(exc))
    click.echo(
        f"Issued token {row.jti} for {user.username}, expires {row.expires_at:%Y-%m-%d %H:%M:%S} UTC.",
        err=True,
    )
    click.echo(token)


@tokens_cli.command("list")
@click.argument("username")
def tokens_list(username: str) -> None:
    """USER's tokens, newest first: id (jti), state, created, expires, last used, label."""
    user = get_user(username)
    if user is None:
        _fail(f"No user {username!r}.")
    rows = api_tokens.tokens_of(user)
    if not rows:
        click.echo(f"{username} has no tokens.")
        return
    now = utcnow()

    def at(value) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value is not None else "never"

    click.echo(f"{'JTI':<34} {'STATE':<8} {'CREATED':<16} {'EXPIRES':<16} {'LAST USED':<16} LABEL")
    for row in rows:
        click.echo(
            f"{row.jti:<34} {api_tokens.state(row, now):<8} {at(row.created_at):<16} "
            f"{at(row.expires_at):<16} {at(row.last_used_at):<16} {row.label}"
        )


@tokens_cli.command("revoke")
@click.argument("jti")
def tokens_revoke(jti: str) -> None:
    """Revoke the token JTI (see ``tokens list``); it stops working at once."""
    row = api_tokens.find(jti)
    if row is None:
        _fail(f"No token {jti!r}.")
    if not api_tokens.revoke(row):
        _fail(f"Token {jti} was revoked already.")
    click.echo(f"Revoked token {jti}.")
