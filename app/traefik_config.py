"""Traefik configuration, as pure functions: the one route-rule shape that both
backends use (a Kubernetes IngressRoute's ``match`` and a file-provider
router's ``rule``), and the file provider's documents for the local backend.

Nothing here does I/O. Documents are plain dicts; :func:`dump` writes them as
JSON, which is YAML too, so Traefik's file provider reads them from ``.yml``
files without a YAML library on our side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .slugs import is_dns_label, is_hostname, is_prefix

AUTH_COOKIE = "dormouse_viz"  # the gate's cookie; Traefik copies it to the browser
AUTH_MIDDLEWARE = "dormouse-auth"  # defined once, in the shared dynamic file
PROVIDERS_THROTTLE = "100ms"  # Traefik's least wait between two reloads of the routes (default 2s)
AUTH_BODY_MAX = 4096  # bytes of the gate's answer Traefik reads
ENTRYPOINT = "web"  # every router's entry point: HTTP, or HTTPS when TLS is on
PLAIN_ENTRYPOINT = "plain"  # with TLS: port 80's job (ACME challenge, redirect)
# Loopback only, plain HTTP: Traefik's /ping for Dormouse's /healthz, and every
# app route again, so Dormouse can see when Traefik has picked a new one up.
INTERNAL_ENTRYPOINT = "internal"
ALIAS_HEADERS = "delete"  # what every entry point does with a header named like an alias of another
# Percent-encoded characters in a request path that every entry point refuses
# (400): an encoded /, \, ;, %, ?, # or NUL may be read one way by Traefik's
# router and another by the app behind it. Traefik 3.7 allows them by default;
# its `encodedCharacters.allowEncoded<Name>` options, all set to false here.
ENCODED_CHARACTERS = ("Slash", "BackSlash", "Semicolon", "Percent", "QuestionMark", "Hash", "NullCharacter")
CERT_RESOLVER = "letsencrypt"

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
                    "entryPoints": [ENTRYPOINT, INTERNAL_ENTRYPOINT],
                    "service": name,
                    "middlewares": [f"{AUTH_MIDDLEWARE}@file"],
                }
            },
            "services": {name: {"loadBalancer": {"servers": [{"url": _checked_url(app_url)}]}}},
        }
    }


def forward_auth(address: str) -> Document:
    """The forwardAuth settings both backends give Traefik: ask ``address``
    (Dormouse's ``/_auth/viz``) about each request. Traefik writes the
    ``X-Forwarded-*`` headers from the request itself, so a visitor's own
    headers never choose the app checked; the gate's cookie, set on the first
    request (the entry token's), is copied to the browser; the gate's answers
    are a few bytes, so a large one is refused rather than buffered."""
    return {
        "address": address,
        "trustForwardHeader": False,
        "addAuthCookiesToResponse": [AUTH_COOKIE],
        "maxResponseBodySize": AUTH_BODY_MAX,
    }


def shared_routes(*, auth_url: str, dormouse_url: str) -> Document:
    """The file every deployment's router relies on: the forwardAuth
    middleware that asks Dormouse about each app request, and Dormouse's own
    pages on every other request (lowest priority, so any app route wins)."""
    return {
        "http": {
            "middlewares": {AUTH_MIDDLEWARE: {"forwardAuth": forward_auth(_checked_url(auth_url))}},
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


def static_config(
    *,
    listen: str,
    routes_dir: str,
    internal_listen: str,
    tls: Tls | None = None,
    log_level: str = "WARN",
) -> Document:
    """Traefik's static configuration: the entry point ``web`` on ``listen``
    (``host:port``) that every router uses, the file provider watching
    ``routes_dir``, no dashboard; and the loopback-only entry point
    ``internal`` on ``internal_listen``: Traefik's health check (``/ping`` on
    ``web`` stays an owner's path) and every app route again, for Dormouse's
    readiness probe.

    With ``tls``, ``web`` moves to ``tls.listen`` and serves HTTPS with a
    certificate from Let's Encrypt (HTTP-01 challenge) for ``tls.domains``,
    and ``listen`` becomes the ``plain`` entry point, which answers the ACME
    challenge and redirects everything else to HTTPS."""
    entry_points: Document = {ENTRYPOINT: {"address": listen}}
    doc: Document = {
        "entryPoints": entry_points,
        # a new deployment's route is applied at once, not up to 2 s after the
        # last change (Traefik's default throttle: every start or stop is one)
        "providers": {
            "providersThrottleDuration": PROVIDERS_THROTTLE,
            "file": {"directory": routes_dir, "watch": True},
        },
        "api": {"dashboard": False},
        "log": {"level": log_level},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }
    entry_points[INTERNAL_ENTRYPOINT] = {"address": internal_listen}
    doc["ping"] = {"entryPoint": INTERNAL_ENTRYPOINT}
    if tls is not None:
        main, *sans = tls.domains
        entry_points[ENTRYPOINT] = {
            "address": tls.listen,
            "http": {"tls": {"certResolver": CERT_RESOLVER, "domains": [{"main": main, "sans": sans}]}},
        }
        to = "web" if tls.redirect_port is None else f":{tls.redirect_port}"
        entry_points[PLAIN_ENTRYPOINT] = {
            "address": listen,
            "http": {"redirections": {"entryPoint": {"to": to, "scheme": "https", "permanent": True}}},
        }
        acme: Document = {
            "email": tls.email,
            "storage": tls.storage,
            "httpChallenge": {"entryPoint": PLAIN_ENTRYPOINT},
        }
        if tls.ca_server:
            acme["caServer"] = tls.ca_server
        doc["certificatesResolvers"] = {CERT_RESOLVER: {"acme": acme}}
    for entry_point in entry_points.values():
        # X.Forwarded.For, X_Forwarded_For...: names a WSGI server may read as a
        # header Traefik sets (X-Forwarded-For) are dropped, never forwarded
        http = entry_point.setdefault("http", {})
        http["aliasHeadersStrategy"] = ALIAS_HEADERS
        http["encodedCharacters"] = refused_encoded_characters()
    return doc


def refused_encoded_characters() -> Document:
    """An entry point's ``encodedCharacters``: every one of :data:`ENCODED_CHARACTERS` refused."""
    return {f"allowEncoded{name}": False for name in ENCODED_CHARACTERS}


@dataclass(frozen=True)
class Tls:
    """TLS at the front door: ``web`` listens on ``listen`` with a Let's
    Encrypt certificate for ``domains`` (Dormouse's hosts and the apps' host);
    HTTP is redirected to ``redirect_port`` (None: ``web``'s own port)."""

    listen: str
    domains: tuple[str, ...]
    email: str
    storage: str  # acme.json, kept with the instance so certificates survive restarts
    redirect_port: int | None = 443
    ca_server: str = ""

    def __post_init__(self) -> None:
        if not self.domains or not all(is_hostname(d) for d in self.domains):
            raise ValueError(f"TLS needs host names to certify, not {self.domains!r}")


def dump(document: Document) -> str:
    """The document as Traefik's file provider reads it (JSON is YAML)."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
