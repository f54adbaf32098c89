"""Indexes for the console's searches: any-case @username, keyset pages, amounts, tests

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_users_username_lower", "users", [sa.text("lower(username)")])
    op.create_index("ix_payments_create_time_id", "payments", ["create_time", "id"])
    op.create_index("ix_payments_amount_create_time_id", "payments", ["amount", "create_time", "id"])
    op.create_index("ix_payments_test_create_time_id", "payments", ["test", "create_time", "id"])
    op.create_index("ix_payments_state_order_id", "payments", ["state", "order_id"])


def downgrade() -> None:
    op.drop_index("ix_payments_state_order_id", "payments")
    op.drop_index("ix_payments_test_create_time_id", "payments")
    op.drop_index("ix_payments_amount_create_time_id", "payments")
    op.drop_index("ix_payments_create_time_id", "payments")
    op.drop_index("ix_users_username_lower", "users")
