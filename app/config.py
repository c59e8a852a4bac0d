"""Configuration, read from environment variables only.

Every setting has a default that works on a laptop; the README's config table
lists them. The typed readers are in :mod:`app.config_env`; the front door's and
the Kubernetes backend's own settings in :mod:`app.front_door_settings` and
:mod:`app.kube_settings`. Values are parsed with a type so that a typo fails at start-up with
a clear message instead of surfacing later as odd behaviour.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from .config_env import ConfigError, env_bool, env_float, env_int, env_port, env_str
from .env_settings import EnvSettings
from .front_door_settings import LOCAL_VIZ_HOST, LOOPBACK_HOSTS, FrontDoorSettings, parse_trusted_hosts
from .kube_settings import KubeSettings
from .prices import Prices

REPO_ROOT = Path(__file__).resolve().parent.parent


def rate_limit_storage(uri: str) -> str:
    """``RATE_LIMIT_STORAGE``: ``memory://`` (each worker counts alone) or a
    Redis URL (every worker and replica counts together)."""
    if uri != "memory://" and not uri.startswith(("redis://", "rediss://", "redis+sentinel://")):
        raise ConfigError(f"RATE_LIMIT_STORAGE must be memory:// or a redis:// URL, got {uri!r}")
    return uri


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
    goodbye_grace: float  # seconds an app is kept after its last open page said goodbye
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
    max_live_deployments: int  # apps running at once, in total
    max_live_per_owner: int  # apps of one owner running at once
    max_apps_per_owner: int  # apps one user may publish
    prices: Prices  # PRICE_CPU_HOUR, PRICE_GB_HOUR
    metrics_token: str = field(repr=False)  # METRICS_TOKEN; "" = no /metrics
    rate_limits_enabled: bool
    rate_limit_storage: str  # Flask-Limiter storage URI: memory:// or redis://...
    secure_cookies: bool
    remember_days: float  # how long "keep me logged in" lasts
    api_token_max_ttl: float  # seconds an API token may live at most
    kube: KubeSettings
    envs: EnvSettings  # per-app environments (ENVS_DIR, ENV_*)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        env_name = env_str(env, "DORMOUSE_ENV", "development")
        if env_name not in {"development", "production", "testing"}:
            raise ConfigError(f"DORMOUSE_ENV must be development, production or testing, got {env_name!r}")
        production = env_name == "production"
        instance = Path(env_str(env, "INSTANCE_PATH", str(REPO_ROOT / "instance"))).resolve()
        database_url = normalise_database_url(
            env_str(env, "DATABASE_URL", f"sqlite:///{instance / 'dormouse.db'}")
        )
        backend = env_str(env, "BACKEND", "local")
        if backend not in {"local", "kubernetes"}:
            raise ConfigError(f"BACKEND must be 'local' or 'kubernetes', got {backend!r}")
        port_min = env_int(env, "LOCAL_PORT_MIN", 8100, minimum=1024)
        port_max = env_int(env, "LOCAL_PORT_MAX", 8299, minimum=1024)
        if port_max < port_min or port_max > 65535:
            raise ConfigError("LOCAL_PORT_MAX must be between LOCAL_PORT_MIN and 65535")
        bind_host = env_str(env, "LOCAL_BIND_HOST", "127.0.0.1")
        if bind_host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"LOCAL_BIND_HOST must be a loopback address ({', '.join(LOOPBACK_HOSTS)}): apps are "
                f"reached through Traefik only, got {bind_host!r}"
            )
        kube = KubeSettings.from_env(env, required=backend == "kubernetes")
        front = FrontDoorSettings.from_env(env)
        viz_host = kube.viz_host or LOCAL_VIZ_HOST
        viz_scheme = env_str(env, "VIZ_SCHEME", "https" if backend == "kubernetes" or front.tls else "http")
        if viz_scheme not in {"http", "https"}:
            raise ConfigError(f"VIZ_SCHEME must be http or https, got {viz_scheme!r}")
        plain_local = backend == "local" and not front.tls
        viz_port = env_port(env, "VIZ_PORT", front.port if plain_local else 0, minimum=0) or None
        ping_interval = env_float(env, "PING_INTERVAL", 10.0, minimum=1.0)
        resolution = env_float(env, "ACTIVITY_RESOLUTION", min(5.0, ping_interval / 2), minimum=0.0)
        ping_timeout = env_float(env, "IDLE_PING_TIMEOUT", 300.0, minimum=1.0)
        goodbye_grace = env_float(env, "GOODBYE_GRACE", 60.0, minimum=0.0)
        _check_watched_pages_keep(ping_interval, resolution, ping_timeout, goodbye_grace)
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
            apps_dir=Path(env_str(env, "APPS_DIR", str(REPO_ROOT / "examples"))).resolve(),
            # the defaults are tuned by bench/idle_sim.py (docs/performance.md)
            idle_load_timeout=env_float(env, "IDLE_LOAD_TIMEOUT", 60.0, minimum=1.0),
            idle_ping_timeout=ping_timeout,
            start_timeout=env_float(env, "START_TIMEOUT", 180.0, minimum=1.0),
            ping_interval=ping_interval,
            status_poll_interval=env_float(env, "STATUS_POLL_INTERVAL", 1.0, minimum=0.2),
            activity_resolution=resolution,
            goodbye_grace=goodbye_grace,
            sweep_interval=env_float(env, "SWEEP_INTERVAL", 15.0, minimum=1.0),
            scheduler_enabled=env_bool(env, "SCHEDULER_ENABLED", True),
            viz_host=viz_host,
            viz_scheme=viz_scheme,
            viz_port=viz_port,
            trusted_hosts=parse_trusted_hosts(env.get("TRUSTED_HOSTS", ""), viz_host, production),
            traefik_internal_url=env_str(env, "DORMOUSE_TRAEFIK_INTERNAL", ""),
            local_bind_host=bind_host,
            local_port_min=port_min,
            local_port_max=port_max,
            local_run_as=env_str(env, "LOCAL_RUN_AS", ""),
            max_cpu_millicores=env_int(env, "MAX_CPU_MILLICORES", 4000, minimum=1),
            max_memory_mib=env_int(env, "MAX_MEMORY_MIB", 8192, minimum=1),
            max_live_deployments=env_int(env, "MAX_LIVE_DEPLOYMENTS", 20, minimum=1),
            max_live_per_owner=env_int(env, "MAX_LIVE_PER_OWNER", 5, minimum=1),
            max_apps_per_owner=env_int(env, "MAX_APPS_PER_OWNER", 20, minimum=1),
            prices=Prices.from_env(env),
            metrics_token=env_str(env, "METRICS_TOKEN", ""),
            rate_limits_enabled=env_bool(env, "RATE_LIMITS", True),
            rate_limit_storage=rate_limit_storage(env_str(env, "RATE_LIMIT_STORAGE", "memory://")),
            secure_cookies=env_bool(env, "SESSION_COOKIE_SECURE", env_name == "production"),
            remember_days=env_float(env, "REMEMBER_DAYS", 14.0, minimum=0.01),
            api_token_max_ttl=env_float(env, "API_TOKEN_MAX_TTL", 90 * 86400.0, minimum=60.0),
            kube=kube,
            envs=EnvSettings.from_env(env, instance),
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
            "REMEMBER_COOKIE_DURATION": timedelta(days=self.remember_days),
            "WTF_CSRF_TIME_LIMIT": None,  # a viz tab may stay open for hours
        }


def _check_watched_pages_keep(
    ping_interval: float, resolution: float, ping_timeout: float, goodbye_grace: float
) -> None:
    """Refuse idle settings under which a page that is being watched could
    lose its app: a focused page pings every PING_INTERVAL, and its ping is
    stored at most ACTIVITY_RESOLUTION late, so both the ping limit and the
    goodbye grace (a page closing elsewhere, or a forged goodbye, must not
    stop an app someone still watches) must outlast that gap."""
    if ping_timeout <= ping_interval:
        raise ConfigError(
            f"IDLE_PING_TIMEOUT ({ping_timeout:g} s) must be longer than PING_INTERVAL "
            f"({ping_interval:g} s), or an app would be stopped between a watching page's pings"
        )
    if goodbye_grace <= ping_interval + resolution:
        raise ConfigError(
            f"GOODBYE_GRACE ({goodbye_grace:g} s) must be longer than PING_INTERVAL + "
            f"ACTIVITY_RESOLUTION ({ping_interval + resolution:g} s), or a page still watching "
            "could lose its app when another page says goodbye"
        )


def _engine_options(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        # Wait for a writer instead of failing at once; WAL is set per connection.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}
