"""Who is asking: the client's address as the rate limits count it.

Traefik is the only way in, so the direct peer is Traefik and the client is
the last hop of ``X-Forwarded-For``; that header is believed only from a peer
that can be Traefik (:func:`trusted_peer`). IPv4 addresses count as they are,
IPv6 ones by their /64. :class:`ForwardedFor` applies this to Flask's
requests; :func:`client_key_of` reads it from a raw WSGI environ for the
answers app/hot_wsgi.py gives before Flask.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flask import request
from werkzeug.http import parse_list_header
from werkzeug.middleware.proxy_fix import ProxyFix

#: How many proxies stand between the client and Dormouse: Traefik, one hop,
#: both in the local front door and on Kubernetes.
PROXY_HOPS = 1


@lru_cache(maxsize=256)
def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=256)
def trusted_peer(peer: str, backend: str) -> bool:
    """Whether the direct peer ``peer`` may name the client in
    ``X-Forwarded-For``: only a proxy of ours can, i.e. Traefik, which is on
    loopback with the local front door and, on Kubernetes, a pod inside the
    cluster (whose addresses are never public ones)."""
    ip = _address(peer)
    if ip is None:
        return False
    if ip.is_loopback:
        return True
    return backend == "kubernetes" and not ip.is_global


class ForwardedFor:
    """WSGI middleware: ``X-Forwarded-For`` becomes ``REMOTE_ADDR`` (Werkzeug's
    ProxyFix, ``PROXY_HOPS`` hops) when the direct peer is trusted, and is
    ignored otherwise. Only the address: gunicorn handles the scheme
    (``forwarded_allow_ips``), and ``X-Forwarded-Host`` is never believed, as
    the host checks rely on the real ``Host``."""

    def __init__(self, wsgi_app: Callable[..., Any], backend: str) -> None:
        self.wsgi_app = wsgi_app
        self.backend = backend
        self.proxied = ProxyFix(wsgi_app, x_for=PROXY_HOPS, x_proto=0, x_host=0, x_port=0, x_prefix=0)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if "HTTP_X_FORWARDED_FOR" in environ and trusted_peer(environ.get("REMOTE_ADDR", ""), self.backend):
            return self.proxied(environ, start_response)
        return self.wsgi_app(environ, start_response)


def client_address() -> str:
    """The client's address as limits count it: IPv4 as is, IPv6 by /64."""
    return _counted_address(request.remote_addr or "")


def client_key_of(environ: dict[str, Any], backend: str) -> str:
    """:func:`client_key` from a WSGI environ that has not been through
    :class:`ForwardedFor` (app/hot_wsgi.py answers before it): the same
    address, read the same way (ProxyFix's rule for ``PROXY_HOPS``)."""
    peer = environ.get("REMOTE_ADDR", "")
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    if forwarded and trusted_peer(peer, backend):
        values = parse_list_header(forwarded)
        if len(values) >= PROXY_HOPS:
            peer = values[-PROXY_HOPS]
    return f"client:{_counted_address(peer)}"


def _counted_address(raw: str) -> str:
    ip = _address(raw)
    if ip is None:
        return raw or "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and not ip.is_loopback:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_key() -> str:
    return f"client:{client_address()}"
