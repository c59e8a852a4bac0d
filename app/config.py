"""Configuration, read from environment variables only.

Every setting has a default that works on a laptop; the README's config table
lists them. Values are parsed with a type so that a typo fails at start-up with
a clear message instead of surfacing later as odd behaviour.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .slugs import DNS_LABEL_RE, HOSTNAME_RE

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """The environment holds a value Dormouse cannot use."""


def _get(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name, "")
    return value.strip() if value.strip() else default


def _env_number(env: dict[str, str], name: str, default: float, minimum: float, cast: type, what: str) -> Any:
    raw = _get(env, name, str(default))
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    return _env_number(env, name, default, minimum, int, "a whole number")


def env_float(env: dict[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    return _env_number(env, name, default, minimum, float, "a number of seconds")


def env_bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name, "1" if default else "0").lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def normalise_database_url(url: str) -> str:
    """Accept the ``postgres://`` spelling that hosting platforms hand out and
    use the psycopg 3 driver for PostgreSQL."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _instance_secret(
    env: dict[str, str], name: str, instance: Path, production: bool, make: Callable[[], str]
) -> str:
    """The secret in environment variable ``name``; on a laptop, made once by
    ``make`` and kept in ``instance/<name lower-cased>`` (mode 0600), so it
    survives restarts and every gunicorn worker reads the same one."""
    value = env.get(name, "").strip()
    if value:
        return value
    if production:
        raise ConfigError(
            f"{name} must be set when DORMOUSE_ENV=production (every worker and replica must share it)"
        )
    path = instance / name.lower()
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    instance.mkdir(parents=True, exist_ok=True)
    candidate = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(candidate)
    return candidate


KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")
MIN_KEY_BYTES = 32


def parse_jwt_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """``JWT_KEYS``: ``kid:secret`` pairs separated by spaces or commas; the
    first signs new tokens, every one verifies (so keys rotate without
    logging anyone out: add the new key first, drop the old one later)."""
    keys: list[tuple[str, str]] = []
    for item in raw.replace(",", " ").split():
        kid, sep, secret = item.partition(":")
        if not sep or not KEY_ID_RE.match(kid):
            raise ConfigError(
                f"JWT_KEYS: write KEY_ID:SECRET pairs (key ids of letters, digits, - or _), not {kid!r}"
            )
        if len(secret.encode()) < MIN_KEY_BYTES:
            raise ConfigError(f"JWT_KEYS: the secret of key {kid!r} must be at least {MIN_KEY_BYTES} bytes")
        if any(kid == known for known, _ in keys):
            raise ConfigError(f"JWT_KEYS: key id {kid!r} appears twice")
        keys.append((kid, secret))
    if not keys:
        raise ConfigError("JWT_KEYS holds no key")
    return tuple(keys)


TRAEFIK_APIS = ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1")


