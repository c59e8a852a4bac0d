"""Reading typed values from the environment, with clear errors: the
helpers every settings class uses (see :mod:`app.config`)."""

from __future__ import annotations

import json
from typing import Any


class ConfigError(RuntimeError):
    """The environment holds a value Dormouse cannot use."""


def env_str(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name, "")
    return value.strip() if value.strip() else default


def _env_number(env: dict[str, str], name: str, default: float, minimum: float, cast: type, what: str) -> Any:
    raw = env_str(env, name, str(default))
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
    raw = env_str(env, name, "1" if default else "0").lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def env_port(env: dict[str, str], name: str, default: int, minimum: int = 1) -> int:
    port = env_int(env, name, default, minimum=minimum)
    if port > 65535:
        raise ConfigError(f"{name} must be at most 65535, got {port}")
    return port


def env_json(env: dict[str, str], name: str, default: Any, kind: type) -> Any:
    raw = env_str(env, name, "")
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{name} must be JSON, got {raw!r}") from None
    if not isinstance(value, kind):
        raise ConfigError(f"{name} must be a JSON {'object' if kind is dict else 'array'}")
    return value
