"""The environment runner (app/env_builds.py, app/backends/env_builder.py)
with real uv against the real package index, the cache shared between runs
(tests/envs_cache.py) and a fresh ENVS_DIR per test."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from app import env_builds
from app import environments as envs
from app.backends.frameworks import DASH
from app.env_builds import Builder, BuildError
from app.extensions import db
from app.models import Environment, utcnow
from tests.envs_cache import uv_cache
from tests.factories import build_app, make_settings

HUMANIZE = "dash\nhumanize\n"


def env_vars(tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        "ENVS_DIR": str(tmp_path / "envs"),
        "ENV_CACHE_DIR": str(uv_cache()),
        "ENV_COMPILE_BYTECODE": "0",  # these environments run nothing: build them fast
        "ENV_BUILD_TIMEOUT": "180",
        **env,
    }


@pytest.fixture
def env_app(tmp_path: Path) -> Iterator[Flask]:
    app = build_app(make_settings(tmp_path, **env_vars(tmp_path)))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def builder_of(flask_app: Flask) -> Builder:
    return Builder.from_settings(flask_app.config["DORMOUSE"])


def lock_for(builder: Builder, requirements: str) -> tuple[str, str]:
    reqs, errors = envs.parse_requirements(requirements)
    assert errors == []
    lock = builder.resolve(envs.build_input(DASH, reqs))
    return envs.env_key(builder.identity, lock), lock


def leftovers(envs_dir: Path) -> list[str]:
    return (
        sorted(p.name for p in envs_dir.iterdir() if p.name.startswith(".tmp-")) if envs_dir.exists() else []
    )


def pip_freeze() -> str:
    return subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout


def test_an_environment_is_built_once_and_runs_its_packages(env_app: Flask) -> None:
    freeze_before = pip_freeze()
    builder = builder_of(env_app)
    key, lock = lock_for(builder, HUMANIZE)
    assert "humanize==" in lock and "gunicorn==" in lock and "dash==" in lock
    now = utcnow()

    row = env_builds.ensure(builder, key, lock, "dash", now=now)
    assert (row.status, row.error, row.builds) == ("ready", None, 1)
    assert row.size_bytes and row.size_bytes > 10 * 1024 * 1024
    python = builder.env_python(key)
    shown = subprocess.run(
        [str(python), "-I", "-c", "import humanize, dash, gunicorn; print(humanize.intcomma(1234567))"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert shown.stdout.strip() == "1,234,567", shown.stderr
    assert envs.contract_error(DASH, envs.installed(builder.env_dir(key))) is None
    assert stat.S_IMODE(builder.env_dir(key).stat().st_mode) == 0o755  # Dormouse reads it as another user
    assert leftovers(builder.s.envs_dir) == []

    runs = dict(env_builds.RUNS)
    again = env_builds.ensure(builder, key, lock, "dash", now=now + timedelta(minutes=5))
    assert (again.status, again.builds, again.built_at) == ("ready", 1, row.built_at)
    assert dict(env_builds.RUNS) == runs  # no uv at all the second time
    assert pip_freeze() == freeze_before  # Dormouse's own environment is untouched


def test_simultaneous_ensures_of_one_key_build_once(env_app: Flask) -> None:
    builder = builder_of(env_app)
    key, lock = lock_for(builder, "dash\nhumanize==4.12.3\n")
    results: list[str] = []
    builds_before = env_builds.RUNS["build"]

    def ensure() -> None:
        with env_app.app_context():
            results.append(env_builds.ensure(builder, key, lock, "dash", now=utcnow()).status)
            db.session.remove()

    threads = [threading.Thread(target=ensure) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(results)[-1] == "ready" and len(results) == 3
    assert env_builds.RUNS["build"] - builds_before == 1
    db.session.expire_all()
    assert db.session.get(Environment, key).builds == 1  # type: ignore[union-attr]


def test_two_builders_of_one_key_make_one_directory(env_app: Flask) -> None:
    builder = builder_of(env_app)
    key, lock = lock_for(builder, "dash\nhumanize==4.12.2\n")
    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(builder.build(key, lock))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(a["reused"] for a in answers) == [False, True]
    assert sorted(p.name for p in builder.s.envs_dir.iterdir() if p.name != ".uv-cache") == [key]


def test_a_package_that_does_not_exist_fails_with_the_resolver_s_words(env_app: Flask) -> None:
    builder = builder_of(env_app)
    with pytest.raises(BuildError) as caught:
        lock_for(builder, "dash\ndormouse-no-such-package-xyz\n")
    assert caught.value.kind == "requirements"
    assert "dormouse-no-such-package-xyz was not found in the package registry" in str(caught.value)
    assert not builder.s.envs_dir.exists() or list(builder.s.envs_dir.iterdir()) == []


def test_a_framework_pinned_out_of_range_fails_with_the_range(env_app: Flask) -> None:
    builder = builder_of(env_app)
    with pytest.raises(BuildError) as caught:
        lock_for(builder, "dash==2.18.2\n")
    assert "dash==2.18.2 and dash>=4,<5" in str(caught.value)


def test_a_build_past_its_time_is_killed_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        url = f"http://127.0.0.1:{port}/simple"
        vars_ = env_vars(tmp_path, ENV_INDEX_URL=url, ENV_BUILD_TIMEOUT="3")
        app = build_app(make_settings(tmp_path, **vars_))
        with app.app_context():
            builder = builder_of(app)
            with pytest.raises(BuildError) as caught:
                builder.resolve("dormouse-never-answered==1.0\n")
            assert caught.value.kind == "limit"
            assert "longer than 3 s" in str(caught.value)
            key, lock = envs.env_key(builder.identity, "dash==4.4.1\n"), "dormouse-never-answered==1.0\n"
            with pytest.raises(BuildError, match="ENV_BUILD_TIMEOUT"):
                builder.build(key, lock)
            assert leftovers(builder.s.envs_dir) == []
            assert not builder.env_dir(key).exists()
            db.session.remove()
            db.engine.dispose()
    assert processes_naming(f"127.0.0.1:{port}") == []  # the helper and uv named the index


def processes_naming(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def test_an_environment_over_the_size_limit_is_refused_whole(tmp_path: Path) -> None:
    app = build_app(make_settings(tmp_path, **env_vars(tmp_path, ENV_MAX_MB="1")))
    with app.app_context():
        builder = builder_of(app)
        key, lock = lock_for(builder, HUMANIZE)
        row = env_builds.ensure(builder, key, lock, "dash", now=utcnow())
        assert row.status == "failed"
        assert "the limit is 1 MB (ENV_MAX_MB)" in (row.error or "")
        assert not builder.env_dir(key).exists()
        assert leftovers(builder.s.envs_dir) == []
        db.session.remove()
        db.engine.dispose()


def test_prune_removes_unused_environments_and_build_leftovers(env_app: Flask) -> None:
    from tests.factories import make_user

    builder = builder_of(env_app)
    key, lock = lock_for(builder, HUMANIZE)
    now = utcnow()
    env_builds.ensure(builder, key, lock, "dash", now=now)
    stale = builder.s.envs_dir / f".tmp-{key}-crashed"
    stale.mkdir()
    os.utime(stale, (0, 0))
    keep = builder.s.keep_unused
    assert env_builds.prune(builder, now=now) == []  # younger than ENV_KEEP_UNUSED
    later = now + timedelta(seconds=keep + 1)

    from app.models import VizApp

    app_row = VizApp(owner=make_user("alice"), title="wave", framework="dash", source="dash-wave/app.py")
    app_row.env_key = key
    db.session.add(app_row)
    db.session.commit()
    assert env_builds.prune(builder, now=later) == []  # an app uses it
    assert builder.is_built(key)

    app_row.deleted_at = later
    db.session.commit()
    assert env_builds.prune(builder, now=later, dry_run=True) == [key]
    assert builder.is_built(key)
    assert env_builds.prune(builder, now=later) == [key]
    assert not builder.env_dir(key).exists()
    assert db.session.get(Environment, key) is None
    assert leftovers(builder.s.envs_dir) == []
