"""Test data made by plain factory functions (Redash's tests/factories.py):
settings, a migrated app, a CSRF-aware client, users, published apps, the
``AppSpec`` a backend is handed.

Tests import what they use from here; fixtures in conftest.py are built on
these, so a test never imports from conftest.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from flask import Flask, current_app, g, has_app_context
from flask.testing import FlaskClient

from app import create_app
from app.auth import create_user
from app.backends.base import AppSpec
from app.backends.frameworks import FRAMEWORKS
from app.config import REPO_ROOT, Settings
from app.extensions import db
from app.models import Deployment, User, VizApp
from app.publishing import AppInput, publish
from app.slugs import deployment_name, public_name, url_prefix
from tests.envs_cache import default_python, env_settings_vars

EXAMPLES = REPO_ROOT / "examples"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def make_settings(tmp_path: Path, database_url: str | None = None, **env: str) -> Settings:
    base = {
        "DORMOUSE_ENV": "testing",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'test.db'}",
        "SECRET_KEY": "test-secret-key",
        "SCHEDULER_ENABLED": "0",
        "APPS_DIR": str(EXAMPLES),
        "RATE_LIMITS": "0",  # tests of the limits turn them on (tests/test_rate_limits.py)
        # the default environments, built once and shared (tests/envs_cache.py); never pruned here
        **env_settings_vars(),
        "ENV_KEEP_UNUSED": str(10 * 365 * 86400),
    }
    base.update(env)
    return Settings.from_env(base)


def build_app(settings: Settings) -> Flask:
    from flask_migrate import upgrade

    app = create_app(settings=settings)
    with app.app_context():
        upgrade()
    return app


class CSRFClient(FlaskClient):
    """A test client that sends the page's CSRF token with every POST, as the
    browser does through hx-headers; ``csrf=False`` leaves it off.

    Tests run inside one app context (the ``app`` fixture), which every request
    would otherwise reuse, ``flask.g`` included: Flask-Login's current user and
    Flask-WTF's token would leak from one client's request into the next
    client's. Each request starts with an empty ``g``, as in a real server."""

    def open(self, *args, **kwargs):  # type: ignore[override]
        if has_app_context():
            vars(g).clear()
        return super().open(*args, **kwargs)

    def post(self, *args, csrf: bool = True, **kwargs):  # type: ignore[override]
        if csrf:
            headers = dict(kwargs.pop("headers", {}) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token())
            kwargs["headers"] = headers
        return super().post(*args, **kwargs)

    def csrf_token(self) -> str:
        page = super().get("/").get_data(as_text=True)
        match = CSRF_META.search(page)
        assert match, "no csrf-token meta tag on /"
        return match.group(1)


def make_user(username: str = "alice", password: str = "correct-horse", admin: bool = False) -> User:
    return create_user(username, password, is_admin=admin)


def make_app(
    owner: User, title: str = "wave", framework: str = "dash", source: str | None = None, **fields: object
) -> VizApp:
    if source is None:
        source = "dash-wave/app.py:server" if framework == "dash" else "bokeh-sliders/main.py"
    data = AppInput(
        title=title,
        framework=framework,
        source=source,
        **{k: str(v) if k != "is_public" else v for k, v in fields.items()},
    )  # type: ignore[arg-type]
    return publish(owner, data, current_app.config["DORMOUSE"], build_now=True)


def attach_default_env(app_row: VizApp) -> None:
    """Give a row written past publish (as an old or tampered database
    holds) its framework's default environment, the shared one (tests/envs_cache.py)."""
    from app import app_envs
    from app.models import utcnow

    builder = app_envs.Builder.from_settings(current_app.config["DORMOUSE"])
    resolved = app_envs.resolve(builder, app_row.framework, None)
    app_envs.attach(app_row, resolved, builder, now=utcnow())


def make_deployment(
    app: VizApp,
    created_at: datetime,
    *,
    ready_at: datetime | None = None,
    stopped_at: datetime | None = None,
    stop_reason: str | None = None,
    name: str = "default",
    cpu_millicores: int | None = 500,
    memory_mib: int | None = 512,
    **fields: object,
) -> Deployment:
    """A deployment row with the given history, written directly (no
    backend): stopped if ``stopped_at``, else running if ``ready_at``, else
    starting; ``fields`` are other columns (page_loads, viewer_seconds, ...)."""
    if "status" not in fields:
        fields["status"] = "stopped" if stopped_at else "running" if ready_at else "starting"
    dep = Deployment(
        app=app,
        owner_id=app.owner_id,
        name=name,
        public_name=public_name(name),
        backend="local",
        created_at=created_at,
        ready_at=ready_at,
        stopped_at=stopped_at,
        stop_reason=stop_reason if stop_reason or not stopped_at else "idle",
        cpu_millicores=cpu_millicores,
        memory_mib=memory_mib,
        **fields,
    )
    db.session.add(dep)
    db.session.commit()
    return dep


def login(client: FlaskClient, username: str = "alice", password: str = "correct-horse"):
    return client.post("/login", data={"username": username, "password": password})


def make_spec(
    framework: str = "dash",
    *,
    owner: str = "alice",
    title: str = "wave",
    public_name: str = "default-abc234",
    **fields: object,
) -> AppSpec:
    """What a backend is handed for one run: ``alice-wave-default-abc234`` at
    ``/alice/wave/default-abc234/`` unless told otherwise; ``fields`` are the
    rest of :class:`AppSpec` (source, image, env, ...). A spec with a source
    (the local backend) runs in the framework's default environment unless
    it names a ``python``."""
    if fields.get("source") and "python" not in fields and framework in FRAMEWORKS:
        fields["python"] = default_python(framework)
    return AppSpec(
        owner=owner,
        title=title,
        framework=framework,
        deployment_name=deployment_name(owner, title, public_name),
        prefix=url_prefix(owner, title, public_name),
        public_name=public_name,
        **fields,  # type: ignore[arg-type]
    )


def make_token(user: User, ttl: float = 3600, label: str = "test") -> str:
    """A real API token for ``user`` (app/api_tokens.py), as the tokens page makes it."""
    from app import api_tokens

    settings = current_app.config["DORMOUSE"]
    token, _row = api_tokens.issue(
        user, ttl=ttl, label=label, jwt_keys=settings.jwt_keys, max_ttl=settings.api_token_max_ttl
    )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
