"""The local backend's launch commands, as plain data."""

from __future__ import annotations

import pytest

from app.backends.base import AppSpec, BackendError
from app.backends.local_commands import child_env, launch, locate_source, split_host
from tests.factories import EXAMPLES, make_spec

PREFIX = "/alice/wave/default-abc234/"


def spec(framework: str, source: str, **kw) -> AppSpec:
    return make_spec(framework, source=source, **kw)


def test_dash_is_gunicorn_with_the_callable_and_no_shell():
    s = spec("dash", "dash-wave/app.py", callable="server")
    run = launch(
        s, locate_source(EXAMPLES, s.source), python="/py", bind_host="127.0.0.1", port=8123, stop_grace=5
    )
    assert run.argv[:6] == ["/py", "-I", "-u", "-B", "-m", "gunicorn"]  # isolated Python
    assert run.argv[-1] == "app:server" and "127.0.0.1:8123" in run.argv
    assert run.cwd == EXAMPLES / "dash-wave" and run.app_path == PREFIX


def test_dash_prefix_comes_through_the_environment_and_secrets_stay_home():
    s = spec("dash", "dash-wave/app.py", env={"COLOR": "red"})
    env = child_env(
        s,
        {
            "PATH": "/bin",
            "SECRET_KEY": "x",
            "DATABASE_URL": "y",
            "LC_ALL": "C",
            "DASH_URL_BASE_PATHNAME": "/wrong/",
        },
    )
    assert env["DASH_ROUTES_PATHNAME_PREFIX"] == env["DASH_REQUESTS_PATHNAME_PREFIX"] == PREFIX
    assert env["COLOR"] == "red" and env["PATH"] == "/bin" and env["LC_ALL"] == "C"
    assert "SECRET_KEY" not in env and "DATABASE_URL" not in env
    assert "DASH_URL_BASE_PATHNAME" not in env


def test_bokeh_directory_app_with_prefix_and_websocket_origins():
    s = spec("bokeh", "bokeh-sliders/main.py")
    run = launch(
        s,
        locate_source(EXAMPLES, s.source),
        python="/py",
        bind_host="0.0.0.0",
        public_host="viz.example.org:8000",
        port=8124,
    )
    argv = run.argv
    assert argv[1:7] == ["-I", "-u", "-B", "-m", "bokeh", "serve"]  # isolated Python
    assert argv[7] == str(EXAMPLES / "bokeh-sliders")
    assert argv[argv.index("--prefix") + 1] == PREFIX
    origins = [argv[i + 1] for i, a in enumerate(argv) if a == "--allow-websocket-origin"]
    assert origins == ["127.0.0.1:8124", "localhost:8124", "viz.example.org:8124"]
    assert run.app_path == PREFIX + "bokeh-sliders"


def test_bad_callables_and_sources_are_refused(tmp_path):
    s = spec("dash", "dash-wave/app.py", callable="app.server")
    with pytest.raises(BackendError, match="module-level name"):
        launch(
            s, locate_source(EXAMPLES, s.source), python="/py", bind_host="127.0.0.1", port=1, stop_grace=1
        )
    with pytest.raises(BackendError, match="outside the apps directory"):
        locate_source(EXAMPLES / "dash-wave", "../bokeh-sliders/main.py")
    with pytest.raises(BackendError, match="relative"):
        locate_source(EXAMPLES, "/etc/passwd")


@pytest.mark.parametrize(
    "host, expected",
    [
        ("example.org:8000", "example.org"),
        ("example.org", "example.org"),
        ("[::1]:8000", "[::1]"),
        ("::1", "[::1]"),
    ],
)
def test_split_host(host, expected):
    assert split_host(host) == expected


def test_a_reserved_app_variable_never_reaches_a_child_environment():
    s = spec("dash", "dash-wave/app.py", env={"COLOR": "red", "BASH_ENV": "$(id > /tmp/x)"})
    with pytest.raises(BackendError, match="BASH_ENV"):
        child_env(s, {"PATH": "/bin"})
