"""checkout: where each order's checkout message is (chat and message id)

The bot shows one checkout message per order: a second tap on the same tariff edits
that message instead of sending another, and a credited payment turns it into
"Paid ✓" without pay buttons. Existing orders have none (NULL): nothing to edit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkout_chat_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("checkout_message_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("checkout_message_id")
        batch_op.drop_column("checkout_chat_id")
