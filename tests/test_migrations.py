"""`flask db upgrade` builds the models' schema on empty SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from tests.conftest import make_settings


def test_upgrade_matches_models_and_downgrades(tmp_path, any_db_url):
    app = create_app(settings=make_settings(tmp_path, any_db_url))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], diff
        names = set(inspect(db.engine).get_table_names())
        assert {"users", "viz_apps", "deployments", "scheduler_leases"} <= names
        indexes = {i["name"]: i for i in inspect(db.engine).get_indexes("deployments")}
        assert indexes["uq_deployments_live_app_name"]["unique"]
        downgrade(revision="base")
        assert not {"users", "deployments"} & set(inspect(db.engine).get_table_names())
        db.engine.dispose()


def test_cli_db_upgrade_on_an_empty_database(tmp_path, any_db_url):
    app = create_app(settings=make_settings(tmp_path, any_db_url))
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert "deployments" in inspect(db.engine).get_table_names()
        db.engine.dispose()
