"""bench/hot_paths.py's instance and in-process measurements: the hot
paths as requests (what is sent, what a right answer is), the throwaway
instance (a user, a published app, a running deployment row), and per path
the SQL statements, writes, backend calls and CPU per request in-process."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import BenchError, migrated_app

OWNER, TITLE = "bench", "wave"
BASE = f"/{OWNER}/{TITLE}/viz"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
ADDRESSES = 16384  # client addresses the load cycles through (X-Forwarded-For)


@dataclass(frozen=True)
class Path_:
    """One hot path: how to ask it, and what a right answer is."""

    name: str
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: str
    expect: int

    def check(self, status: int, body: bytes, bare: bool = False) -> None:
        if status != self.expect:
            raise BenchError(f"{self.name}: answered {status} (expected {self.expect}): {body[:300]!r}")
        if bare:
            if json.loads(body) != {"status": "running"}:
                raise BenchError(f"the bare {self.name}: {body[:300]!r}")
            return
        if self.name == "status-htmx":
            if b"<iframe" not in body:
                raise BenchError(f"{self.name}: no iframe in the partial: {body[:300]!r}")
            return
        data = json.loads(body)
        if data.get("status") != "running" or not data.get("url"):
            raise BenchError(f"{self.name}: not running with a URL: {data}")


def paths(public_name: str, cookie: str, csrf: str) -> list[Path_]:
    viewer = {"Cookie": cookie}
    return [
        Path_(
            "ping", "POST", f"{BASE}/ping",
            {**viewer, "X-CSRFToken": csrf, "Accept": "application/json",
             "Content-Type": "application/x-www-form-urlencoded"},
            f"deployment={public_name}", 200,
        ),
        Path_("status-json", "GET", f"{BASE}/status?deployment={public_name}",
              {**viewer, "Accept": "application/json"}, "", 200),
        Path_("status-htmx", "GET", f"{BASE}/status?deployment={public_name}",
              {**viewer, "HX-Request": "true", "Accept": "text/html"}, "", 286),
    ]  # fmt: skip


# --- the instance ------------------------------------------------------------


def dormouse_env(workdir: Path, database_url: str, workers: int, threads: int) -> dict[str, str]:
    """The Dormouse server's whole environment: nothing of the caller's leaks in."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(
        DORMOUSE_ENV="development",
        INSTANCE_PATH=str(workdir / "instance"),
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        JWT_KEYS=f"bench:{secrets.token_urlsafe(48)}",
        SCHEDULER_ENABLED="0",
        BACKEND="local",
        WEB_CONCURRENCY=str(workers),
        GUNICORN_THREADS=str(threads),
        LOG_LEVEL="WARNING",
    )
    return env


def prepare(env: dict[str, str]) -> str:
    """Migrate, add a user, a published public app and a running deployment
    row with a backend reference (no process: the local backend builds the
    URL from the reference alone); return its public name."""
    from app.auth import create_user
    from app.extensions import db
    from app.models import Deployment, VizApp, utcnow
    from app.slugs import public_name

    with migrated_app(env) as flask_app:
        settings = flask_app.config["DORMOUSE"]
        user = create_user(OWNER, secrets.token_urlsafe(16))
        # written directly: published (public, no environment pending), no build
        viz = VizApp(
            owner=user, title=TITLE, framework="dash", source="dash-wave/app.py:server", is_public=True
        )
        db.session.add(viz)
        db.session.flush()
        dep = Deployment(
            app=viz, owner_id=user.id, public_name=public_name("default"), status="running", phase="Ready",
            backend=settings.backend, created_at=utcnow(), ready_at=utcnow(), latest_load_at=utcnow(),
        )  # fmt: skip
        db.session.add(dep)
        db.session.flush()
        dep.backend_ref = json.dumps(
            {"name": dep.deployment_name, "pid": 2**22, "port": 1, "path": dep.prefix}
        )
        db.session.commit()
        return dep.public_name


# --- in-process: statements, writes, backend calls, CPU ------------------------


