"""What a valid app and a valid name are: the rules behind the form and CLI."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import VizApp
from app.publishing import (
    AppInput,
    PublishError,
    check_source_input,
    command_error,
    parse_cpu,
    parse_memory,
    publish,
)
from app.security import parse_embed_origins
from app.slugs import is_slug, slug_error


@pytest.mark.parametrize(
    "value, ok",
    [
        ("a", True),
        ("abc-123", True),
        ("x" * 40, True),
        ("9lives", True),
        ("", False),
        ("x" * 41, False),
        ("-abc", False),
        ("abc-", False),
        ("ABC", False),
        ("a_b", False),
        ("a b", False),
        ("a`b", False),
        ("a(b)", False),
        ("é", False),
        ("a.b", False),
    ],
)
def test_slug_grammar(value, ok):
    assert is_slug(value) is ok
    assert (slug_error(value, "title") is None) is ok


def test_reserved_names():
    assert "reserved" in slug_error("static", "username")
    assert "reserved" in slug_error("viz", "title")
    assert slug_error("static", "title") is None


@pytest.mark.parametrize(
    "text, millicores",
    [
        ("500m", 500),
        ("1", 1000),
        ("1.5", 1500),
        ("0.25", 250),
        ("2.125", 2125),
        ("x", None),
        ("-1", None),
        ("1.5m", None),
    ],
)
def test_parse_cpu(text, millicores):
    assert parse_cpu(text) == millicores


@pytest.mark.parametrize("text, mib", [("512Mi", 512), ("2Gi", 2048), ("1G", None), ("Mi", None)])
def test_parse_memory(text, mib):
    assert parse_memory(text) == mib


def test_source_must_stay_inside_the_apps_folder(tmp_path):
    apps = tmp_path / "apps"
    (apps / "ok").mkdir(parents=True)
    (apps / "ok" / "app.py").write_text("x = 1\n")
    (tmp_path / "outside.py").write_text("x = 1\n")
    os.symlink(tmp_path / "outside.py", apps / "sneaky.py")
    assert check_source_input(apps, "ok/app.py:server") == ("ok/app.py", "server")
    for bad, message in [
        ("../outside.py", "relative path"),
        (str(tmp_path / "outside.py"), "relative path"),
        ("sneaky.py", "stay inside"),
        ("ok/missing.py", "No Python file"),
        ("ok/app.py:not valid", "not a Python name"),
        ("", "Give the app"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_source_input(apps, bad)


def test_every_problem_is_reported_and_nothing_is_saved(app, alice):
    settings = app.config["DORMOUSE"]
    data = AppInput(
        title="Nope!",
        framework="shiny",
        source="missing.py",
        image="Bad Image",
        port="22",
        cpu="9",
        memory="99Gi",
        env="PATH",
    )
    with pytest.raises(PublishError) as info:
        publish(alice, data, settings)
    assert set(info.value.errors) == {"title", "framework", "source", "image", "port", "cpu", "memory", "env"}
    assert db.session.scalar(select(func.count(VizApp.id))) == 0


def test_defaults_and_cluster_only_apps(app, alice):
    settings = app.config["DORMOUSE"]
    dash = publish(alice, AppInput(title="d", framework="dash", source="dash-wave/app.py"), settings)
    assert dash.callable == "server" and dash.port == 8050
    bokeh = publish(alice, AppInput(title="b", framework="bokeh", source="bokeh-sliders/main.py"), settings)
    assert bokeh.callable is None and bokeh.port == 5006
    image_only = publish(alice, AppInput(title="c", framework="dash", image="ghcr.io/me/app:1.0"), settings)
    assert image_only.source is None and image_only.image == "ghcr.io/me/app:1.0"
    with pytest.raises(PublishError, match="no ':callable'"):
        publish(alice, AppInput(title="e", framework="bokeh", source="bokeh-sliders/main.py:x"), settings)


@pytest.mark.parametrize(
    "image, ok",
    [
        ("nginx", True),
        ("ghcr.io/alice/wave:1.0", True),
        ("registry.example.org:5000/team/app:v2.1-rc", True),
        ("alice/wave@sha256:" + "a" * 64, True),
        ("localhost:5000/x", True),
        ("Alice/Wave", False),
        ("wave:1.0 --privileged", False),
        ("wave`x`", False),
        ("wave:", False),
        ("-wave", False),
        ("a" * 501, False),
    ],
)
def test_image_references(app, alice, image, ok):
    data = AppInput(title="img", framework="dash", image=image)
    settings = app.config["DORMOUSE"]
    if ok:
        assert publish(alice, data, settings).image == image
    else:
        with pytest.raises(PublishError) as info:
            publish(alice, data, settings)
        assert "image" in info.value.errors


@pytest.mark.parametrize(
    "command, image, problem",
    [
        ("", "", None),
        ("", "ghcr.io/a/b:1", None),
        ("python serve.py --port 8050", "ghcr.io/a/b:1", None),
        ("sh -c 'echo $HOME; id'", "ghcr.io/a/b:1", None),  # one argv; no shell of ours runs it
        ("python serve.py", "", "give the image too"),
        ("python 'serve.py", "ghcr.io/a/b:1", "cannot be split"),
        ("x" * 501, "ghcr.io/a/b:1", "under 500"),
    ],
)
def test_command_override_rules(command, image, problem):
    error = command_error(command, image)
    assert (error is None) if problem is None else (problem in error)


def test_the_publish_form_takes_a_command_with_an_image(app, alice):
    from tests.factories import login

    client = app.test_client()
    login(client)
    form = {
        "title": "served",
        "framework": "dash",
        "image": "ghcr.io/alice/served:2",
        "source": "app.py",
        "command": "python app.py --serve",
        "cpu": "500m",
        "memory": "512Mi",
    }
    assert client.post("/publish", data=form).status_code == 302
    viz = db.session.scalar(select(VizApp).where(VizApp.title == "served"))
    assert viz.command == "python app.py --serve"
    bad = client.post("/publish", data={**form, "title": "other", "image": ""})
    assert bad.status_code == 400 and "give the image too" in bad.get_data(as_text=True)
    assert db.session.scalar(select(func.count(VizApp.id))) == 1


@pytest.mark.parametrize(
    "text, origins",
    [
        ("", []),
        ("https://blog.example.org", ["https://blog.example.org"]),
        ("HTTPS://Blog.Example.org/", ["https://blog.example.org"]),  # as a browser writes it
        ("http://localhost:8080, https://a.example.org\nhttps://a.example.org", ["http://localhost:8080",
                                                                                "https://a.example.org"]),
        ("http://127.0.0.1:8000", ["http://127.0.0.1:8000"]),
    ],
)  # fmt: skip
def test_embed_origins_are_origins(text, origins):
    assert parse_embed_origins(text) == (origins, None)


@pytest.mark.parametrize(
    "text",
    [
        "*",
        "https://*.example.org",
        "https://*",
        "blog.example.org",  # no scheme
        "https:",
        "https://",
        "https://blog.example.org/path",
        "https://blog.example.org?x=1",
        "https://blog.example.org#top",
        "https://user@blog.example.org",
        "https://blog.example.org:0",
        "https://blog.example.org:65536",
        "https://blog.example.org:",
        "javascript:alert(1)",
        "data:text/html,x",
        "ftp://blog.example.org",
        "'self'",
        "'unsafe-inline'",
        "https://blog.example.org;script-src",  # would end the directive
        "https://blog.example.org';",
        'https://blog.example.org"',
        "https://bl og.example.org",
        "https://-blog.example.org",
        "https://blog_x.example.org",
        "https://[::1]:8000",
        "https://blög.example.org",
        "https://blog.example.org\r\nX-Injected: 1",
        "https://" + "a" * 64 + ".org",
    ],
)
def test_embed_origins_refuse_anything_else(text):
    origins, error = parse_embed_origins(text)
    assert origins == [] and error and "scheme://host[:port]" in error


def test_embed_origins_are_capped():
    many = " ".join(f"https://s{i}.example.org" for i in range(21))
    assert parse_embed_origins(many)[1] == "At most 20 sites."


def test_embed_origins_from_the_form_and_the_cli(app, alice):
    from tests.factories import login, make_app

    client = app.test_client()
    login(client)
    form = {
        "title": "embedded",
        "framework": "dash",
        "source": "dash-wave/app.py:server",
        "cpu": "500m",
        "memory": "512Mi",
        "embed_origins": "https://blog.example.org\r\nhttp://localhost:8080",
    }
    assert client.post("/publish", data=form).status_code == 302
    viz = db.session.scalar(select(VizApp).where(VizApp.title == "embedded"))
    assert viz.embed_origins == ["https://blog.example.org", "http://localhost:8080"]
    bad = client.post("/publish", data={**form, "title": "other", "embed_origins": "https://*.example.org"})
    assert bad.status_code == 400 and "no wildcard" in bad.get_data(as_text=True)

    runner = app.test_cli_runner()
    base = ["apps", "publish", "--owner", "alice", "--framework", "bokeh",
            "--source", "bokeh-sliders/main.py"]  # fmt: skip
    ok = runner.invoke(args=[*base, "--title", "cli", "--embed-origin", "https://a.example.org",
                             "--embed-origin", "https://b.example.org:8443"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    cli = db.session.scalar(select(VizApp).where(VizApp.title == "cli"))
    assert cli.embed_origins == ["https://a.example.org", "https://b.example.org:8443"]
    refused = runner.invoke(args=[*base, "--title", "cli2", "--embed-origin", "https://a.example.org/blog"])
    assert refused.exit_code == 1 and "no path" in refused.output
    assert make_app(alice, "plain").embed_origins == []  # none unless named
