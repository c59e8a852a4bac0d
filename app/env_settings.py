"""The settings of per-app environments (app/env_builds.py), read from
environment variables like the rest of :mod:`app.config`."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .config_env import ConfigError, env_bool, env_float, env_int, env_str


@dataclass(frozen=True)
class EnvSettings:
    envs_dir: Path  # ENVS_DIR: one directory per environment, named by its key
    cache_dir: Path  # ENV_CACHE_DIR: uv's cache (same filesystem: hard links)
    index_url: str  # ENV_INDEX_URL: the package index ("" = uv's default, PyPI)
    build_timeout: float  # ENV_BUILD_TIMEOUT: seconds one resolve or build may take
    max_bytes: int  # ENV_MAX_MB: the largest environment a build may make
    keep_unused: float  # ENV_KEEP_UNUSED: seconds an environment no app uses is kept
    compile_bytecode: bool  # ENV_COMPILE_BYTECODE: .pyc files at build time (faster starts)
    locks_dir: Path  # INSTANCE_PATH/env-locks: Dormouse's per-key build locks

    @classmethod
    def from_env(cls, env: dict[str, str], instance: Path) -> EnvSettings:
        envs_dir = Path(env_str(env, "ENVS_DIR", str(instance / "envs"))).resolve()
        cache_dir = Path(env_str(env, "ENV_CACHE_DIR", str(envs_dir / ".uv-cache"))).resolve()
        index_url = env_str(env, "ENV_INDEX_URL", "")
        if index_url:
            parts = urllib.parse.urlsplit(index_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"ENV_INDEX_URL must be an http(s) URL of a package index, got {index_url!r}"
                )
        return cls(
            envs_dir=envs_dir,
            cache_dir=cache_dir,
            index_url=index_url,
            build_timeout=env_float(env, "ENV_BUILD_TIMEOUT", 300.0, minimum=1.0),
            max_bytes=env_int(env, "ENV_MAX_MB", 1024, minimum=1) * 1024 * 1024,
            keep_unused=env_float(env, "ENV_KEEP_UNUSED", 7 * 86400.0, minimum=0.0),
            compile_bytecode=env_bool(env, "ENV_COMPILE_BYTECODE", True),
            locks_dir=instance / "env-locks",
        )
