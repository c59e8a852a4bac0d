"""Settings parsing from the environment."""

from __future__ import annotations

import pytest

from app.config import Settings, normalise_database_url, parse_jwt_keys
from app.config_env import ConfigError
from app.front_door_settings import listen_address


def env(tmp_path, **values):
    return {"INSTANCE_PATH": str(tmp_path / "inst"), **values}


def test_defaults_work_on_a_laptop(tmp_path):
    s = Settings.from_env(env(tmp_path))
    assert s.backend == "local" and s.scheduler_enabled
    # tuned by bench/idle_sim.py (docs/performance.md, the idle-policy simulator)
    assert (s.idle_load_timeout, s.idle_ping_timeout, s.goodbye_grace) == (60, 300, 60)
    assert s.ping_interval == 10 and s.sweep_interval == 15 and s.activity_resolution == 5
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
    with pytest.raises(ConfigError, match="TRUSTED_HOSTS must be set"):
        Settings.from_env(env(tmp_path, DORMOUSE_ENV="production", SECRET_KEY="x" * 50, JWT_KEYS=KEYS))
    s = Settings.from_env(env(tmp_path, DORMOUSE_ENV="production", SECRET_KEY="x" * 50, JWT_KEYS=KEYS,
                              TRUSTED_HOSTS="dormouse.example.org"))  # fmt: skip
    flask = s.to_flask()
    assert flask["SESSION_COOKIE_SECURE"] is True
    # Over HTTPS Dormouse's cookies carry the __Host- prefix: no sibling host can toss one in.
    assert flask["SESSION_COOKIE_NAME"] == "__Host-session"
    assert flask["REMEMBER_COOKIE_NAME"] == "__Host-remember_token"
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
        ("GOODBYE_GRACE", "-1", "at least 0"),
        (
            "GOODBYE_GRACE",
            "15",
            r"GOODBYE_GRACE \(15 s\) must be longer than PING_INTERVAL \+ ACTIVITY_RESOLUTION \(15 s\)",
        ),
        ("IDLE_PING_TIMEOUT", "10", r"IDLE_PING_TIMEOUT \(10 s\) must be longer than PING_INTERVAL \(10 s\)"),
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
            GOODBYE_GRACE="15.5",
        )
    )
    assert (s.idle_load_timeout, s.idle_ping_timeout, s.goodbye_grace) == (90, 30.5, 15.5)
    assert s.scheduler_enabled is False and s.sweep_interval == 5


def test_apps_have_their_own_host_by_default(tmp_path):
    s = Settings.from_env(env(tmp_path, PORT="8123"))
    assert s.viz_host == "viz.dormouse.localhost" and s.viz_origin == "http://viz.dormouse.localhost:8123"
    assert s.trusted_hosts == ("dormouse.localhost", "localhost", "127.0.0.1", "::1")
    assert s.to_flask()["SESSION_COOKIE_NAME"] == "session"  # plain http on a laptop
    tls = Settings.from_env(env(tmp_path, ACME_EMAIL="ops@example.org", VIZ_HOST="viz.example.org"))
    assert tls.viz_origin == "https://viz.example.org"  # 443 behind TLS: no port in URLs
    moved = Settings.from_env(env(tmp_path, VIZ_HOST="apps.example.net", VIZ_SCHEME="https", VIZ_PORT="8443"))
    assert moved.viz_origin == "https://apps.example.net:8443"
    kube = Settings.from_env(env(tmp_path, BACKEND="kubernetes", VIZ_HOST="viz.example.org"))
    assert kube.viz_origin == "https://viz.example.org"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"TRUSTED_HOSTS": "viz.dormouse.localhost"}, "must not cover VIZ_HOST"),
        ({"TRUSTED_HOSTS": ".dormouse.localhost"}, "must not cover VIZ_HOST"),
        ({"TRUSTED_HOSTS": "example.org:8000"}, "leave ports out"),
        ({"TRUSTED_HOSTS": "exa mple.org,`x`"}, "not a host name"),
        ({"LOCAL_BIND_HOST": "0.0.0.0"}, "loopback"),
        ({"VIZ_HOST": "viz.example.org`) || Host(`x"}, "VIZ_HOST must be a host name"),
        ({"VIZ_SCHEME": "ftp"}, "VIZ_SCHEME"),
        ({"ACME_EMAIL": "nobody"}, "e-mail"),
        ({"ACME_CA_SERVER": "http://ca.example"}, "https://"),
        ({"TLS_PORT": "99999"}, "at most 65535"),
    ],
)
def test_front_door_settings_fail_clearly(tmp_path, values, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env(tmp_path, **values))


def test_trusted_hosts_are_names_without_ports(tmp_path):
    s = Settings.from_env(env(tmp_path, TRUSTED_HOSTS="Dormouse.Example.org, .example.net [::1]"))
    assert s.trusted_hosts == ("dormouse.example.org", ".example.net", "::1")


def test_the_listen_address_is_read_once_for_gunicorn():
    # Under the front door gunicorn listens on the loopback port it was handed.
    assert listen_address({"HOST": "0.0.0.0", "DORMOUSE_INTERNAL_PORT": "9100"}) == "127.0.0.1:9100"
    assert listen_address({"HOST": "0.0.0.0", "PORT": "9000"}) == "0.0.0.0:9000"
    assert listen_address({"HOST": "::", "PORT": "9000"}) == "[::]:9000"
    for bad, message in (("eighty", "whole number"), ("70000", "at most 65535"), ("0", "at least 1")):
        with pytest.raises(ConfigError, match=message):
            listen_address({"PORT": bad})


def test_database_urls_are_normalised():
    assert normalise_database_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_database_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert normalise_database_url("sqlite:////x.db") == "sqlite:////x.db"
