"""An app's output (issue 9, point 5): ``/<owner>/<title>/logs`` and ``logs.txt``.

* the views, on the scripted FakeBackend: owner and admins read it, everyone
  else gets the missing app's 404; the log is escaped on the page and an
  attachment (nosniff) as a download; the size caps; a named run;
* the local backend, with a real Dash demo: the log holds the app server's
  start-up line, the watchdog's lines left out, and stays readable after stop;
* the Kubernetes backend: the pod's log through ``pods/log`` against the fake
  API server (content, the newest lines under the byte cap, a pod gone is "",
  errors matched on status), and on both tiers what a pod with no output
  answers. The Role's ``pods/log`` get is checked in tests/test_kube_rbac.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as kclient
from kubernetes.client.exceptions import ApiException

from app import lifecycle
from app.backends import local_logs
from app.backends.base import BackendError
from app.backends.local import LocalBackend
from app.extensions import db
from app.models import Deployment
from app.views.logs import DOWNLOAD_BYTES, SHOWN_BYTES
from tests import kubelet
from tests.factories import (
    EXAMPLES,
    CSRFClient,
    build_app,
    login,
    make_app,
    make_settings,
    make_spec,
    make_user,
)
from tests.kube_tiers import Tier, new_namespace_name
from tests.sites import JSON, Site, make_site
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(300)
HX = {"HX-Request": "true"}
NOTHING_HERE = {"error": "There is nothing here.", "status": 404}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with make_site(tmp_path) as made:
        yield made


def run_with_output(site: Site, title: str, output: str) -> str:
    """A live deployment of ``title`` whose output is ``output``; its public name."""
    public_name = site.ensure_deployment(title)
    ref = next(ref for ref, spec in site.backend.specs.items() if spec.public_name == public_name)
    site.backend.outputs[ref] = output
    return public_name


# ------------------------------------------------------------------ who may read it
@pytest.mark.parametrize("title", ["wave", "secret"])
@pytest.mark.parametrize("viewer", ["owner", "admin"])
def test_owner_and_admins_read_the_tail(site: Site, viewer: str, title: str) -> None:
    public_name = run_with_output(site, title, "first line\nServing on :8050\nlast line\n")
    client = site.client(viewer)
    page = client.get(f"/alice/{title}/logs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<pre" in html and "Serving on :8050\nlast line" in html
    assert html.index("first line") < html.index("last line")  # newest at the bottom
    assert f'href="/alice/{title}/logs.txt?deployment={public_name}"' in html
    assert page.headers["Cache-Control"] == "no-store"
    download = client.get(f"/alice/{title}/logs.txt")
    assert download.status_code == 200
    assert download.get_data(as_text=True) == "first line\nServing on :8050\nlast line\n"


@pytest.mark.parametrize("title", ["wave", "secret"])
@pytest.mark.parametrize("viewer", ["anonymous", "other"])
def test_nobody_else_learns_anything(site: Site, viewer: str, title: str) -> None:
    """404 for page and download, even on a public app, the very answer a
    missing app gets (JSON and HTMX word for word; a full page carries a fresh
    CSRF token, so only its code); never a login redirect."""
    public_name = run_with_output(site, title, "secret output\n")
    client = site.client(viewer)
    for path in (
        "/logs",
        "/logs.txt",
        f"/logs?deployment={public_name}",
        f"/logs.txt?deployment={public_name}",
    ):
        for headers in (JSON, HX, {}):
            got = client.get(f"/alice/{title}{path}", headers=headers)
            missing = client.get(f"/alice/no-such-app{path}", headers=headers)
            assert got.status_code == missing.status_code == 404, (path, headers, got.status_code)
            if headers:
                assert got.get_data() == missing.get_data(), (path, headers)
            assert b"secret output" not in got.get_data()
    assert site.backend.calls["logs"] == 0  # the backend was not even asked


def test_the_app_page_links_to_the_logs_for_owner_and_admins_only(site: Site) -> None:
    for viewer, shown in (("anonymous", False), ("other", False), ("owner", True), ("admin", True)):
        html = site.client(viewer).get("/alice/wave/").get_data(as_text=True)
        assert ('href="/alice/wave/logs"' in html) is shown, viewer


# ------------------------------------------------------------------ untrusted text
def test_html_in_the_log_is_escaped_and_the_download_cannot_run(site: Site) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;\n'
    run_with_output(site, "wave", evil)
    client = site.client("owner")
    html = client.get("/alice/wave/logs").get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;amp;" in html
    )

    download = client.get("/alice/wave/logs.txt")
    assert download.get_data(as_text=True) == evil  # the bytes as they were, but never rendered
    assert download.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Cache-Control"] == "no-store"


def test_download_is_an_attachment_named_after_the_run(site: Site) -> None:
    public_name = run_with_output(site, "secret", "hello\n")
    response = site.client("admin").get(f"/alice/secret/logs.txt?deployment={public_name}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="alice-secret-{public_name}.log"'


def test_caps(site: Site) -> None:
    """The page asks for 64 KiB, the download for 256 KiB; both end with the newest line."""
    lines = [f"line {i:06d} " + "x" * 50 + "\n" for i in range(8000)]  # ~ 500 KiB
    run_with_output(site, "wave", "".join(lines))
    client = site.client("owner")
    html = client.get("/alice/wave/logs").get_data(as_text=True)
    assert "line 007999" in html and "line 000000" not in html
    shown = html[html.index("<pre") : html.index("</pre>")]
    assert SHOWN_BYTES - 1024 < len(shown) < SHOWN_BYTES + 1024
    body = client.get("/alice/wave/logs.txt").get_data()
    assert len(body) == DOWNLOAD_BYTES and body.endswith(b"line 007999 " + b"x" * 50 + b"\n")


def test_a_named_run_an_unknown_run_and_no_run(site: Site) -> None:
    client = site.client("owner")
    page = client.get("/alice/wave/logs")
    assert page.status_code == 200 and "has not run yet" in page.get_data(as_text=True)
    assert client.get("/alice/wave/logs.txt").status_code == 404
    assert client.get("/alice/wave/logs?deployment=default-zzzzzz").status_code == 404
    assert client.get("/alice/wave/logs.txt?deployment=default-zzzzzz").status_code == 404

    first = run_with_output(site, "wave", "the first run\n")
    with site.ctx():
        lifecycle.stop(db.session.scalar(db.select(Deployment).filter_by(public_name=first)), reason="admin")
    second = run_with_output(site, "wave", "the second run\n")
    assert "the second run" in client.get("/alice/wave/logs").get_data(as_text=True)
    named = client.get(f"/alice/wave/logs?deployment={first}").get_data(as_text=True)
    assert "the first run" in named and first in named  # a stopped run's log stays readable
    assert (
        client.get(f"/alice/wave/logs.txt?deployment={second}").get_data(as_text=True) == "the second run\n"
    )
    # another app's run is not this app's
    other = run_with_output(site, "secret", "private\n")
    assert client.get(f"/alice/wave/logs?deployment={other}").status_code == 404


def test_a_backend_that_cannot_tell_is_said_so(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    run_with_output(site, "wave", "x\n")

    def refuse(ref: str, max_bytes: int) -> str:
        raise BackendError("The cluster could not be reached: <timeout>")

    monkeypatch.setattr(site.backend, "logs", refuse)
    client = site.client("owner")
    page = client.get("/alice/wave/logs")
    assert page.status_code == 200 and "The cluster could not be reached: &lt;timeout&gt;" in page.get_data(
        as_text=True
    )
    download = client.get("/alice/wave/logs.txt")
    assert download.status_code == 503 and download.headers["Cache-Control"] == "no-store"


# ------------------------------------------------------------------ local backend
def test_local_tail_reads_whole_lines_leaves_the_watchdog_out_and_follows_no_symlink(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    assert local_logs.tail(log, 100) == ""  # no file
    log.write_bytes(b"one\ndormouse watchdog: app exited with code 1\ntwo \xff\nthree\n")
    assert local_logs.tail(log, 1000) == "one\ntwo \ufffd\nthree\n"
    assert local_logs.tail(log, 10) == "three\n"  # "\xff\nthree\n" is 8 bytes: the cut line is dropped
    assert local_logs.tail(log, 0) == ""
    (tmp_path / "long.log").write_bytes(b"x" * 100)
    assert local_logs.tail(tmp_path / "long.log", 10) == "x" * 10  # one long line: its end
    (tmp_path / "link.log").symlink_to(log)
    assert local_logs.tail(tmp_path / "link.log", 1000) == ""


def test_local_backend_logs_of_a_real_dash_app_survive_the_stop(tmp_path: Path) -> None:
    backend = LocalBackend(apps_dir=EXAMPLES, run_dir=tmp_path / "run")
    ref = backend.create(make_spec("dash", source="dash-wave/app.py", callable="server"))
    port = json.loads(ref)["port"]
    try:
        text = wait_for(
            lambda: (
                (t := backend.logs(ref, 64 * 1024)) and f"Listening at: http://127.0.0.1:{port}" in t and t
            ),
            60,
            "gunicorn's start-up line in the log",
        )
        assert "Starting gunicorn" in text
    finally:
        backend.stop(ref)
    after = backend.logs(ref, 64 * 1024)
    assert f"Listening at: http://127.0.0.1:{port}" in after
    assert not any(line.startswith("dormouse watchdog:") for line in after.splitlines())
    assert len(backend.logs(ref, 40).encode()) <= 40
    with pytest.raises(BackendError):
        backend.logs("not a ref", 100)


def test_the_logs_page_with_the_real_local_backend(tmp_path: Path) -> None:
    app = build_app(make_settings(tmp_path))
    app.test_client_class = CSRFClient
    with app.app_context():
        try:
            make_app(make_user("alice"), "wave")
            client = app.test_client()
            login(client)
            # 286 when the app was already up by the first status read
            assert client.post("/alice/wave/viz/start", headers=HX).status_code in (200, 286)
            dep = db.session.scalar(db.select(Deployment))
            assert dep.backend == "local" and dep.backend_ref
            wait_for(
                lambda: (
                    "Listening at: http://127.0.0.1:" in client.get("/alice/wave/logs").get_data(as_text=True)
                ),
                60,
                "the start-up line on the logs page",
            )
        finally:
            for dep in db.session.scalars(db.select(Deployment)):
                if dep.is_live:
                    lifecycle.stop(dep, reason="admin")
        assert "Listening at: http://127.0.0.1:" in client.get("/alice/wave/logs").get_data(as_text=True)
        body = client.get("/alice/wave/logs.txt").get_data(as_text=True)
        assert "Starting gunicorn" in body
        db.session.remove()
        db.engine.dispose()


# ------------------------------------------------------------------ Kubernetes backend
@pytest.fixture
def fake_tier(fake_kube) -> Iterator[Tier]:
    fake, kubeconfig = fake_kube
    namespace = new_namespace_name()
    fake.add_namespace(namespace)
    admin = fake.api_client()
    try:
        yield Tier("fake", str(kubeconfig), namespace, admin, fake=fake)
    finally:
        admin.close()


def started(tier: Tier) -> tuple[object, str, str, object]:
    """A deployment made by the backend, its pod made; (backend, ref, pod name, request log)."""
    backend, requests_log = tier.backend()
    ref = backend.create(make_spec(image="ghcr.io/alice/wave:1.0"))
    name = json.loads(ref)["name"]
    pod = kubelet.wait_for_pod(tier.core, tier.namespace, f"app.kubernetes.io/instance={name}")
    return backend, ref, pod.metadata.name, requests_log


def test_kube_logs_read_the_current_pods_log(fake_tier: Tier) -> None:
    backend, ref, pod, requests_log = started(fake_tier)
    fake_tier.fake.write_log(fake_tier.namespace, pod, "Listening at: http://0.0.0.0:8050\n<b>é</b>\n")
    assert backend.logs(ref, 64 * 1024) == "Listening at: http://0.0.0.0:8050\n<b>é</b>\n"
    (_, path, query) = [r for r in fake_tier.fake.requests if r[1].endswith("/log")][-1]
    assert path == f"/api/v1/namespaces/{fake_tier.namespace}/pods/{pod}/log"
    assert (
        query["container"] == "app" and query["limitBytes"] == str(64 * 1024) and int(query["tailLines"]) > 0
    )
    assert requests_log.count("GET", r"/pods/[^/]+/log$") == 1
    backend.stop(ref)
    assert backend.logs(ref, 1024) == ""  # the pod's log went with the pod


def test_kube_logs_keep_the_newest_lines_under_the_byte_cap(fake_tier: Tier) -> None:
    """limitBytes cuts the tail's *end*: the backend asks again for fewer lines."""
    backend, ref, pod, requests_log = started(fake_tier)
    lines = [f"{i:05d} " + "y" * 250 + "\n" for i in range(2000)]  # 256 bytes a line
    fake_tier.fake.write_log(fake_tier.namespace, pod, "".join(lines))
    text = backend.logs(ref, 16 * 1024)
    assert (
        len(text.encode()) <= 16 * 1024
        and text.endswith(lines[-1])
        and text.startswith(lines[-len(text.splitlines())])
    )
    assert 1 < requests_log.count("GET", r"/log$") <= 4
    one = "z" * 5000  # one line longer than the cap: its start, as the kubelet gives it
    fake_tier.fake.write_log(fake_tier.namespace, pod, one)
    assert backend.logs(ref, 1000) == "z" * 1000


