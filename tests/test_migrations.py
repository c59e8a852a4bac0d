"""`flask db upgrade` builds the models' schema on empty SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from tests.factories import make_settings


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


def test_replicas_starting_together_migrate_once(tmp_path, postgres_db_url):
    """Several replicas run `flask db upgrade` at once: the advisory lock in
    migrations/env.py lets one migrate while the others wait."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DATABASE_URL": postgres_db_url,
        "SECRET_KEY": "x",
        "INSTANCE_PATH": str(tmp_path / "inst"),
        "SCHEDULER_ENABLED": "0",
    }
    flask = str(Path(sys.executable).parent / "flask")
    procs = [
        subprocess.Popen(
            [flask, "--app", "wsgi", "db", "upgrade"],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sum("Running upgrade  -> 0001" in out for out in outputs) == 1
