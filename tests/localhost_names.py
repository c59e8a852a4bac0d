"""Resolve ``*.localhost`` to loopback in the test process, as Chromium does
by itself (RFC 6761): the apps' host ``viz.dormouse.localhost`` then works for
``requests`` and tornado's websocket client just as for the browser tests,
with no Host-header rewriting and no /etc/hosts entry."""

from __future__ import annotations

import socket
from typing import Any

_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if isinstance(host, str) and host.rstrip(".").lower().endswith(".localhost"):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
