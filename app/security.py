"""Request checks that hold for every route, before any view runs."""

from __future__ import annotations

from flask import Flask, abort, request


def reject_unusable_host() -> None:
    """A ``Host`` header that is no host at all (spaces, quotes, slashes...) is
    answered 400 at once. Werkzeug reads such a header as an empty host, and
    nothing built from the visitor's host (an iframe URL) must fall back to a
    guess."""
    if not request.host:
        abort(400)


def init_app(app: Flask) -> None:
    app.before_request(reject_unusable_host)
