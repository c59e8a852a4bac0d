"""The CLI commands, run through Flask's CLI runner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import lifecycle
from app.auth import authenticate
from app.extensions import db
from app.models import User, VizApp, utcnow
from tests.factories import make_app


def publish(runner, title: str, framework: str, *extra: str, owner: str = "alice"):
    """``flask apps publish`` for ``owner``'s app ``title``, with ``extra`` options."""
    return runner.invoke(
        args=["apps", "publish", "--owner", owner, "--title", title, "--framework", framework, *extra]
    )


def test_users_create_reads_password_from_stdin(runner):
    result = runner.invoke(args=["users", "create", "carol", "--admin"], input="s3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert "Created admin user carol" in result.output
    user = authenticate("carol", "s3cret-pass")
    assert user is not None and user.is_admin


def test_users_create_rejects_bad_names_and_duplicates(runner):
    bad = runner.invoke(args=["users", "create", "Carol!"], input="s3cret-pass\n")
    assert bad.exit_code == 1 and "not allowed" in bad.output
    reserved = runner.invoke(args=["users", "create", "publish"], input="s3cret-pass\n")
    assert reserved.exit_code == 1 and "reserved" in reserved.output
    short = runner.invoke(args=["users", "create", "carol"], input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.output
    runner.invoke(args=["users", "create", "carol"], input="s3cret-pass\n")
    dup = runner.invoke(args=["users", "create", "carol"], input="s3cret-pass\n")
    assert dup.exit_code == 1 and "taken" in dup.output
    assert db.session.scalar(select(func.count(User.id))) == 1


def test_apps_publish(runner, alice):
    ok = publish(runner, "sliders", "bokeh", "--source", "bokeh-sliders/main.py", "--env", "COLOR=red")
    assert ok.exit_code == 0, ok.output
    assert "/alice/sliders/viz/" in ok.output
    app = db.session.scalar(select(VizApp).where(VizApp.title == "sliders"))
    assert app.framework == "bokeh" and app.port == 5006 and app.env == {"COLOR": "red"}
    assert app.monthly_budget is None
    budgeted = publish(runner, "waved", "dash", "--source", "dash-wave/app.py", "--monthly-budget", "12.50")
    assert budgeted.exit_code == 0, budgeted.output
    assert db.session.scalar(select(VizApp.monthly_budget).where(VizApp.title == "waved")) == 12.5

    escape = publish(runner, "x", "dash", "--source", "/etc/passwd")
    assert escape.exit_code == 1 and "relative path inside the apps folder" in escape.output
    unknown = publish(runner, "x", "shiny", "--source", "dash-wave/app.py")
    assert unknown.exit_code == 2 and "shiny" in unknown.output
    port = publish(runner, "x", "dash", "--source", "dash-wave/app.py", "--port", "80")
    assert port.exit_code == 1 and "1024 to 65535" in port.output
    nobody = publish(runner, "x", "dash", "--source", "dash-wave/app.py", owner="nobody")
    assert nobody.exit_code == 1 and "No user 'nobody'" in nobody.output
    broke = publish(runner, "x", "dash", "--source", "dash-wave/app.py", "--monthly-budget", "-3")
    assert broke.exit_code == 1 and "monthly_budget" in broke.output
    assert db.session.scalar(select(func.count(VizApp.id))) == 2


def test_demo_load_is_idempotent(runner):
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "demo/dash-wave: published" in first.output
    assert "demo/bokeh-sliders: published" in first.output
    second = runner.invoke(args=["demo", "load"])
    assert second.exit_code == 0 and second.output.count("already published") == 2
    titles = set(db.session.scalars(select(VizApp.title)))
    assert titles == {"dash-wave", "bokeh-sliders"}


def test_sweep_and_deployments_list(runner, app, fake_backend, alice):
    old = utcnow() - timedelta(seconds=4000)
    dep = lifecycle.ensure_deployment(make_app(alice, "wave"), now=old)
    fake_backend.set(dep.backend_ref, "running")
    lifecycle.refresh(dep, now=old, force=True)
    listing = runner.invoke(args=["deployments", "list"])
    assert listing.exit_code == 0
    assert "alice/wave" in listing.output and "running" in listing.output and "66m" in listing.output
    result = runner.invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    assert f"stopped alice/wave ({dep.public_name}): idle" in result.output
    assert runner.invoke(args=["deployments", "list"]).output.strip() == "No live deployments."
    assert "stopped" in runner.invoke(args=["deployments", "list", "--all"]).output
    assert runner.invoke(args=["sweep"]).output.strip() == "Nothing to stop."


@pytest.mark.parametrize("command", ["sweep", "reconcile"])
def test_sweep_and_reconcile_refuse_while_the_lease_is_held(runner, app, fake_backend, command):
    from app.leases import acquire as acquire_lease
    from app.sweep import SWEEP_LEASE

    fake_backend.extra = {"bob-ghost-default-abc": "fake:ghost"}  # an orphan to stop
    assert acquire_lease(SWEEP_LEASE, "someone-else", ttl=60)
    result = runner.invoke(args=[command])
    assert result.exit_code == 1 and "lease is held" in result.output
    assert fake_backend.calls["list"] == 0 and fake_backend.stopped == []


def test_reconcile_command(runner, app, fake_backend):
    fake_backend.extra = {"bob-ghost-default-abc": "fake:ghost"}
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 0 and "stopped orphan fake:ghost" in result.output
    assert runner.invoke(args=["reconcile"]).output.strip() == "Everything agrees."


def test_deployments_stop(runner, app, fake_backend, alice):
    dep = lifecycle.ensure_deployment(make_app(alice, "wave"))
    result = runner.invoke(args=["deployments", "stop", "alice/wave"])
    assert result.exit_code == 0 and f"stopped alice/wave ({dep.public_name})" in result.output
    db.session.refresh(dep)
    assert dep.status == "stopped" and dep.stop_reason == "admin"
    assert fake_backend.stopped == [dep.backend_ref]
    again = runner.invoke(args=["deployments", "stop", "alice/wave"])
    assert again.exit_code == 1 and "no live deployment" in again.output
    assert runner.invoke(args=["deployments", "stop", "alice/nope"]).exit_code == 1


def test_cluster_apps_are_published_by_image(tmp_path):
    from tests.factories import build_app, make_settings

    app = build_app(make_settings(tmp_path, BACKEND="kubernetes", VIZ_HOST="viz.example.org"))
    runner = app.test_cli_runner()
    with app.app_context():
        runner.invoke(args=["users", "create", "alice"], input="s3cret-pass\n")
        no_image = publish(runner, "wave", "dash", "--source", "dash-wave/app.py")
        assert no_image.exit_code == 1 and "container image" in no_image.output
        bad_image = publish(runner, "wave", "dash", "--image", "Not An Image")
        assert bad_image.exit_code == 1 and "valid image reference" in bad_image.output
        ok = publish(
            runner,
            "wave",
            "dash",
            "--image",
            "ghcr.io/alice/wave:1.0",
            "--source",
            "src/app.py:server",
            "--env",
            "API_KEY=k",
        )
        assert ok.exit_code == 0, ok.output
        viz = db.session.scalar(select(VizApp).where(VizApp.title == "wave"))
        assert (viz.image, viz.source, viz.callable) == ("ghcr.io/alice/wave:1.0", "src/app.py", "server")
        bad_command = publish(
            runner, "cmd", "bokeh", "--image", "ghcr.io/a/b:1", "--command", "bokeh serve 'app.py"
        )
        assert bad_command.exit_code == 1 and "cannot be split" in bad_command.output
        with_command = publish(
            runner, "cmd", "bokeh", "--image", "ghcr.io/a/b:1", "--command", "python serve.py --port 5006"
        )
        assert with_command.exit_code == 0, with_command.output
        cmd = db.session.scalar(select(VizApp).where(VizApp.title == "cmd"))
        assert cmd.command == "python serve.py --port 5006"
        escape = publish(runner, "x", "dash", "--image", "ghcr.io/a/b:1", "--source", "../../etc/passwd")
        assert escape.exit_code == 1
        skipped = runner.invoke(args=["demo", "load"])
        assert skipped.exit_code == 0 and "Skipped" in skipped.output
        db.session.remove()
        db.engine.dispose()
