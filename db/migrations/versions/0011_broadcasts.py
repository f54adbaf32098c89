"""broadcasts: the admin's /broadcast drafts and sendings, and their outbox rows

A broadcast is one `broadcasts` row (the texts, the audience, the status message) and one
outbox notice per recipient, marked with `broadcast_id`: its progress and its cancel
walk `(broadcast_id, status)`, and the notifier's claim takes the other pending notices
first through a partial index that holds only them (buyer and admin notices never wait
behind a broadcast).

Revision ID: 0011_broadcasts
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op


revision = "0011_broadcasts"
down_revision = "0010_shop"
branch_labels = None
depends_on = None

URGENT = sa.text("status = 'pending' AND broadcast_id IS NULL")


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("admin_id", sa.BigInteger(), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("recipients", sa.Integer(), server_default="0", nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("language", sa.String(2), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_broadcasts"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("broadcast_id", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_notifications_broadcast_id_status",
        "notifications",
        ["broadcast_id", "status"],
        unique=False,
    )
    op.create_index(
        "ix_notifications_pending_urgent",
        "notifications",
        ["id"],
        unique=False,
        sqlite_where=URGENT,
        postgresql_where=URGENT,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_pending_urgent", table_name="notifications")
    op.drop_index("ix_notifications_broadcast_id_status", table_name="notifications")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("broadcast_id")
    op.drop_table("broadcasts")
