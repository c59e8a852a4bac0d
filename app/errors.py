"""Error handlers: one answer per error, shaped for who asked - an HTMX
partial, JSON, or a full page. A 500 rolls the session back."""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import db

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    403: "You may not do that.",
    404: "There is nothing here.",
    405: "That method is not allowed here.",
    500: "Something went wrong on our side. It has been logged.",
}


def _respond(code: int, message: str):
    if request_ctx.url_adapter is None:  # a Host Werkzeug cannot route: no page can link anywhere
        return Response(f"{message}\n", code, mimetype="text/plain")
    if request.headers.get("HX-Request"):
        return render_template("partials/error.html", code=code, message=message), code
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    if best == "application/json":
        return {"error": message, "status": code}, code
    return render_template("error.html", code=code, message=message), code


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return _respond(400, "Your session has expired. Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code is None or exc.code < 400:  # routing redirects
            return exc
        return _respond(exc.code, MESSAGES.get(exc.code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def unhandled(exc: Exception):  # HTTPExceptions have their own handlers above
        db.session.rollback()
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return _respond(500, MESSAGES[500])

    @app.errorhandler(InternalServerError)
    def internal(exc: InternalServerError):
        db.session.rollback()
        return _respond(500, MESSAGES[500])
