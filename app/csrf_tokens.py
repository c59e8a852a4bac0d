"""Flask-WTF's CSRF protection with the signature checks of its tokens
remembered.

A viz page sends the same signed token (``X-CSRFToken``, from the page's
meta tag) with every ping; Flask-WTF checks its signature every time (a
serializer built, an HMAC, base64 and JSON decoding: about an eighth of a
ping's time, bench/hot_paths.py). :class:`RememberingCSRF` does what
Flask-WTF's ``protect`` does, step for step, but keeps what a signed token
decoded to (per worker, bounded, least recently used first; only tokens
whose signature passed; the key is the token and the secret key): the age
limit (``WTF_CSRF_TIME_LIMIT``) is checked on every hit as itsdangerous
checks it, and the decoded token is still compared with the session's on
every request, so a token of another session never passes.
"""

from __future__ import annotations

import hmac
import logging

from flask import current_app, g, request, session
from flask_wtf.csrf import CSRFProtect, same_origin
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from wtforms import ValidationError

from .checked_signatures import CheckedSignatures

log = logging.getLogger(__name__)

MAX_TOKENS = 4096


class RememberingCSRF(CSRFProtect):
    def __init__(self, app=None) -> None:  # type: ignore[no-untyped-def]
        self._checked: CheckedSignatures[str] = CheckedSignatures(MAX_TOKENS)
        super().__init__(app)

    def protect(self, apply_exemptions: bool = False) -> None:
        """Flask-WTF's ``protect`` (flask_wtf/csrf.py), with :meth:`validate`."""
        if apply_exemptions:
            if not request.endpoint:
                return
            if self._is_exempt():
                return
        if request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return
        try:
            self.validate(self._get_csrf_token())
        except ValidationError as e:
            log.info(e.args[0])
            self._error_response(e.args[0])
        if request.is_secure and current_app.config["WTF_CSRF_SSL_STRICT"]:
            if not request.referrer:
                self._error_response("The referrer header is missing.")
            good_referrer = f"https://{request.host}/"
            if not same_origin(request.referrer, good_referrer):
                self._error_response("The referrer does not match the host.")
        g.csrf_valid = True  # mark this request as CSRF valid

    def _get_csrf_token(self) -> str | None:
        """The token from the headers first (the viz page's pings and every
        HTMX request send ``X-CSRFToken``), then Flask-WTF's own search (the
        form's field, then the headers): a ping's form is then parsed only
        by the view, which reads one field of it cheaply."""
        for header_name in current_app.config["WTF_CSRF_HEADERS"]:
            token = request.headers.get(header_name)
            if token:
                return token
        return super()._get_csrf_token()

    def validate(self, data: str | None) -> None:
        """Flask-WTF's ``validate_csrf`` with its defaults, the signature
        check remembered."""
        config = current_app.config
        secret_key = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
        if not secret_key:
            raise ValidationError("A secret key is required to use CSRF.")
        field_name = config.get("WTF_CSRF_FIELD_NAME") or "csrf_token"
        time_limit = config.get("WTF_CSRF_TIME_LIMIT", 3600)
        if not data:
            raise ValidationError("The CSRF token is missing.")
        if field_name not in session:
            raise ValidationError("The CSRF session token is missing.")
        token = self._decoded(data, secret_key, time_limit)
        if not hmac.compare_digest(session[field_name], token):
            raise ValidationError("The CSRF tokens do not match.")

    def remembered(self, data: str, secret_key: object, time_limit: int | None) -> str | None:
        """What signed token ``data`` decoded to, if its check passed before
        and it has not expired since; None if it must be checked (again)."""
        return self._checked.get((data, secret_key), time_limit)

    def _decoded(self, data: str, secret_key: object, time_limit: int | None) -> str:
        found = self.remembered(data, secret_key, time_limit)
        if found is not None:
            return found
        key = (data, secret_key)
        serializer = URLSafeTimedSerializer(secret_key, salt="wtf-csrf-token")  # type: ignore[arg-type]
        try:
            token, when = serializer.loads(data, max_age=time_limit, return_timestamp=True)
        except SignatureExpired as e:
            raise ValidationError("The CSRF token has expired.") from e
        except BadData as e:
            raise ValidationError("The CSRF token is invalid.") from e
        if isinstance(token, str):
            self._checked.put(key, token, int(when.timestamp()))
        return token
