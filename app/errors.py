"""Error handlers: one answer per error, shaped for who asked - an HTMX
partial, JSON, or a full page. A 500 rolls the session back."""

from __future__ import annotations

import logging

from flask import Flask, Response, make_response, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, TooManyRequests

from . import rate_limits
from .extensions import db

log = logging.getLogger(__name__)

API_PREFIX = "/api/"

MESSAGES = {
    400: "The request could not be understood.",
    403: "You may not do that.",
    404: "There is nothing here.",
    405: "That method is not allowed here.",
    429: "Too many requests in a short time. Please wait {seconds} s, then try again.",
    500: "Something went wrong on our side. It has been logged.",
}


def _respond(code: int, message: str, **extra: object):
    """``extra`` goes into the JSON answer."""
    if request_ctx.url_adapter is None:  # a Host Werkzeug cannot route: no page can link anywhere
        return Response(f"{message}\n", code, mimetype="text/plain")
    if request.path.startswith(API_PREFIX):  # the REST API answers JSON, whatever is asked
        return {"error": message, "status": code, **extra}, code
    if request.headers.get("HX-Request"):
        return render_template("partials/error.html", code=code, message=message), code
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    if best == "application/json":
        return {"error": message, "status": code, **extra}, code
    return render_template("error.html", code=code, message=message), code


def _too_many(exc: TooManyRequests) -> Response:
    """A 429 (see :mod:`app.rate_limits`): ``Retry-After`` and the wait in
    words. On the viz page the partial asks again by itself once the wait is
    over (a start or a status poll), so the page never stays stuck on it."""
    seconds = rate_limits.retry_after(exc)
    message = MESSAGES[429].format(seconds=seconds)
    api = request_ctx.url_adapter is not None and request.path.startswith(API_PREFIX)
    if request_ctx.url_adapter is not None and request.headers.get("HX-Request") and not api:
        again = request.endpoint in rate_limits.RETRY_ENDPOINTS and request.method in {"GET", "POST"}
        body = render_template(
            "partials/too_many.html",
            message=message,
            seconds=seconds,
            retry_method=request.method.lower() if again else None,
            retry_url=request.full_path.rstrip("?") if request.method == "GET" else request.path,
        )
        response = make_response(body, 429)
    else:
        response = make_response(_respond(429, message, retry_after=seconds))
    response.headers["Retry-After"] = str(seconds)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return _respond(400, "Your session has expired. Reload the page and try again.")

    @app.errorhandler(TooManyRequests)
    def too_many(exc: TooManyRequests):
        return _too_many(exc)

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
