"""deployments.owner_id, .slot and .owner_slot: exact caps on live deployments.

A live deployment holds one numbered slot below MAX_LIVE_DEPLOYMENTS and one
below MAX_LIVE_PER_OWNER for its owner; partial unique indexes let no two
live deployments hold the same slot, across workers and replicas. Rows from
before this revision hold none.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 12:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LIVE = sa.text("status IN ('starting', 'running')")


def upgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("slot", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("owner_slot", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_deployments_owner_id_users"), "users", ["owner_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index(
            "uq_deployments_live_slot", ["slot"], unique=True, sqlite_where=LIVE, postgresql_where=LIVE
        )
        batch_op.create_index(
            "uq_deployments_live_owner_slot",
            ["owner_id", "owner_slot"],
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )


def downgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index("uq_deployments_live_owner_slot")
        batch_op.drop_index("uq_deployments_live_slot")
        batch_op.drop_constraint(batch_op.f("fk_deployments_owner_id_users"), type_="foreignkey")
        batch_op.drop_column("owner_slot")
        batch_op.drop_column("slot")
        batch_op.drop_column("owner_id")