class CountingBackend:
    """The configured backend, each call counted."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls = 0

    def __getattr__(self, name: str):
        value = getattr(self.real, name)
        if not callable(value):
            return value

        def counted(*args, **kwargs):
            self.calls += 1
            return value(*args, **kwargs)

        return counted


def in_process(env: dict[str, str], public_name: str, n: int, cpu_requests: int) -> None:
    """Per path: SQL statements, writes and backend calls per request (Flask's
    test client, an anonymous viewer with the page's cookie and CSRF token),
    and CPU per request through the WSGI callable, Dormouse's and the bare app's."""
    from sqlalchemy import event

    from app import create_app
    from app.config import Settings
    from app.extensions import db
    from bench.bare_app import app as bare_app

    flask_app = create_app(settings=Settings.from_env(env))
    counting = CountingBackend(flask_app.extensions["dormouse.backend"])
    flask_app.extensions["dormouse.backend"] = counting
    client = flask_app.test_client()
    page = client.get(f"{BASE}/")
    found = CSRF_META.search(page.get_data(as_text=True))
    if page.status_code != 200 or not found:
        raise BenchError(f"the viz page answered {page.status_code} in-process, or had no CSRF token")
    # the page's first status answer (its start, in a browser) updates the cookie once (Flask-Login's
    # basic session protection marks it not fresh); a browser sends the updated one from then on
    client.get(f"{BASE}/status?deployment={public_name}", headers={"HX-Request": "true"})
    name = flask_app.config["SESSION_COOKIE_NAME"]
    cookie = f"{name}={client.get_cookie(name).value}"
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    print(f"\nIn-process, an anonymous viewer, {n} requests per path (test client):")
    print(
        f"{'path':>12} {'statements/req':>15} {'writes/req':>11} {'backend calls':>14} {'first request':>14}"
    )
    with flask_app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for p in paths(public_name, cookie, found.group(1)):
            counting.calls = 0
            seen.clear()
            first = None
            for i in range(n):
                answer = client.open(p.path, method=p.method, headers=p.headers, data=p.body or None)
                p.check(answer.status_code, answer.get_data())
                if i == 0:
                    first = len(seen)
            writes = sum(s.lstrip().split(None, 1)[0].upper() in ("UPDATE", "INSERT", "DELETE") for s in seen)
            print(
                f"{p.name:>12} {len(seen) / n:>15.3f} {writes / n:>11.3f} {counting.calls:>14} "
                f"{first:>10} stmt"
            )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    if cpu_requests:
        print(f"\nCPU per request through the WSGI callable (best of 3 x {cpu_requests}):")
        for p in paths(public_name, cookie, found.group(1)):
            dormouse_us = cpu_per_request(flask_app, p, cpu_requests)
            bare = Path_(p.name, p.method, p.path, {}, p.body, 200)
            bare_us = cpu_per_request(bare_app, bare, cpu_requests)
            print(f"{p.name:>12}  Dormouse {dormouse_us:6.0f} us   bare {bare_us:5.0f} us")
    with flask_app.app_context():
        db.session.remove()
        db.engine.dispose()


def cpu_per_request(wsgi_app, p: Path_, n: int) -> float:
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    body = p.body.encode()
    environ = EnvironBuilder(
        path=p.path.split("?")[0],
        query_string=p.path.partition("?")[2],
        method=p.method,
        headers=p.headers,
        data=body,
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    ).get_environ()

    count = iter(range(10**9))

    def one() -> None:
        e = dict(environ)
        i = next(count) % ADDRESSES  # the partial's rate limit is per client, as under load
        e["HTTP_X_FORWARDED_FOR"] = f"10.{i // 128}.{i % 128}.2"
        e["wsgi.input"] = io.BytesIO(body)
        app_iter, status, _ = run_wsgi_app(wsgi_app, e)
        b"".join(app_iter)
        if not status.startswith(("200", "286")):
            raise BenchError(f"{p.name}: answered {status} in-process")

    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            one()
        best = min(best, time.process_time() - t0)
    return best / n * 1e6
