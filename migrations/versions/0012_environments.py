"""environments: per-app Python environments built with uv, and on each app
its requirements (text, hash) and the environment it runs in.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 15:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "environments",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("framework", sa.String(length=10), nullable=False),
        sa.Column("python", sa.String(length=300), nullable=False),
        sa.Column("lock_text", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("build_seconds", sa.Float(), nullable=True),
        sa.Column("builds", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('building', 'ready', 'failed')", name=op.f("ck_environments_status")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_environments")),
    )
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requirements_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("requirements_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("env_key", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_viz_apps_env_key"), ["env_key"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_viz_apps_env_key_environments"),
            "environments",
            ["env_key"],
            ["key"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_viz_apps_env_key_environments"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_viz_apps_env_key"))
        batch_op.drop_column("env_key")
        batch_op.drop_column("requirements_hash")
        batch_op.drop_column("requirements_text")
    op.drop_table("environments")
