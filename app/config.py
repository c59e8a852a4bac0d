"""Configuration, read from environment variables only.

Every setting has a default that works on a laptop; the README's config table
lists them. Values are parsed with a type so that a typo fails at start-up with
a clear message instead of surfacing later as odd behaviour.
"""

from __future__ import annotations

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


def listen_address(env: dict[str, str]) -> str:
    """``HOST:PORT`` for gunicorn's bind (read by gunicorn.conf.py only, so the
    server's address is parsed in one place, with the same clear errors)."""
    host = _get(env, "HOST", "127.0.0.1")
    port = env_int(env, "PORT", 8000, minimum=1)
    if port > 65535:
        raise ConfigError(f"PORT must be at most 65535, got {port}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    local_bind_host: str
    local_public_host: str
    local_port_min: int
    local_port_max: int
    local_scheme: str
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
        scheme = _get(env, "LOCAL_SCHEME", "http")
        if scheme not in {"http", "https"}:
            raise ConfigError(f"LOCAL_SCHEME must be http or https, got {scheme!r}")
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
            local_bind_host=_get(env, "LOCAL_BIND_HOST", "127.0.0.1"),
            local_public_host=_get(env, "LOCAL_PUBLIC_HOST", ""),
            local_port_min=port_min,
            local_port_max=port_max,
            local_scheme=scheme,
            max_cpu_millicores=env_int(env, "MAX_CPU_MILLICORES", 4000, minimum=1),
            max_memory_mib=env_int(env, "MAX_MEMORY_MIB", 8192, minimum=1),
            secure_cookies=env_bool(env, "SESSION_COOKIE_SECURE", env_name == "production"),
            kube=KubeSettings.from_env(env, required=backend == "kubernetes"),
        )

    def to_flask(self) -> dict[str, object]:
        return {
            "DORMOUSE": self,
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(self.database_url),
            "TESTING": self.env_name == "testing",
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.secure_cookies,
            "REMEMBER_COOKIE_SECURE": self.secure_cookies,
            "WTF_CSRF_TIME_LIMIT": None,  # a viz tab may stay open for hours
        }


def _engine_options(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        # Wait for a writer instead of failing at once; WAL is set per connection.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}
