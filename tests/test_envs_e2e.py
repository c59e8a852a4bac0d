"""An app that brings its own packages, end to end, as `make run` serves it:
``flask apps publish`` of examples/dash-iris (plotly.express's iris data
needs pandas, which Dormouse does not install) builds its environment with
real uv from the real package index; the app runs in Chromium through
Traefik and shows its figure; a second app with the same requirements
reuses the environment (no second build, measured); a package that does
not exist fails at publish with the resolver's words; Dormouse's own
environment is the same before and after (``pip freeze``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browsers import CspWatch, chromium
from tests.factories import EXAMPLES
from tests.serving import serve

pytestmark = pytest.mark.timeout(600)


def pip_freeze() -> str:
    return subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True
    ).stdout


def env_rows(server) -> list[list[str]]:
    """`flask envs list` as rows of words (header left out)."""
    out = server.flask("envs", "list").stdout.splitlines()
    return [line.split() for line in out[1:] if line and not line.startswith(" ")]


def test_an_app_with_pandas_is_built_once_shared_and_shown(tmp_path: Path) -> None:
    freeze_before = pip_freeze()
    assert "pandas==" not in freeze_before  # so the app can only have it from its own environment
    apps = tmp_path / "apps"
    shutil.copytree(EXAMPLES, apps)
    (apps / "nope").mkdir()
    shutil.copy(EXAMPLES / "dash-wave" / "app.py", apps / "nope" / "app.py")
    (apps / "nope" / "requirements.txt").write_text("dash\ndormouse-no-such-package-xyz\n")

    with serve(
        tmp_path,
        launch=False,
        APPS_DIR=str(apps),
        ENVS_DIR=str(tmp_path / "envs"),  # this test's own: the iris environment is really built
        ENV_COMPILE_BYTECODE="0",
        SWEEP_INTERVAL="3600",
    ) as server:
        server.flask("users", "create", "alice", stdin="correct-horse-battery\n")
        publish = ("apps", "publish", "--owner", "alice", "--framework", "dash", "--source")
        server.flask(*publish, "dash-iris/app.py:server", "--title", "iris")
        server.flask(*publish, "dash-iris/app.py:server", "--title", "iris-again")

        rows = env_rows(server)  # KEY STATUS FW SIZE APPS BUILDS LAST USED
        shared = [row for row in rows if row[4] == "2"]
        assert len(shared) == 1 and shared[0][1] == "ready", rows  # both apps share one environment
        assert shared[0][5] == "1", rows  # built once: the second publish built nothing
        assert sorted(row[5] for row in rows) == ["1", "1", "1"], rows  # dash and bokeh defaults, iris

        with pytest.raises(AssertionError) as failed:
            server.flask(*publish, "nope/app.py:server", "--title", "nope")
        assert "dormouse-no-such-package-xyz was not found in the package registry" in str(failed.value)

        server.launch()
        with chromium() as browser:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            csp = CspWatch(context)
            page = context.new_page()
            assert page.goto(f"{server.site}/alice/nope/").status == 404  # nothing was saved
            page.goto(f"{server.site}/alice/iris/viz/")
            page.wait_for_selector("iframe.viz-frame", timeout=120_000)
            app = page.frame_locator("iframe.viz-frame")
            app.locator("#iris-graph .main-svg").first.wait_for(timeout=90_000)
            title = app.get_by_text("Iris sepals (150 flowers, pandas ")
            title.first.wait_for(timeout=30_000)
            page.screenshot(path=str(screenshots() / "envs-iris.png"))
            assert csp.violations == [], csp.violations
    assert pip_freeze() == freeze_before


def screenshots() -> Path:
    path = Path(__file__).resolve().parent.parent / "screenshots"
    path.mkdir(exist_ok=True)
    return path


def test_published_from_the_form_a_viewer_sees_it_being_prepared_then_the_app(tmp_path: Path) -> None:
    """The build is held back (the test holds its key's lock, as a slow build
    would): the owner's page says "being prepared", so does the owner's viz
    page, which creates no deployment and turns into the app by itself once
    the environment is ready; a viewer gets 404 until then (the app is not
    published before its first environment is ready), the app after."""
    import fcntl

    from app import environments as envs
    from app.backends.frameworks import DASH
    from app.env_builds import Builder, base_python, uv_binary
    from app.env_settings import EnvSettings
    from tests.envs_cache import uv_cache

    apps = tmp_path / "apps"
    shutil.copytree(EXAMPLES, apps)  # the demos are loaded from it too
    shutil.copytree(EXAMPLES / "dash-wave", apps / "humanized")
    (apps / "humanized" / "requirements.txt").write_text("dash\nhumanize\n")
    env = {"APPS_DIR": str(apps), "ENVS_DIR": str(tmp_path / "envs"), "ENV_COMPILE_BYTECODE": "0"}
    builder = Builder(
        EnvSettings.from_env({**env, "ENV_CACHE_DIR": str(uv_cache())}, tmp_path / "instance"),
        uv_binary(),
        base_python(),
    )
    reqs, _ = envs.parse_requirements("dash\nhumanize\n")
    key = envs.env_key(builder.identity, builder.resolve(envs.build_input(DASH, reqs)))
    builder.s.locks_dir.mkdir(parents=True, exist_ok=True)

    with serve(tmp_path, SWEEP_INTERVAL="3600", STATUS_POLL_INTERVAL="0.5", **env) as server:
        server.flask("users", "create", "alice", stdin="correct-horse-battery\n")
        with chromium() as browser:
            owner = browser.new_context(viewport={"width": 1200, "height": 900})
            viewer = browser.new_context(viewport={"width": 1200, "height": 900})
            csp = [CspWatch(owner), CspWatch(viewer)]
            page = owner.new_page()
            page.goto(f"{server.site}/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", "correct-horse-battery")
            page.press("input[name=password]", "Enter")
            page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)
            with open(builder.s.locks_dir / f"{key}.lock", "w") as held:
                fcntl.flock(held, fcntl.LOCK_EX)  # the server's build waits for it
                page.goto(f"{server.site}/publish")
                page.fill("input[name=title]", "hum")
                page.fill("input[name=source]", "humanized/app.py:server")
                page.get_by_role("button", name="Publish", exact=True).click()
                page.wait_for_url(f"{server.site}/alice/hum/", timeout=60_000)
                assert page.get_attribute(".env", "data-env") == "building"
                assert "Only you and admins see this app" in (page.text_content(".env") or "")

                watching = viewer.new_page()
                assert watching.goto(f"{server.site}/alice/hum/viz/").status == 404  # not published yet
                assert "/alice/hum/" not in watching.goto(f"{server.site}/").text()  # type: ignore[union-attr]
                mine = owner.new_page()
                mine.goto(f"{server.site}/alice/hum/viz/")
                mine.get_by_text("hum is being prepared").wait_for(timeout=30_000)
                mine.screenshot(path=str(screenshots() / "envs-being-prepared.png"))
                asked = "fetch('/alice/hum/viz/status', {headers: {Accept: 'application/json'}})"
                status = page.evaluate(asked + ".then(r => r.json())")  # as its owner
                assert status["status"] == "none"  # no deployment was made
            # released: the build runs, and the owner's viz page asks again until the app shows
            mine.wait_for_selector("iframe.viz-frame", timeout=120_000)
            mine.frame_locator("iframe.viz-frame").locator("#wave .main-svg").first.wait_for(timeout=60_000)
            # and the app is published by itself: the viewer now gets it
            assert watching.goto(f"{server.site}/alice/hum/viz/").status == 200  # type: ignore[union-attr]
            watching.wait_for_selector("iframe.viz-frame", timeout=60_000)
            graph = watching.frame_locator("iframe.viz-frame").locator("#wave .main-svg").first
            graph.wait_for(timeout=60_000)
            page.reload()
            assert page.get_attribute(".env", "data-env") == "ready"
            assert [c.violations for c in csp] == [[], []]