def env_port(env: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    port = env_int(env, name, default, minimum=minimum)
    if port > 65535:
        raise ConfigError(f"{name} must be at most 65535, got {port}")
    return port


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
    return f"{_bracketed(_get(env, 'HOST', '127.0.0.1'))}:{env_port(env, 'PORT', 8000)}"


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
        acme_email = _get(env, "ACME_EMAIL", "")
        if acme_email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z", acme_email):
            raise ConfigError(f"ACME_EMAIL must be an e-mail address, got {acme_email!r}")
        ca_server = _get(env, "ACME_CA_SERVER", "")
        if ca_server and not ca_server.startswith("https://"):
            raise ConfigError("ACME_CA_SERVER must be an https:// URL")
        level = _get(env, "TRAEFIK_LOG_LEVEL", "WARN").upper()
        if level not in {"DEBUG", "INFO", "WARN", "ERROR"}:
            raise ConfigError(f"TRAEFIK_LOG_LEVEL must be DEBUG, INFO, WARN or ERROR, got {level!r}")
        return cls(
            host=_get(env, "HOST", "127.0.0.1"),
            port=env_port(env, "PORT", 8000),
            internal_port=env_port(env, "INTERNAL_PORT", 0, minimum=0),
            acme_email=acme_email,
            acme_ca_server=ca_server,
            tls_port=env_port(env, "TLS_PORT", 8443),
            log_level=level,
        )


@dataclass(frozen=True)
class KubeSettings:
    """Settings of the Kubernetes backend (``BACKEND=kubernetes``)."""

    namespace: str
    viz_host: str
    viz_scheme: str
    context: str | None
    traefik_api: str
    entrypoint: str
    cert_resolver: str
    middlewares: tuple[str, ...]
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, Any], ...]
    image_pull_secret: str | None
    request_timeout: float
    retries: int

    @classmethod
    def from_env(cls, env: dict[str, str], required: bool) -> KubeSettings:
        namespace = _get(env, "K8S_NAMESPACE", "dormouse-apps")
        if not DNS_LABEL_RE.match(namespace):
            raise ConfigError(f"K8S_NAMESPACE must be a DNS-1123 label, got {namespace!r}")
        viz_host = _get(env, "VIZ_HOST", "").lower()
        if required and not viz_host:
            raise ConfigError("VIZ_HOST must be set with BACKEND=kubernetes (e.g. viz.example.org)")
        if viz_host and not HOSTNAME_RE.match(viz_host):
            raise ConfigError(f"VIZ_HOST must be a host name, got {viz_host!r}")
        traefik_api = _get(env, "TRAEFIK_API", TRAEFIK_APIS[0])
        if traefik_api not in TRAEFIK_APIS:
            raise ConfigError(f"TRAEFIK_API must be one of {', '.join(TRAEFIK_APIS)}")
        entrypoint = _get(env, "TRAEFIK_ENTRYPOINT", "websecure")
        cert_resolver = _get(env, "TRAEFIK_CERT_RESOLVER", "letsencrypt")
        for name, value in (("TRAEFIK_ENTRYPOINT", entrypoint), ("TRAEFIK_CERT_RESOLVER", cert_resolver)):
            if not re.match(r"^[A-Za-z0-9_-]{1,63}$", value):
                raise ConfigError(f"{name} must be a simple name, got {value!r}")
        middlewares = tuple(m for m in _get(env, "TRAEFIK_MIDDLEWARES", "").replace(",", " ").split() if m)
        for m in middlewares:
            if not DNS_LABEL_RE.match(m.split("/")[-1]):
                raise ConfigError(f"TRAEFIK_MIDDLEWARES: {m!r} is not a middleware name")
        return cls(
            namespace=namespace,
            viz_host=viz_host,
            viz_scheme=_get(env, "VIZ_SCHEME", "https"),
            context=_get(env, "K8S_CONTEXT", "") or None,
            traefik_api=traefik_api,
            entrypoint=entrypoint,
            cert_resolver=cert_resolver,
            middlewares=middlewares,
            node_selector=_json_env(env, "K8S_NODE_SELECTOR", {}, dict),
            tolerations=tuple(_json_env(env, "K8S_TOLERATIONS", [], list)),
            image_pull_secret=_get(env, "K8S_IMAGE_PULL_SECRET", "") or None,
            request_timeout=env_float(env, "K8S_REQUEST_TIMEOUT", 10.0, minimum=0.1),
            retries=env_int(env, "K8S_RETRIES", 3, minimum=0),
        )


def _json_env(env: dict[str, str], name: str, default: Any, kind: type) -> Any:
    raw = _get(env, name, "")
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{name} must be JSON, got {raw!r}") from None
    if not isinstance(value, kind):
        raise ConfigError(f"{name} must be a JSON {'object' if kind is dict else 'array'}")
    return value


