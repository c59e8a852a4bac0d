"""An admin's lift of an app's monthly budget.

viz_apps.budget_lifted_until (the app starts whatever it costs until then:
the 1st of the next month, app/budget.py), and "lift-budget" among the
actions the admin_actions log may hold.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 12:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OLD_ACTIONS = "action IN ('stop', 'keep-awake', 'make-admin', 'remove-admin', 'disable')"
NEW_ACTIONS = "action IN ('stop', 'keep-awake', 'make-admin', 'remove-admin', 'disable', 'lift-budget')"


def _actions(check: str) -> None:
    with op.batch_alter_table("admin_actions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_admin_actions_action"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_admin_actions_action"), check)


def upgrade():
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("budget_lifted_until", sa.DateTime(timezone=True), nullable=True))
    _actions(NEW_ACTIONS)


def downgrade():
    op.execute("DELETE FROM admin_actions WHERE action = 'lift-budget'")
    _actions(OLD_ACTIONS)
    with op.batch_alter_table("viz_apps", schema=None) as batch_op:
        batch_op.drop_column("budget_lifted_until")
