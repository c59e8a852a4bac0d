"""Tests of the local process backend with real processes (no mocks).

Each test starts real gunicorn / bokeh serve process groups from the demo apps
in ``examples/`` (or tiny apps written to a tmp dir), waits with a deadline,
and stops everything it started in the fixture teardown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.backends.base import AppSpec, BackendError, BackendStatus
from app.backends.local import ROUTE_PRUNE_GRACE, LocalBackend
from app.backends.local_watchdog import KILL_WAIT, group_members
from tests.appchecks import check_bokeh_app, check_bokeh_origin_refused, check_dash_callback
from tests.factories import EXAMPLES, make_spec
from tests.processes import Started
from tests.waiting import wait_for

DEADLINE = 60.0

pytestmark = pytest.mark.timeout(300)


class Tracker(Started):
    """Makes backends on one run dir and remembers every ref so teardown can
    stop them all."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir

    def backend(self, apps_dir: Path = EXAMPLES, **kwargs: object) -> LocalBackend:
        return LocalBackend(apps_dir=apps_dir, run_dir=self.run_dir, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Tracker]:
    t = Tracker(tmp_path / "run")
    try:
        yield t
    finally:
        t.stop_all()


def spec(framework: str, source: str, name: str = "alice-wave-x7k2p9", **kw: object) -> AppSpec:
    owner, title, public = name.split("-", 2)
    return make_spec(framework, owner=owner, title=title, public_name=public, source=source, **kw)


def wait_state(backend: LocalBackend, ref: str, timeout: float = DEADLINE) -> BackendStatus:
    """The status once it is no longer ``starting``."""
    return wait_for(
        lambda: (st := backend.status(ref)).state != "starting" and st,
        timeout,
        f"{json.loads(ref)['name']} to finish starting",
    )


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def local_url(ref: str) -> str:
    r = json.loads(ref)
    return f"http://127.0.0.1:{r['port']}{r['path']}"


# ----------------------------------------------------------------- the demos
def assert_isolated(ref: str) -> None:
    """The app's server runs on an isolated Python (-I), with nothing of
    Dormouse's in its environment."""
    pgid = json.loads(ref)["pid"]
    servers = []
    for pid in group_members(pgid):
        if pid == pgid:
            continue  # the watchdog
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        servers.append(pid)
        assert argv[1:4] == [b"-I", b"-u", b"-B"], argv
        names = {entry.split(b"=", 1)[0] for entry in environ if entry}
        assert not names & {b"SECRET_KEY", b"DATABASE_URL", b"PYTHONPATH", b"DORMOUSE_SUPERVISOR_PID"}, names
    assert servers, "no app process found"


def test_dash_demo_starts_runs_and_calls_back(tracker: Tracker) -> None:
    backend = tracker.backend()
    ref = tracker.create(backend, spec("dash", "dash-wave/app.py", callable="server"))
    first = backend.status(ref)
    assert first.state == "starting" and first.phase, first
    st = wait_state(backend, ref)
    assert st.state == "running", st

    assert backend.url(ref) == "http://viz.dormouse.localhost:8000/alice/wave/x7k2p9/"  # through Traefik
    url = local_url(ref)
    assert requests.get(url, timeout=10).status_code == 200
    check_dash_callback(url)
    assert backend.status(ref).state == "running"
    assert_isolated(ref)


def test_bokeh_demo_runs_with_autoload_and_websocket(tracker: Tracker) -> None:
    backend = tracker.backend(viz_origin="https://viz.example.org")
    ref = tracker.create(backend, spec("bokeh", "bokeh-sliders/main.py", "bob-sliders-p4q8"))
    st = wait_state(backend, ref)
    assert st.state == "running", st
    port = json.loads(ref)["port"]
    assert backend.url(ref) == "https://viz.example.org/bob/sliders/p4q8/bokeh-sliders"

    app_url = local_url(ref)
    check_bokeh_app(app_url, origin="https://viz.example.org")  # the browser, through Traefik
    check_bokeh_app(app_url, origin=f"http://127.0.0.1:{port}")  # Dormouse's own probe
    check_bokeh_origin_refused(app_url, origin="https://evil.example.com")
    check_bokeh_origin_refused(app_url, origin=f"http://localhost:{port}")
    check_bokeh_origin_refused(app_url, origin="http://127.0.0.1:1")
    assert_isolated(ref)


