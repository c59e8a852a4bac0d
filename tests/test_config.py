"""Settings parsing from the environment."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings, listen_address, normalise_database_url, parse_jwt_keys


def env(tmp_path, **values):
    return {"INSTANCE_PATH": str(tmp_path / "inst"), **values}


def test_defaults_work_on_a_laptop(tmp_path):
    s = Settings.from_env(env(tmp_path))
    assert s.backend == "local" and s.scheduler_enabled
    assert s.idle_load_timeout == 1800 and s.idle_ping_timeout == 1800
    assert s.ping_interval == 10 and s.sweep_interval == 60
    assert s.database_url == f"sqlite:///{tmp_path / 'inst' / 'dormouse.db'}"
    assert s.apps_dir.name == "examples" and s.apps_dir.is_dir()
    assert listen_address({}) == "127.0.0.1:8000"


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = Settings.from_env(env(tmp_path)).secret_key
    assert len(first) > 40
    assert Settings.from_env(env(tmp_path)).secret_key == first
    assert (tmp_path / "inst" / "secret_key").stat().st_mode & 0o777 == 0o600


KEYS = "k2:" + "b" * 40 + " k1:" + "a" * 40


def test_production_requires_a_secret_key_and_jwt_keys(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY must be set"):
        Settings.from_env(env(tmp_path, DORMOUSE_ENV="production", JWT_KEYS=KEYS))
    with pytest.raises(ConfigError, match="JWT_KEYS must be set"):
        Settings.from_env(env(tmp_path, DORMOUSE_ENV="production", SECRET_KEY="x" * 50))
    s = Settings.from_env(env(tmp_path, DORMOUSE_ENV="production", SECRET_KEY="x" * 50, JWT_KEYS=KEYS))
    assert s.to_flask()["SESSION_COOKIE_SECURE"] is True
    assert s.jwt_keys == (("k2", "b" * 40), ("k1", "a" * 40))  # the first signs
    assert not (tmp_path / "inst" / "jwt_keys").exists()  # nothing written in production


def test_jwt_keys_are_generated_once_apart_from_the_secret_key(tmp_path):
    first = Settings.from_env(env(tmp_path))
    assert first.jwt_keys == Settings.from_env(env(tmp_path)).jwt_keys
    ((kid, secret),) = first.jwt_keys
    assert secret != first.secret_key and len(secret) >= 32
    assert (tmp_path / "inst" / "jwt_keys").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "holds no key"),
        ("nokid", "KEY_ID:SECRET"),
        ("bad kid:" + "a" * 40, "KEY_ID:SECRET"),
        ("k1:short", "at least 32 bytes"),
        ("k1:" + "a" * 40 + ",k1:" + "b" * 40, "appears twice"),
    ],
)
def test_bad_jwt_keys_fail_clearly(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_jwt_keys(raw)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("IDLE_LOAD_TIMEOUT", "soon", "number of seconds"),
        ("IDLE_PING_TIMEOUT", "0", "at least 1"),
        ("SCHEDULER_ENABLED", "maybe", "1/0"),
        ("BACKEND", "nomad", "BACKEND must be"),
        ("LOCAL_PORT_MAX", "1500", "LOCAL_PORT_MAX"),
        ("DORMOUSE_ENV", "staging", "DORMOUSE_ENV"),
    ],
)
def test_bad_values_fail_clearly(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env(tmp_path, **{name: value}))


def test_typed_values(tmp_path):
    s = Settings.from_env(
        env(
            tmp_path,
            IDLE_LOAD_TIMEOUT="90",
            IDLE_PING_TIMEOUT="30.5",
            SCHEDULER_ENABLED="off",
            SWEEP_INTERVAL="5",
        )
    )
    assert (s.idle_load_timeout, s.idle_ping_timeout) == (90, 30.5)
    assert s.scheduler_enabled is False and s.sweep_interval == 5


def test_the_listen_address_is_read_once_for_gunicorn():
    assert listen_address({"HOST": "0.0.0.0", "PORT": "9000"}) == "0.0.0.0:9000"
    assert listen_address({"HOST": "::", "PORT": "9000"}) == "[::]:9000"
    for bad, message in (("eighty", "whole number"), ("70000", "at most 65535"), ("0", "at least 1")):
        with pytest.raises(ConfigError, match=message):
            listen_address({"PORT": bad})


def test_database_urls_are_normalised():
    assert normalise_database_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_database_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert normalise_database_url("sqlite:////x.db") == "sqlite:////x.db"
