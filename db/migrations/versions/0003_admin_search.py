"""Indexes for the admin console's search and statistics

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payments_provider_id", "payments", ["provider_id"])
    op.create_index("ix_payments_click_paydoc_id", "payments", ["click_paydoc_id"])
    op.create_index("ix_payments_state_perform_time", "payments", ["state", "perform_time"])


def downgrade() -> None:
    op.drop_index("ix_payments_state_perform_time", "payments")
    op.drop_index("ix_payments_click_paydoc_id", "payments")
    op.drop_index("ix_payments_provider_id", "payments")
