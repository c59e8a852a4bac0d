"""Where the tests keep uv's cache and the framework's default environments
between runs, outside the repo (CI machines start empty: the first run
downloads, later runs are warm), and the default environments themselves.

* ``DORMOUSE_TEST_UV_CACHE``: uv's cache; default ``/var/cache/dormouse/uv``
  when that is writable, else ``~/.cache/dormouse-uv`` (never the machine's
  own ``~/.cache/uv``, which may hold wheels built from source).
* the default environments: ``<cache>-envs/<key>`` (key-addressed, so a
  changed pin builds a new one), shared by every test that runs an app and is
  not about building environments. Tests about builds use their own
  ``ENVS_DIR`` with the shared cache.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

SYSTEM_CACHE = Path("/var/cache/dormouse/uv")


@functools.cache
def uv_cache() -> Path:
    chosen = os.environ.get("DORMOUSE_TEST_UV_CACHE")
    if chosen:
        path = Path(chosen)
    else:
        path = SYSTEM_CACHE
        try:
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path, os.W_OK):
                raise PermissionError(path)
        except OSError:
            path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dormouse-uv"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def shared_envs() -> Path:
    path = uv_cache().with_name(uv_cache().name + "-envs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_settings_vars(envs_dir: Path | None = None) -> dict[str, str]:
    """The ENV_* settings of a test's Dormouse: the shared cache, and the
    shared default environments unless ``envs_dir`` is given."""
    return {"ENVS_DIR": str(envs_dir or shared_envs()), "ENV_CACHE_DIR": str(uv_cache())}


@functools.cache
def _locks() -> Path:
    return Path(tempfile.mkdtemp(prefix="dormouse-test-env-locks-"))


@functools.cache
def default_python(framework: str) -> str:
    """The ``bin/python`` of the framework's default environment, built into
    the shared directory the first time (in this run, or ever)."""
    from app import environments as envs
    from app.backends import frameworks
    from app.env_builds import Builder, base_python, uv_binary
    from app.env_settings import EnvSettings

    settings = EnvSettings.from_env(env_settings_vars(), _locks())
    builder = Builder(settings, uv_binary(), base_python())
    lock = builder.resolve(envs.build_input(frameworks.get(framework), None))
    key = envs.env_key(builder.identity, lock)
    if not builder.is_built(key):
        builder.build(key, lock)
    return str(builder.env_python(key))