def test_kube_logs_errors_are_matched_on_status(fake_tier: Tier) -> None:
    backend, ref, pod, _ = started(fake_tier)
    fake = fake_tier.fake
    fake.inject("GET", r"/log$", status=400, message=f'container "app" in pod "{pod}" is waiting to start')
    assert backend.logs(ref, 1024) == ""  # not started yet: no output
    fake.inject("GET", r"/log$", status=404)
    assert backend.logs(ref, 1024) == ""  # the pod went between the listing and the read
    fake.inject("GET", r"/log$", status=403, reason="Forbidden")
    with pytest.raises(BackendError, match="not allowed to read this app's log"):
        backend.logs(ref, 1024)
    fake.inject("GET", r"/log$", status=503, times=None)
    with pytest.raises(BackendError, match="could not be reached"):
        backend.logs(ref, 1024)
    fake.clear_faults()
    with pytest.raises(BackendError):
        backend.logs("not a ref", 1024)
    # a Deployment that never existed has no pods: ""
    assert backend.logs(json.dumps({"name": "alice-gone-zzzzzz", "path": "/alice/gone/x/"}), 1024) == ""


def test_fake_pods_log_endpoint_is_faithful(fake_tier: Tier) -> None:
    """text/plain, 404 for a missing pod, tailLines then limitBytes (the kubelet's order),
    bad options refused."""
    _, _, pod, _ = started(fake_tier)
    ns, core = fake_tier.namespace, fake_tier.core
    fake_tier.fake.write_log(ns, pod, "a\nbb\nccc\ndddd")

    def read(**kw):
        response = core.read_namespaced_pod_log(pod, ns, _preload_content=False, _request_timeout=10, **kw)
        return response.headers["Content-Type"], response.data

    assert read() == ("text/plain", b"a\nbb\nccc\ndddd")
    assert read(tail_lines=2)[1] == b"ccc\ndddd"
    assert read(tail_lines=2, limit_bytes=3)[1] == b"ccc"  # the first bytes of the tail
    assert read(tail_lines=0)[1] == b""
    assert read(container="app", limit_bytes=1)[1] == b"a"
    for kw, status in (
        ({"container": "nope"}, 400),
        ({"limit_bytes": 0}, 422),
        ({"tail_lines": -1}, 422),
        ({"follow": True}, 400),
    ):
        with pytest.raises(ApiException) as exc:
            read(**kw)
        assert exc.value.status == status, kw
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("no-such-pod", ns, _request_timeout=10)
    assert exc.value.status == 404 and json.loads(exc.value.body)["reason"] == "NotFound"


