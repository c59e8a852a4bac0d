"""Goodbyes: deployments.goodbyes and .latest_goodbye_at, moved by the beacon a
viz page sends when it is closed (``POST .../viz/goodbye``). With page_loads
they count a deployment's open pages, which lets the idle policy stop an app
soon after its last page closed (app/idle.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 17:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("goodbyes", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch_op.add_column(sa.Column("latest_goodbye_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("latest_goodbye_at")
        batch_op.drop_column("goodbyes")
