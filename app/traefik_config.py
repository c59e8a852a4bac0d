"""Traefik configuration, as pure functions: the one route-rule shape that both
backends use (a Kubernetes IngressRoute's ``match`` and a file-provider
router's ``rule``), and the file provider's documents for the local backend.

Nothing here does I/O. Documents are plain dicts; :func:`dump` writes them as
JSON, which is YAML too, so Traefik's file provider reads them from ``.yml``
files without a YAML library on our side.
"""

from __future__ import annotations

import json
from typing import Any

from .slugs import is_dns_label, is_hostname, is_prefix

AUTH_COOKIE = "dormouse_viz"  # the gate's cookie; Traefik copies it to the browser
AUTH_MIDDLEWARE = "dormouse-auth"  # defined once, in the shared dynamic file
ENTRYPOINT = "web"

Document = dict[str, Any]


def route_rule(viz_host: str, prefix: str) -> str:
    """Traefik's match rule for one deployment. Both parts are validated
    first: backticks, spaces or parentheses can never reach the rule."""
    if not is_hostname(viz_host):
        raise ValueError(f"unsafe host {viz_host!r}")
    if not is_prefix(prefix):
        raise ValueError(f"unsafe URL prefix {prefix!r}")
    return f"Host(`{viz_host}`) && PathPrefix(`{prefix}`)"


def _checked_url(url: str) -> str:
    if not url.startswith(("http://127.0.0.1:", "http://[::1]:", "http://localhost:")):
        raise ValueError(f"only loopback addresses are routed to, not {url!r}")
    return url


def deployment_routes(name: str, *, viz_host: str, prefix: str, app_url: str) -> Document:
    """One deployment's file: a router on ``Host(viz_host) && PathPrefix(prefix)``
    to the app's loopback address, behind the shared forwardAuth middleware."""
    if not is_dns_label(name):
        raise ValueError(f"not a router name: {name!r}")
    return {
        "http": {
            "routers": {
                name: {
                    "rule": route_rule(viz_host, prefix),
                    "entryPoints": [ENTRYPOINT],
                    "service": name,
                    "middlewares": [f"{AUTH_MIDDLEWARE}@file"],
                }
            },
            "services": {name: {"loadBalancer": {"servers": [{"url": _checked_url(app_url)}]}}},
        }
    }


def shared_routes(*, auth_url: str, dormouse_url: str) -> Document:
    """The file every deployment's router relies on: the forwardAuth
    middleware that asks Dormouse about each app request, and Dormouse's own
    pages on every other request (lowest priority, so any app route wins)."""
    return {
        "http": {
            "middlewares": {
                AUTH_MIDDLEWARE: {
                    "forwardAuth": {
                        "address": _checked_url(auth_url),
                        "trustForwardHeader": False,
                        "addAuthCookiesToResponse": [AUTH_COOKIE],
                    }
                }
            },
            "routers": {
                "dormouse": {
                    "rule": "PathPrefix(`/`)",
                    "priority": 1,
                    "entryPoints": [ENTRYPOINT],
                    "service": "dormouse",
                }
            },
            "services": {"dormouse": {"loadBalancer": {"servers": [{"url": _checked_url(dormouse_url)}]}}},
        }
    }


def static_config(*, listen: str, routes_dir: str, log_level: str = "WARN") -> Document:
    """Traefik's static configuration: one entry point on ``listen``
    (``host:port``), the file provider watching ``routes_dir``, no dashboard."""
    return {
        "entryPoints": {ENTRYPOINT: {"address": listen}},
        "providers": {"file": {"directory": routes_dir, "watch": True}},
        "api": {"dashboard": False},
        "log": {"level": log_level},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }


def dump(document: Document) -> str:
    """The document as Traefik's file provider reads it (JSON is YAML)."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
