"""Dormouse: host Dash/Plotly and Bokeh apps that run only while someone watches."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import REPO_ROOT, Settings
from .extensions import csrf, db, login_manager, migrate


def create_app(overrides: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the Flask app from the environment (or ``settings``), bind the
    extensions, and register blueprints, error handlers and CLI commands.

    Nothing is started here; the server starts the scheduler (see
    :mod:`app.scheduler`)."""
    settings = settings or Settings.from_env()
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
    )
    app.config.update(settings.to_flask())
    if overrides:
        app.config.update(overrides)
    os.makedirs(app.instance_path, exist_ok=True)
    _configure_logging(app)

    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(REPO_ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    with app.app_context():
        _configure_sqlite(db.engine)

    from . import app_envs
    from .backends import frameworks, make_backend

    app.extensions["dormouse.backend"] = make_backend(settings)
    app.jinja_env.globals["frameworks"] = frameworks.FRAMEWORKS  # labels and badges for pages
    app.jinja_env.globals["env_state"] = app_envs.state_of  # an app's environment, for its owner

    from . import auth, errors, hot_wsgi, metrics, rate_limits, scheduler, security, watching
    from .cli import register_cli
    from .views import register_blueprints

    auth.init_app(app)
    register_blueprints(app)
    rate_limits.init_app(app)  # wraps views registered above
    metrics.init_app(app)  # /metrics, and counts the gate's decisions (wraps its view)
    errors.init_app(app)
    security.init_app(app)
    watching.init_app(app)
    hot_wsgi.init_app(app)  # outermost: answers the memo's hits before Flask
    register_cli(app)
    scheduler.init_app(app)
    if scheduler.started_by_flask_run():
        scheduler.start(app)  # gunicorn starts it in post_worker_init; other CLI commands never
    return app


def _configure_logging(app: Flask) -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("app").setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # job bookkeeping is noise


def _configure_sqlite(engine: Engine) -> None:
    """WAL and foreign keys on every SQLite connection; readers then never
    block the writer, which matters with several threads and workers."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