def test_a_pod_with_no_output_answers_an_empty_log_on_both_tiers(kube_tier: Tier) -> None:
    """Neither the real API server (no kubelet: the pod has no node) nor the fake
    has output for a fresh pod; the backend reads "" and raises nothing. A missing
    pod is 404 on both."""
    backend, ref, pod, requests_log = started(kube_tier)
    assert backend.logs(ref, 4096) == ""
    assert requests_log.count("GET", r"/pods/[^/]+/log$") == 1
    with pytest.raises(ApiException) as exc:
        kclient.CoreV1Api(kube_tier.admin).read_namespaced_pod_log(
            "no-such-pod", kube_tier.namespace, _request_timeout=10
        )
    assert exc.value.status == 404
    backend.stop(ref)


def test_local_logs_need_only_the_ref(tmp_path: Path) -> None:
    """The local log file is named by the ref alone (after a restart, the row's ref still reads it)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "alice-wave-default-abc234.log").write_text("kept\n")
    backend = LocalBackend(apps_dir=EXAMPLES, run_dir=run)
    ref = json.dumps({"v": 1, "name": "alice-wave-default-abc234", "fw": "dash", "pid": os.getpid(),
                      "start": 0, "port": 8100, "path": "/alice/wave/default-abc234/"})  # fmt: skip
    assert backend.logs(ref, 1024) == "kept\n"
