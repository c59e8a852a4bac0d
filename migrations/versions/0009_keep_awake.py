"""Keep awake, and the admin dashboard's audit log.

deployments.keep_awake_until and .keep_awake_by (an admin's "keep awake for N
minutes": the idle sweep keeps the deployment until then, app/idle.py), and
the admin_actions table: every action taken from the dashboard, by whom, when.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 12:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keep_awake_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("keep_awake_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_deployments_keep_awake_by_users"), "users", ["keep_awake_by"], ["id"],
            ondelete="SET NULL",
        )  # fmt: skip
    op.create_table(
        "admin_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "action IN ('stop', 'keep-awake', 'make-admin', 'remove-admin', 'disable')",
            name=op.f("ck_admin_actions_action"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_admin_actions_actor_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_admin_actions_deployment_id_deployments"),
            ondelete="SET NULL",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_actions")),
    )
    op.create_index(op.f("ix_admin_actions_at"), "admin_actions", ["at"], unique=False)


def downgrade():
    op.drop_index(op.f("ix_admin_actions_at"), table_name="admin_actions")
    op.drop_table("admin_actions")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_deployments_keep_awake_by_users"), type_="foreignkey")
        batch_op.drop_column("keep_awake_by")
        batch_op.drop_column("keep_awake_until")
