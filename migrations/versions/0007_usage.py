"""Usage and cost: what each deployment ran with and how it was used, and an
optional monthly budget per app.

deployments.cpu_millicores and .memory_mib (the app's quantities when the
deployment was made; rows from before this revision get their app's current
ones), .page_loads and .viewer_seconds (counters moved by the writes
record_load and record_ping make anyway), indexes for the window queries of
app/usage.py and app/costs.py; viz_apps.monthly_budget.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 12:00:00

"""

import sqlalchemy as sa
from alembic import op

from app.publishing import parse_cpu, parse_memory

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpu_millicores", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("memory_mib", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("page_loads", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("viewer_seconds", sa.Float(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.create_index("ix_deployments_app_created", ["app_id", "created_at"], unique=False)
        batch_op.create_index("ix_deployments_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_deployments_stopped_created", ["stopped_at", "created_at"], unique=False)
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("monthly_budget", sa.Numeric(precision=12, scale=2), nullable=True))

    # Earlier deployments: their app's quantities now (the best there is).
    conn = op.get_bind()
    apps = conn.execute(sa.text("SELECT id, cpu, memory FROM viz_apps")).all()
    for app_id, cpu, memory in apps:
        conn.execute(
            sa.text(
                "UPDATE deployments SET cpu_millicores = :cpu, memory_mib = :mem "
                "WHERE app_id = :app_id AND cpu_millicores IS NULL"
            ),
            {"cpu": parse_cpu(cpu or ""), "mem": parse_memory(memory or ""), "app_id": app_id},
        )


def downgrade():
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.drop_column("monthly_budget")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_deployments_stopped_created")
        batch_op.drop_index("ix_deployments_created_at")
        batch_op.drop_index("ix_deployments_app_created")
        batch_op.drop_column("viewer_seconds")
        batch_op.drop_column("page_loads")
        batch_op.drop_column("memory_mib")
        batch_op.drop_column("cpu_millicores")
