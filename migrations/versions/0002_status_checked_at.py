"""Deployments: status_checked_at, so one backend status read a second goes
through per starting deployment, across workers and replicas.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:24:33.838129

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_checked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("status_checked_at")
