"""pending environment: the environment being built for an app (first
publish, or an edit that changed its requirements), replacing env_key once
ready; an app with none ready yet is its owner's and admins' only.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 15:20:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_env_key", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_viz_apps_pending_env_key"), ["pending_env_key"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_viz_apps_pending_env_key_environments"),
            "environments",
            ["pending_env_key"],
            ["key"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_viz_apps_pending_env_key_environments"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_viz_apps_pending_env_key"))
        batch_op.drop_column("pending_env_key")
