"""The local backend's launch commands, as plain data."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys

import pytest

from app.backends.base import AppSpec, BackendError
from app.backends.local_commands import child_env, launch, locate_source, run_as_prefix, split_host
from tests.factories import EXAMPLES, make_spec

PREFIX = "/alice/wave/default-abc234/"


def spec(framework: str, source: str, **kw) -> AppSpec:
    return make_spec(framework, source=source, **kw)


def test_dash_is_gunicorn_with_the_callable_and_no_shell():
    s = spec("dash", "dash-wave/app.py", callable="server")
    run = launch(s, locate_source(EXAMPLES, s.source), python="/py", bind_host="127.0.0.1", port=8123,
                 viz_authority="viz.dormouse.localhost:8000", stop_grace=5)  # fmt: skip
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
        bind_host="::1",
        viz_authority="viz.example.org:8000",
        port=8124,
    )
    argv = run.argv
    assert argv[1:7] == ["-I", "-u", "-B", "-m", "bokeh", "serve"]  # isolated Python
    assert argv[7] == str(EXAMPLES / "bokeh-sliders")
    assert argv[argv.index("--prefix") + 1] == PREFIX
    origins = [argv[i + 1] for i, a in enumerate(argv) if a == "--allow-websocket-origin"]
    # The browser's origin is the apps' host through Traefik; Dormouse's probe uses loopback.
    assert origins == ["viz.example.org:8000", "[::1]:8124"]
    assert argv[argv.index("--address") + 1] == "::1"
    assert run.app_path == PREFIX + "bokeh-sliders"


def test_bad_callables_and_sources_are_refused(tmp_path):
    s = spec("dash", "dash-wave/app.py", callable="app.server")
    with pytest.raises(BackendError, match="module-level name"):
        launch(s, locate_source(EXAMPLES, s.source), python="/py", bind_host="127.0.0.1", port=1,
               viz_authority="viz.dormouse.localhost", stop_grace=1)  # fmt: skip
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


def passwd(name: str, home: str) -> pwd.struct_passwd:
    return pwd.struct_passwd((name, "x", 10002, 10003, "", home, "/usr/sbin/nologin"))


def test_run_as_nobody_else_adds_nothing():
    assert run_as_prefix("") == []


def test_run_as_switches_user_drops_every_capability_and_gives_the_users_home():
    homes = {"dormouse-app": passwd("dormouse-app", "/home/dormouse-app")}
    prefix = run_as_prefix("dormouse-app", lookup=homes.__getitem__)
    setpriv, rest = prefix[: prefix.index("--")], prefix[prefix.index("--") + 1 :]
    assert setpriv[0] == "setpriv"
    assert {"--reuid=10002", "--regid=10003", "--clear-groups"} <= set(setpriv)
    assert {"--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs"} <= set(setpriv)
    assert rest == ["env", "HOME=/home/dormouse-app", "USER=dormouse-app", "LOGNAME=dormouse-app"]


@pytest.mark.parametrize("user", ["root;id", "-u", "Dormouse", "a b", "x" * 40])
def test_run_as_takes_user_names_only(user):
    with pytest.raises(BackendError, match="user name"):
        run_as_prefix(user, lookup=lambda name: passwd(name, "/"))


def test_run_as_an_unknown_user_is_an_error_at_launch():
    with pytest.raises(BackendError, match="no user 'ghost'"):
        run_as_prefix("ghost", lookup={}.__getitem__)


PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin") or sys.executable  # nobody can run it
SHOW_IDENTITY = """
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), os.environ["HOME"],
      *(int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")), status["NoNewPrivs"].strip())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (the container test covers it)")
def test_run_as_really_runs_the_app_as_that_user_with_no_capabilities():
    nobody = pwd.getpwnam("nobody")
    out = subprocess.run(
        [*run_as_prefix("nobody"), PYTHON, "-I", "-c", SHOW_IDENTITY],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split()  # fmt: skip
    ids = [str(nobody.pw_uid), str(nobody.pw_uid), str(nobody.pw_gid), "[]", nobody.pw_dir]
    assert out == [*ids, "0", "0", "0", "0", "1"]  # no capabilities, no_new_privs
