"""What the benchmarks that run apps share: a throwaway instance of the
product as ``make run`` makes it, and a demo's command line exactly as the
local backend would run it (asked of Dormouse's own code), started by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.backends.local_groups import group_alive
from bench.harness import BIN, REPO, BenchError, free_port, request

DEMOS = {"dash": "demo/dash-wave", "bokeh": "demo/bokeh-sliders"}
SHARED_ENVS = Path("/var/cache/dormouse/uv-envs")  # the tests' default environments, when built
DEADLINE = 120.0  # seconds an app may take to answer before the bench gives up


def product_env(workdir: Path, port: int, envs_dir: Path | None) -> dict[str, str]:
    env = {**os.environ}
    env.pop("DATABASE_URL", None)
    env.update(
        INSTANCE_PATH=str(workdir / "instance"),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOCAL_PORT_MIN="18300",
        LOCAL_PORT_MAX="18399",
        RATE_LIMITS="0",  # 10 starts a minute per client would throttle the rounds
        SCHEDULER_ENABLED="0",
        LOG_LEVEL="WARNING",
        ENV_KEEP_UNUSED=str(10 * 365 * 86400),
    )
    if envs_dir is not None:
        env.update(ENVS_DIR=str(envs_dir), ENV_CACHE_DIR=str(envs_dir.with_name("uv")))
    return env


def flask(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"flask {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    path: str


def launch_command(env: dict[str, str], owner_title: str) -> Command:
    """The command line the local backend would run for this demo now (its
    environment's Python, the framework's launch, the prefix variables), on a
    port of its own. Asked of Dormouse's own code, in this process."""
    from app import app_envs, create_app
    from app.backends.base import AppSpec
    from app.backends.local_commands import child_env, launch, locate_source
    from app.config import Settings
    from app.extensions import db
    from app.models import User, VizApp, utcnow
    from app.slugs import deployment_name, public_name, url_prefix

    settings = Settings.from_env(env)
    flask_app = create_app(settings=settings)
    owner, title = owner_title.split("/")
    with flask_app.app_context():
        try:
            app = db.session.scalars(
                db.select(VizApp).join(User, VizApp.owner_id == User.id)
                .where(User.username == owner, VizApp.title == title)
            ).one()  # fmt: skip
            python = app_envs.python_for(app, settings, now=utcnow())
            public = public_name("bench")
            spec = AppSpec(
                owner=owner,
                title=title,
                framework=app.framework,
                deployment_name=deployment_name(owner, title, public),
                prefix=url_prefix(owner, title, public),
                source=app.source,
                callable=app.callable,
                image=None,
                command=None,
                port=app.port,
                cpu=app.cpu,
                memory=app.memory,
                env=dict(app.env or {}),
                public_name=public,
                python=python,
            )
        finally:
            db.session.remove()
            db.engine.dispose()
    port = free_port()
    run = launch(
        spec, locate_source(settings.apps_dir, spec.source), python=python, bind_host="127.0.0.1", port=port,
        viz_authority=f"viz.dormouse.localhost:{env['PORT']}",
    )  # fmt: skip
    return Command(run.argv, run.cwd, child_env(spec, env), port, run.app_path)


def by_hand(command: Command, log_path: Path) -> float:
    """Start the app's command, time its first 200; stop it."""
    t0 = time.monotonic()
    proc = by_hand_process(command, log_path)
    elapsed = time.monotonic() - t0
    stop_group(proc)
    return elapsed


def by_hand_process(
    command: Command, log_path: Path, watchdog: Path | None = None
) -> subprocess.Popen[bytes]:
    """The app's command started in a process group of its own (under the
    local backend's watchdog if given, as the backend runs it), once it has
    answered 200 (asked every 10 ms). The caller stops it."""
    argv = command.argv
    if watchdog is not None:
        exit_file = log_path.with_suffix(".exit")
        argv = [sys.executable, "-I", str(watchdog), "--watch-pid", str(os.getpid()),
                "--exit-file", str(exit_file), "--grace", "5", "--", *argv]  # fmt: skip
    with open(log_path, "ab") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv, cwd=command.cwd, env=command.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        while time.monotonic() - t0 < DEADLINE:
            if proc.poll() is not None:
                raise BenchError(f"the app exited ({proc.returncode}); see {log_path}")
            try:
                code, _ = request(f"http://127.0.0.1:{command.port}{command.path}", timeout=5)
                if code == 200:
                    return proc
            except OSError:
                pass
            time.sleep(0.01)
        raise BenchError(f"the app did not answer 200 in {DEADLINE:.0f} s; see {log_path}")
    except BaseException:
        stop_group(proc)
        raise


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(proc.pid):
            proc.poll()
            time.sleep(0.05)
        if not group_alive(proc.pid):
            break
    proc.poll()
