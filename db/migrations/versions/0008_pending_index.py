"""pending index: a partial index on pending notices for the notifier's claim

Sent notices are kept for ever; with a million of them the claim ("the oldest due
pending notices") must not walk past them inside the single writer. The index holds the
pending rows only, so its size is the queue's, not the history's.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["id"],
        unique=False,
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_pending", table_name="notifications")
