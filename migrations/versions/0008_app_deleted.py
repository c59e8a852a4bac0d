"""Deleting an app keeps its history.

viz_apps.deleted_at (set when its owner or an admin deletes it; the row and its
deployments stay for usage and cost history), and the one-title-per-owner rule
becomes a partial unique index over the apps not deleted, so a deleted app's
title can be published again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NOT_DELETED = sa.text("deleted_at IS NULL")


def upgrade():
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("uq_viz_apps_owner_title", type_="unique")
        batch_op.create_index(
            "uq_viz_apps_owner_title",
            ["owner_id", "title"],
            unique=True,
            sqlite_where=NOT_DELETED,
            postgresql_where=NOT_DELETED,
        )


def downgrade():
    # Deleted apps are removed with their deployments: the old schema has no
    # way to keep them, and their titles may have been published again.
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "DELETE FROM deployments WHERE app_id IN (SELECT id FROM viz_apps WHERE deleted_at IS NOT NULL)"
        )
    )
    conn.execute(sa.text("DELETE FROM viz_apps WHERE deleted_at IS NOT NULL"))
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.drop_index("uq_viz_apps_owner_title")
        batch_op.create_unique_constraint("uq_viz_apps_owner_title", ["owner_id", "title"])
        batch_op.drop_column("deleted_at")
