"""Faults the fake API server can inject: an HTTP error status (with the
reason, message and ``Retry-After`` a real server would send), a slow answer or
a dropped connection, for requests that match a method and a path pattern."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .resources import ApiError

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still "
    "be processing the request",
}


@dataclass
class Fault:
    method: str | None
    path_re: str
    times: int | None  # None: until clear_faults()
    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    reset: bool = False
    reason: str | None = None
    message: str | None = None
    body: str | None = None
    hits: int = 0
    pattern: re.Pattern = field(init=False, repr=False)

    def __post_init__(self):
        self.pattern = re.compile(self.path_re)

    def error(self, target: tuple[Any, str | None, str | None, str | None] | None) -> ApiError:
        """The ``Status`` error this fault answers for the routed request ``target``
        (``server.route(path)``; None when the path names no resource)."""
        details = {k: v for k, v in target[0].details(target[2] or "").items() if v} if target else {}
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
            details["retryAfterSeconds"] = self.retry_after
        return ApiError(
            self.status,
            self.reason or REASONS.get(self.status, "Unknown"),
            self.message or MESSAGES.get(self.status, f"injected {self.status}"),
            details,
            headers,
        )

    def matches(self, method: str, path: str) -> bool:
        return (
            (self.method is None or self.method.upper() == method)
            and bool(self.pattern.search(path))
            and self.times != 0
        )
