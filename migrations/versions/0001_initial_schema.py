"""Initial schema: users, published apps, deployments and the scheduler lease.

The partial unique index uq_deployments_live_app_name allows at most one live
(starting or running) deployment per app and name, on SQLite and PostgreSQL.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 05:01:48.110895

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=40), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "viz_apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=40), nullable=False),
        sa.Column("framework", sa.String(length=10), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=True),
        sa.Column("callable", sa.String(length=100), nullable=True),
        sa.Column("image", sa.String(length=500), nullable=True),
        sa.Column("command", sa.String(length=500), nullable=True),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("cpu", sa.String(length=20), nullable=False),
        sa.Column("memory", sa.String(length=20), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("is_public", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("framework IN ('dash', 'bokeh')", name=op.f("ck_viz_apps_framework")),
        sa.CheckConstraint("port BETWEEN 1 AND 65535", name=op.f("ck_viz_apps_port")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_viz_apps_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_viz_apps")),
        sa.UniqueConstraint("owner_id", "title", name="uq_viz_apps_owner_title"),
    )
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_viz_apps_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("public_name", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("phase", sa.String(length=200), nullable=False),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column("backend_ref", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_load_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latest_ping_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=20), nullable=True),
        sa.CheckConstraint(
            "status IN ('starting', 'running', 'failed', 'stopped')", name=op.f("ck_deployments_status")
        ),
        sa.ForeignKeyConstraint(
            ["app_id"], ["viz_apps.id"], name=op.f("fk_deployments_app_id_viz_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("public_name", name=op.f("uq_deployments_public_name")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index("ix_deployments_status", ["status"], unique=False)
        batch_op.create_index(
            "uq_deployments_live_app_name",
            ["app_id", "name"],
            unique=True,
            sqlite_where=sa.text("status IN ('starting', 'running')"),
            postgresql_where=sa.text("status IN ('starting', 'running')"),
        )


def downgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_deployments_live_app_name",
            sqlite_where=sa.text("status IN ('starting', 'running')"),
            postgresql_where=sa.text("status IN ('starting', 'running')"),
        )
        batch_op.drop_index("ix_deployments_status")

    op.drop_table("deployments")
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_viz_apps_owner_id"))

    op.drop_table("viz_apps")
    op.drop_table("users")
    op.drop_table("scheduler_leases")