@dataclass(frozen=True)
class Settings:
    """Typed view of the environment; ``to_flask()`` gives Flask's config keys."""

    env_name: str
    instance_path: Path
    database_url: str
    secret_key: str
    jwt_keys: tuple[tuple[str, str], ...]  # (key id, secret); the first signs
    viz_token_ttl: float  # seconds an app's one-time entry token is valid
    viz_session_ttl: float  # seconds the app cookie it is exchanged for is valid
    backend: str
    apps_dir: Path
    idle_load_timeout: float
    idle_ping_timeout: float
    start_timeout: float
    ping_interval: float
    status_poll_interval: float
    activity_resolution: float
    sweep_interval: float
    scheduler_enabled: bool
    viz_host: str  # where apps are served (never one of trusted_hosts)
    viz_scheme: str
    viz_port: int | None  # None: the scheme's default port
    trusted_hosts: tuple[str, ...]  # Dormouse's own host names
    traefik_internal_url: str  # set by the front door: Traefik's loopback entry point
    local_bind_host: str
    local_port_min: int
    local_port_max: int
    local_run_as: str  # the user app processes run as ("": Dormouse's own)
    max_cpu_millicores: int
    max_memory_mib: int
    secure_cookies: bool
    kube: KubeSettings

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        env_name = _get(env, "DORMOUSE_ENV", "development")
        if env_name not in {"development", "production", "testing"}:
            raise ConfigError(f"DORMOUSE_ENV must be development, production or testing, got {env_name!r}")
        production = env_name == "production"
        instance = Path(_get(env, "INSTANCE_PATH", str(REPO_ROOT / "instance"))).resolve()
        database_url = normalise_database_url(
            _get(env, "DATABASE_URL", f"sqlite:///{instance / 'dormouse.db'}")
        )
        backend = _get(env, "BACKEND", "local")
        if backend not in {"local", "kubernetes"}:
            raise ConfigError(f"BACKEND must be 'local' or 'kubernetes', got {backend!r}")
        port_min = env_int(env, "LOCAL_PORT_MIN", 8100, minimum=1024)
        port_max = env_int(env, "LOCAL_PORT_MAX", 8299, minimum=1024)
        if port_max < port_min or port_max > 65535:
            raise ConfigError("LOCAL_PORT_MAX must be between LOCAL_PORT_MIN and 65535")
        bind_host = _get(env, "LOCAL_BIND_HOST", "127.0.0.1")
        if bind_host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"LOCAL_BIND_HOST must be a loopback address ({', '.join(LOOPBACK_HOSTS)}): apps are "
                f"reached through Traefik only, got {bind_host!r}"
            )
        kube = KubeSettings.from_env(env, required=backend == "kubernetes")
        front = FrontDoorSettings.from_env(env)
        viz_host = kube.viz_host or LOCAL_VIZ_HOST
        viz_scheme = _get(env, "VIZ_SCHEME", "https" if backend == "kubernetes" or front.tls else "http")
        if viz_scheme not in {"http", "https"}:
            raise ConfigError(f"VIZ_SCHEME must be http or https, got {viz_scheme!r}")
        plain_local = backend == "local" and not front.tls
        viz_port = env_port(env, "VIZ_PORT", front.port if plain_local else 0, minimum=0) or None
        ping_interval = env_float(env, "PING_INTERVAL", 10.0, minimum=1.0)
        return cls(
            env_name=env_name,
            instance_path=instance,
            database_url=database_url,
            secret_key=_instance_secret(
                env, "SECRET_KEY", instance, env_name == "production", lambda: secrets.token_urlsafe(48)
            ),
            jwt_keys=parse_jwt_keys(
                _instance_secret(
                    env,
                    "JWT_KEYS",
                    instance,
                    env_name == "production",
                    lambda: f"k{secrets.token_hex(4)}:{secrets.token_urlsafe(48)}",
                )
            ),
            viz_token_ttl=env_float(env, "VIZ_TOKEN_TTL", 60.0, minimum=5.0),
            viz_session_ttl=env_float(env, "VIZ_SESSION_TTL", 12 * 3600.0, minimum=60.0),
            backend=backend,
            apps_dir=Path(_get(env, "APPS_DIR", str(REPO_ROOT / "examples"))).resolve(),
            idle_load_timeout=env_float(env, "IDLE_LOAD_TIMEOUT", 1800.0, minimum=1.0),
            idle_ping_timeout=env_float(env, "IDLE_PING_TIMEOUT", 1800.0, minimum=1.0),
            start_timeout=env_float(env, "START_TIMEOUT", 180.0, minimum=1.0),
            ping_interval=ping_interval,
            status_poll_interval=env_float(env, "STATUS_POLL_INTERVAL", 1.0, minimum=0.2),
            activity_resolution=env_float(
                env, "ACTIVITY_RESOLUTION", min(5.0, ping_interval / 2), minimum=0.0
            ),
            sweep_interval=env_float(env, "SWEEP_INTERVAL", 60.0, minimum=1.0),
            scheduler_enabled=env_bool(env, "SCHEDULER_ENABLED", True),
            viz_host=viz_host,
            viz_scheme=viz_scheme,
            viz_port=viz_port,
            trusted_hosts=parse_trusted_hosts(env.get("TRUSTED_HOSTS", ""), viz_host, production),
            traefik_internal_url=_get(env, "DORMOUSE_TRAEFIK_INTERNAL", ""),
            local_bind_host=bind_host,
            local_port_min=port_min,
            local_port_max=port_max,
            local_run_as=_get(env, "LOCAL_RUN_AS", ""),
            max_cpu_millicores=env_int(env, "MAX_CPU_MILLICORES", 4000, minimum=1),
            max_memory_mib=env_int(env, "MAX_MEMORY_MIB", 8192, minimum=1),
            secure_cookies=env_bool(env, "SESSION_COOKIE_SECURE", env_name == "production"),
            kube=kube,
        )

    @property
    def cookie_prefix(self) -> str:
        return "__Host-" if self.secure_cookies else ""

    @property
    def viz_origin(self) -> str:
        """``scheme://host[:port]`` of the apps' host, as a browser writes it."""
        default = {"http": 80, "https": 443}[self.viz_scheme]
        port = f":{self.viz_port}" if self.viz_port and self.viz_port != default else ""
        return f"{self.viz_scheme}://{self.viz_host}{port}"

    def to_flask(self) -> dict[str, object]:
        return {
            "DORMOUSE": self,
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(self.database_url),
            "TESTING": self.env_name == "testing",
            # Host-only cookies (no Domain), so an app on VIZ_HOST never gets them;
            # over HTTPS the __Host- prefix also stops a sibling host from
            # setting (tossing) one in their place.
            "SESSION_COOKIE_NAME": f"{self.cookie_prefix}session",
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.secure_cookies,
            "REMEMBER_COOKIE_NAME": f"{self.cookie_prefix}remember_token",
            "REMEMBER_COOKIE_SECURE": self.secure_cookies,
            "REMEMBER_COOKIE_HTTPONLY": True,
            "REMEMBER_COOKIE_SAMESITE": "Lax",
            "WTF_CSRF_TIME_LIMIT": None,  # a viz tab may stay open for hours
        }


def _engine_options(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        # Wait for a writer instead of failing at once; WAL is set per connection.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}
