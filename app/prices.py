"""What running costs: prices per CPU-hour and per GB-hour, from the
environment (``PRICE_CPU_HOUR``, ``PRICE_GB_HOUR``; Compute Studio's published
prices by default). The arithmetic is in :mod:`app.costs`."""

from __future__ import annotations

from dataclasses import dataclass

from .config_env import ConfigError, env_str

# Compute Studio's published prices, dollars per hour.
DEFAULT_PRICE_CPU_HOUR = 0.021811
DEFAULT_PRICE_GB_HOUR = 0.002923


def _env_price(env: dict[str, str], name: str, default: float) -> float:
    raw = env_str(env, name, repr(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a price in dollars, got {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a price of at least 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class Prices:
    cpu_hour: float = DEFAULT_PRICE_CPU_HOUR  # dollars per CPU core per hour
    gb_hour: float = DEFAULT_PRICE_GB_HOUR  # dollars per GB (GiB) of memory per hour

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Prices:
        """``PRICE_CPU_HOUR`` and ``PRICE_GB_HOUR``, dollars (Compute Studio's by default)."""
        return cls(
            cpu_hour=_env_price(env, "PRICE_CPU_HOUR", DEFAULT_PRICE_CPU_HOUR),
            gb_hour=_env_price(env, "PRICE_GB_HOUR", DEFAULT_PRICE_GB_HOUR),
        )

    def dollars(self, core_seconds: float, gb_seconds: float) -> float:
        return (core_seconds * self.cpu_hour + gb_seconds * self.gb_hour) / 3600.0
