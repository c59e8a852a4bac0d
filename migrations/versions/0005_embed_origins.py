"""viz_apps.embed_origins: the sites that may embed an app's viz page.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("embed_origins", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )


def downgrade():
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.drop_column("embed_origins")
