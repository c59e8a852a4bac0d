"""Where Dormouse and its front door listen, and which hosts they answer on:
``HOST``/``PORT``, ``TRUSTED_HOSTS``, the apps' default host and the front
door's TLS settings (see :mod:`app.front_door`)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .config_env import ConfigError, env_port, env_str
from .slugs import HOSTNAME_RE


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def listen_address(env: dict[str, str]) -> str:
    """``HOST:PORT`` for gunicorn's bind (read by gunicorn.conf.py only, so the
    server's address is parsed in one place, with the same clear errors).

    Under the front door (:mod:`app.front_door`) Traefik listens on
    ``HOST:PORT`` and gunicorn on the loopback port it was handed in
    ``DORMOUSE_INTERNAL_PORT``."""
    if env.get("DORMOUSE_INTERNAL_PORT"):
        return f"127.0.0.1:{env_port(env, 'DORMOUSE_INTERNAL_PORT', 0)}"
    return f"{_bracketed(env_str(env, 'HOST', '127.0.0.1'))}:{env_port(env, 'PORT', 8000)}"


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
LOCAL_VIZ_HOST = "viz.dormouse.localhost"  # Chromium resolves *.localhost by itself
LOCAL_TRUSTED_HOSTS = "dormouse.localhost localhost 127.0.0.1 ::1"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_trusted_hosts(raw: str, viz_host: str, production: bool = False) -> tuple[str, ...]:
    """``TRUSTED_HOSTS``: the host names Dormouse's own pages answer on (no
    ports; ``.example.org`` also allows its subdomains). Never ``VIZ_HOST``:
    apps and Dormouse must not share an origin. Required in production; on a
    laptop, ``dormouse.localhost`` and the loopback names."""
    if not raw.strip():
        if production:
            raise ConfigError(
                "TRUSTED_HOSTS must be set when DORMOUSE_ENV=production (e.g. dormouse.example.org)"
            )
        raw = LOCAL_TRUSTED_HOSTS
    hosts = tuple(dict.fromkeys(h.lower().strip("[]") for h in raw.replace(",", " ").split()))
    if not hosts:
        raise ConfigError("TRUSTED_HOSTS holds no host")
    for host in hosts:
        if not (HOSTNAME_RE.match(host.removeprefix(".")) or _is_ip(host)):
            raise ConfigError(f"TRUSTED_HOSTS: {host!r} is not a host name (leave ports out)")
        if host == viz_host or (host.startswith(".") and viz_host.endswith(host)):
            raise ConfigError(f"TRUSTED_HOSTS must not cover VIZ_HOST ({viz_host}): apps need their own host")
    return hosts


@dataclass(frozen=True)
class FrontDoorSettings:
    """The front door (:mod:`app.front_door`): Traefik on ``HOST:PORT`` in
    front of Dormouse and every local app; with ``ACME_EMAIL``, TLS on
    ``TLS_PORT`` with a Let's Encrypt certificate and HTTP redirected."""

    host: str
    port: int
    internal_port: int  # 0: a free loopback port is picked at start
    acme_email: str
    acme_ca_server: str
    tls_port: int
    log_level: str

    @property
    def tls(self) -> bool:
        return bool(self.acme_email)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> FrontDoorSettings:
        acme_email = env_str(env, "ACME_EMAIL", "")
        if acme_email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z", acme_email):
            raise ConfigError(f"ACME_EMAIL must be an e-mail address, got {acme_email!r}")
        ca_server = env_str(env, "ACME_CA_SERVER", "")
        if ca_server and not ca_server.startswith("https://"):
            raise ConfigError("ACME_CA_SERVER must be an https:// URL")
        level = env_str(env, "TRAEFIK_LOG_LEVEL", "WARN").upper()
        if level not in {"DEBUG", "INFO", "WARN", "ERROR"}:
            raise ConfigError(f"TRAEFIK_LOG_LEVEL must be DEBUG, INFO, WARN or ERROR, got {level!r}")
        return cls(
            host=env_str(env, "HOST", "127.0.0.1"),
            port=env_port(env, "PORT", 8000),
            internal_port=env_port(env, "INTERNAL_PORT", 0, minimum=0),
            acme_email=acme_email,
            acme_ca_server=ca_server,
            tls_port=env_port(env, "TLS_PORT", 8443),
            log_level=level,
        )
