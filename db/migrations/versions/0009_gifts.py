"""gifts: periods say what made them (payment, opening, gift); the gifts table

A gift of days from an admin is a ledger period without a payment, like the opening
periods of migration 0005, so `periods.kind` tells them apart: the ledger's refund of a
payment made before the ledger takes from the opening period only, never from a gift.
Existing rows are payments, or openings where `payment_id` is NULL. The `gifts` table
holds each gift's request (pending until an admin confirms it, so any instance can),
who gave it and why, and its period once granted.

The definitions are frozen here, not imported from db/schema.py.

Revision ID: 0009_gifts
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_gifts"
down_revision = "0008"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("periods", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="payment")
        )
    periods = sa.table("periods", sa.column("payment_id"), sa.column("kind"))
    op.get_bind().execute(
        sa.update(periods).where(periods.c.payment_id.is_(None)).values(kind="opening")
    )
    op.create_table(
        "gifts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("tariff", sa.String(length=16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("period_id", BIG_ID, nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("taken_back_by", sa.BigInteger(), nullable=True),
        sa.Column("taken_back_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_gifts_user_id")),
        sa.ForeignKeyConstraint(["period_id"], ["periods.id"], name=op.f("fk_gifts_period_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gifts")),
        sa.UniqueConstraint("period_id", name=op.f("uq_gifts_period_id")),
    )
    with op.batch_alter_table("gifts", schema=None) as batch_op:
        batch_op.create_index("ix_gifts_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gifts", schema=None) as batch_op:
        batch_op.drop_index("ix_gifts_user_id")
    op.drop_table("gifts")
    with op.batch_alter_table("periods", schema=None) as batch_op:
        batch_op.drop_column("kind")