@pytest.mark.parametrize(
    ("source", "app_name"),
    [("bokeh-sliders", "bokeh-sliders"), ("bokeh-sliders/main.py", "bokeh-sliders"), ("solo.py", "solo")],
)
def test_bokeh_app_path(tracker: Tracker, tmp_path: Path, source: str, app_name: str) -> None:
    apps = tmp_path / "apps"
    (apps / "bokeh-sliders").mkdir(parents=True)
    (apps / "bokeh-sliders" / "main.py").write_text((EXAMPLES / "bokeh-sliders" / "main.py").read_text())
    (apps / "solo.py").write_text("from bokeh.io import curdoc\nfrom bokeh.models import Div\n"
                                  "curdoc().add_root(Div(text='solo'))\n")  # fmt: skip
    backend = tracker.backend(apps)
    ref = tracker.create(backend, spec("bokeh", source, "carol-demo-z9"))
    assert json.loads(ref)["path"] == f"/carol/demo/z9/{app_name}"
    st = wait_state(backend, ref)
    assert st.state == "running", st
    assert requests.get(local_url(ref), timeout=10).status_code == 200


# ------------------------------------------------------------------ failures
def test_crash_at_start_is_failed_with_traceback(tracker: Tracker, tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    (apps / "bad").mkdir(parents=True)
    (apps / "bad" / "app.py").write_text("import dash\nraise RuntimeError('boom at import')\n")
    (apps / "badbokeh").mkdir()
    (apps / "badbokeh" / "main.py").write_text("raise ValueError('bokeh boom')\n")
    backend = tracker.backend(apps)

    ref = tracker.create(backend, spec("dash", "bad/app.py", "dave-bad-a1"))
    st = wait_state(backend, ref)
    assert st.state == "failed", st
    assert "RuntimeError: boom at import" in st.reason and "bad/app.py" in st.reason, st.reason
    assert len(st.reason) < 1600

    ref = tracker.create(backend, spec("bokeh", "badbokeh/main.py", "dave-badbokeh-a2"))
    st = wait_state(backend, ref)
    assert st.state == "failed", st
    assert "ValueError: bokeh boom" in st.reason, st.reason


def test_source_outside_apps_dir_is_refused(tracker: Tracker, tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    (apps / "sub").mkdir(parents=True)
    outside = tmp_path / "x.py"
    outside.write_text("server = None\n")
    (apps / "sub" / "escape.py").symlink_to(outside)
    (apps / "sub" / "escdir").symlink_to(tmp_path)
    backend = tracker.backend(apps)
    bad = ["../x.py", "sub/../../x.py", str(outside), "sub/escape.py", "sub/escdir/x.py",
           "missing.py", "", "."]  # fmt: skip
    for source in bad:
        with pytest.raises(BackendError) as info:
            backend.create(spec("dash", source, "eve-escape-b1"))
        assert str(info.value), source
    with pytest.raises(BackendError, match="module-level name"):
        tracker.backend().create(spec("dash", "dash-wave/app.py", "eve-x-b3", callable="app.server"))
    assert not list(tracker.run_dir.glob("*.json"))


# -------------------------------------------------------------- stop & watch
def test_stop_kills_the_whole_group(tracker: Tracker) -> None:
    backend = tracker.backend()
    ref = tracker.create(backend, spec("dash", "dash-wave/app.py", "frank-stop-c3"))
    assert wait_state(backend, ref).state == "running"
    pgid = json.loads(ref)["pid"]
    members = group_members(pgid)
    assert len(members) >= 3, members  # watchdog, gunicorn master, gunicorn worker

    backend.stop(ref)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    for pid in members:
        assert not Path(f"/proc/{pid}").exists() or pid not in group_members(pgid)
    assert backend.status(ref).state == "gone"
    backend.stop(ref)  # idempotent
    assert (tracker.run_dir / "frank-stop-c3.log").exists()  # the log is kept


def test_watched_pid_death_stops_the_app(tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> None:
    dormouse = subprocess.Popen(["sleep", "600"])
    try:
        monkeypatch.setenv("DORMOUSE_SUPERVISOR_PID", str(dormouse.pid))
        backend = tracker.backend()  # watch_pid=None: taken from the env var
        ref = tracker.create(backend, spec("dash", "dash-wave/app.py", "gina-watch-d4"))
        pgid = json.loads(ref)["pid"]

        def watchdog_cmdline() -> list[bytes] | None:  # once the child has exec'd the watchdog
            cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes().split(b"\0")
            return cmdline if b"--watch-pid" in cmdline else None

        cmdline = wait_for(watchdog_cmdline, 10, "the watchdog to run", interval=0.05)
        assert cmdline[cmdline.index(b"--watch-pid") + 1] == str(dormouse.pid).encode()
        assert wait_state(backend, ref).state == "running"
        assert len(group_members(pgid)) >= 3
    finally:
        dormouse.kill()
        dormouse.wait()
    wait_for(
        lambda: backend.status(ref).state == "gone" and group_gone(pgid),  # status() reaps
        15,
        "the app to stop after the watched process died",
    )
    assert group_gone(pgid), group_members(pgid)
    assert backend.status(ref).state == "gone"


def started_stubborn(tracker: Tracker, tmp_path: Path, name: str) -> tuple[LocalBackend, str, int]:
    """A running Bokeh app that ignores SIGTERM; its backend (1 s grace), ref and group."""
    apps = tmp_path / "apps"
    apps.mkdir(exist_ok=True)
    (apps / "stubborn.py").write_text(
        "import signal\nfrom bokeh.io import curdoc\nfrom bokeh.models import Div\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ncurdoc().add_root(Div(text='no'))\n"
    )
    backend = tracker.backend(apps, stop_grace=1.0)
    ref = tracker.create(backend, spec("bokeh", "stubborn.py", name))
    assert wait_state(backend, ref).state == "running"  # the probe ran the script
    return backend, ref, json.loads(ref)["pid"]


def test_stop_kills_an_app_that_ignores_sigterm(tracker: Tracker, tmp_path: Path) -> None:
    backend, ref, pgid = started_stubborn(tracker, tmp_path, "ivan-stubborn-f7")
    backend.stop(ref)  # SIGTERM is ignored: the watchdog KILLs it after the grace
    assert group_gone(pgid), group_members(pgid)
    assert backend.status(ref).state == "gone"
    assert not (tracker.run_dir / "ivan-stubborn-f7.json").exists()


def test_stop_leaves_the_watchdog_its_whole_schedule_before_killing_the_group(
    tracker: Tracker, tmp_path: Path
) -> None:
    """KILLing a watchdog in the middle of its TERM-then-KILL would orphan the
    app (a zombie in a container, or out of reach when the app runs as another
    user): the backend KILLs the group only after ``stop_grace + KILL_WAIT``.
    A watchdog held stopped (SIGSTOP) stands for one that is slow to finish."""
    backend, ref, pgid = started_stubborn(tracker, tmp_path, "ivan-slow-f8")
    os.kill(pgid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        backend.stop(ref)
        waited = time.monotonic() - began
    finally:
        try:
            os.kill(pgid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert waited >= backend.stop_grace + KILL_WAIT, waited
    assert not group_members(pgid)  # KILLed; the orphan's zombie is its new parent's to reap
    assert backend.status(ref).state == "gone"


def test_stop_kills_an_app_whose_watchdog_is_gone(tracker: Tracker, tmp_path: Path) -> None:
    backend, ref, pgid = started_stubborn(tracker, tmp_path, "ivan-orphan-f9")
    app_pids = group_members(pgid)
    os.kill(pgid, signal.SIGKILL)  # the watchdog alone, not its group
    wait_for(lambda: not backend._leader_alive(json.loads(ref)), 30, "the watchdog to die")
    assert app_pids and all(Path(f"/proc/{pid}").exists() for pid in app_pids)
    backend.stop(ref)  # nobody forwards the TERM, which the app ignores anyway
    assert not group_members(pgid)
    assert not (tracker.run_dir / "ivan-orphan-f9.json").exists()


# --------------------------------------------------------------------- list
def test_list_shows_live_and_not_stopped(tracker: Tracker) -> None:
    backend = tracker.backend()
    a = tracker.create(backend, spec("dash", "dash-wave/app.py", "hal-one-e5"))
    b = tracker.create(backend, spec("bokeh", "bokeh-sliders", "hal-two-e6"))
    assert json.loads(a)["port"] != json.loads(b)["port"]
    assert backend.list() == {"hal-one-e5": a, "hal-two-e6": b}
    with pytest.raises(BackendError, match="already running"):
        backend.create(spec("bokeh", "bokeh-sliders", "hal-two-e6"))
    backend.stop(b)
    assert backend.list() == {"hal-one-e5": a}
    # a fresh backend (a restarted Dormouse) finds it from run_dir too
    assert tracker.backend().list() == {"hal-one-e5": a}


# ---------------------------------------------------------------------- url
REF = json.dumps({"v": 1, "name": "a-b-c", "fw": "dash", "pid": 999999, "start": 1,
                  "port": 8123, "path": "/a/b/c/"})  # fmt: skip


@pytest.mark.parametrize(
    ("viz_origin", "expected"),
    [
        ("http://viz.dormouse.localhost:8000", "http://viz.dormouse.localhost:8000/a/b/c/"),
        ("https://viz.example.org", "https://viz.example.org/a/b/c/"),
    ],
)
def test_url_is_the_apps_host_never_the_apps_port(tmp_path: Path, viz_origin: str, expected: str) -> None:
    backend = LocalBackend(EXAMPLES, tmp_path, viz_origin=viz_origin)
    assert backend.url(REF) == expected


def test_url_rejects_odd_origins_and_refs(tmp_path: Path) -> None:
    for origin in ("viz.example.org", "ftp://viz.example.org", "http://viz.example.org/x", "http://a b",
                   "http://viz.example.org`)"):  # fmt: skip
        with pytest.raises(ValueError):
            LocalBackend(EXAMPLES, tmp_path, viz_origin=origin)
    backend = LocalBackend(EXAMPLES, tmp_path)
    with pytest.raises(BackendError):
        backend.url("not json")
    assert backend.status("not json").state == "gone"
    assert backend.status(REF).state == "gone"  # no such process
    backend.stop("not json")
    backend.stop(REF)


def test_each_deployment_has_its_traefik_route_while_it_runs(tracker: Tracker, tmp_path: Path) -> None:
    routes = tmp_path / "routes"
    backend = tracker.backend(routes_dir=routes, viz_origin="http://viz.example.org:8000")
    ref = tracker.create(backend, spec("dash", "dash-wave/app.py", "alice-wave-x7k2p9", callable="server"))
    port = json.loads(ref)["port"]
    doc = json.loads((routes / "alice-wave-x7k2p9.yml").read_text())
    router = doc["http"]["routers"]["alice-wave-x7k2p9"]
    assert router["rule"] == "Host(`viz.example.org`) && PathPrefix(`/alice/wave/x7k2p9/`)"
    assert router["middlewares"] == ["dormouse-auth@file"]  # every request is asked about
    servers = doc["http"]["services"]["alice-wave-x7k2p9"]["loadBalancer"]["servers"]
    assert servers == [{"url": f"http://127.0.0.1:{port}"}]  # loopback only
    assert not [p for p in routes.iterdir() if p.name.startswith(".")]  # written atomically

    crashed = routes / "carol-gone-a1.yml"
    crashed.write_text("{}")  # left by a crash: routes to nothing
    young = routes / "dave-new-b2.yml"
    young.write_text("{}")  # routes to nothing yet: perhaps a create in progress
    old = time.time() - ROUTE_PRUNE_GRACE - 5
    os.utime(crashed, (old, old))
    (routes / "_dormouse.yml").write_text("{}")  # the front door's own file
    os.utime(routes / "_dormouse.yml", (old, old))
    assert set(backend.list()) == {"alice-wave-x7k2p9"}
    assert sorted(p.name for p in routes.iterdir()) == ["_dormouse.yml", "alice-wave-x7k2p9.yml", young.name]
    young.unlink()

    backend.stop(ref)
    assert sorted(p.name for p in routes.iterdir()) == ["_dormouse.yml"]


def test_a_route_written_while_listing_is_kept(tracker: Tracker, tmp_path: Path) -> None:
    """Another worker's create lands between this listing's read of the
    records and its pruning of routes (the sweep's reconcile, a moment after
    a visitor's start): the new deployment keeps its route, and the next
    listing has it."""
    routes = tmp_path / "routes"
    sweeping = tracker.backend(routes_dir=routes)
    starting = tracker.backend(routes_dir=routes)
    prune = sweeping.routes.prune
    made: list[str] = []

    def create_then_prune(keep, **kwargs):  # the listing has read the records already
        made.append(tracker.create(starting, spec("dash", "dash-wave/app.py", callable="server")))
        prune(keep, **kwargs)

    sweeping.routes.prune = create_then_prune  # type: ignore[method-assign]
    assert sweeping.list() == {}  # read before the create
    assert made and (routes / "alice-wave-x7k2p9.yml").exists()
    sweeping.routes.prune = prune  # type: ignore[method-assign]
    assert sweeping.list() == {"alice-wave-x7k2p9": made[0]}
    assert (routes / "alice-wave-x7k2p9.yml").exists()


def test_apps_listen_on_loopback_only(tracker: Tracker) -> None:
    backend = tracker.backend()
    ref = tracker.create(backend, spec("dash", "dash-wave/app.py", callable="server"))
    assert wait_state(backend, ref).state == "running"
    port = json.loads(ref)["port"]
    listeners = Path("/proc/net/tcp").read_text().splitlines()[1:]
    listening = [ln.split()[1] for ln in listeners if ln.split()[3] == "0A"]  # state LISTEN
    mine = [address for address in listening if address.endswith(f":{port:04X}")]
    assert mine == [f"0100007F:{port:04X}"], mine  # 127.0.0.1, never 0.0.0.0


@pytest.mark.parametrize("python", [None, "", "relative/bin/python"])
def test_an_app_without_its_environment_s_python_is_not_started(tmp_path: Path, python: str | None) -> None:
    backend = LocalBackend(EXAMPLES, tmp_path / "run")
    with pytest.raises(BackendError, match="Python environment is not ready"):
        backend.create(make_spec("dash", source="dash-wave/app.py", python=python))
    assert not (tmp_path / "run").exists() or list((tmp_path / "run").iterdir()) == []
