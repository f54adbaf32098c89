"""ledger: orders record their days; the periods table; each current plan becomes an
opening period

Before this revision a user's plan was one row (`users.tariff`, `tariff_expires_at`)
that payments pushed around. The time that row still holds becomes one opening period
(no payment), credited at the moment of the upgrade, so nobody gains or loses a day.
Orders get the days they granted (`granted_days` of a payment of theirs) or, unpaid,
the days configured now (`TARIFF_<CODE>_DAYS`, else the shipped 30), which is what
they would have granted.

The definitions are frozen here, not imported from db/schema.py, so this revision means
the same thing whatever the schema becomes later.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import os
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SHIPPED_DAYS = {"PLUS": 30, "PRO": 30}
DAY_MS = 86_400_000


def _configured_days(tariff: str) -> int:
    raw = os.environ.get(f"TARIFF_{tariff}_DAYS", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else SHIPPED_DAYS.get(tariff, 30)


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("days", sa.Integer(), nullable=True))
    op.create_table(
        "periods",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("tariff", sa.String(length=16), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("credited_at", sa.BigInteger(), nullable=False),
        sa.Column("refunded_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_periods_user_id")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_periods_payment_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_periods")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_periods_payment_id")),
    )
    with op.batch_alter_table("periods", schema=None) as batch_op:
        batch_op.create_index("ix_periods_user_id", ["user_id"], unique=False)

    bind = op.get_bind()
    orders = sa.table(
        "orders", sa.column("id"), sa.column("tariff"), sa.column("days", sa.Integer())
    )
    payments = sa.table("payments", sa.column("order_id"), sa.column("granted_days"))
    users = sa.table(
        "users",
        sa.column("id"),
        sa.column("tariff"),
        sa.column("tariff_expires_at", sa.DateTime(timezone=True)),
    )
    periods = sa.table(
        "periods",
        sa.column("user_id"),
        sa.column("payment_id"),
        sa.column("tariff"),
        sa.column("duration_ms"),
        sa.column("credited_at"),
    )
    # Set-based (a handful of statements whatever the number of orders).
    granted = (
        sa.select(sa.func.max(payments.c.granted_days))
        .where(payments.c.order_id == orders.c.id)
        .scalar_subquery()
    )
    bind.execute(sa.update(orders).values(days=granted))
    tariffs = bind.execute(
        sa.select(orders.c.tariff).where(orders.c.days.is_(None)).distinct()
    ).scalars()
    for tariff in list(tariffs):
        bind.execute(
            sa.update(orders)
            .where(orders.c.days.is_(None), orders.c.tariff == tariff)
            .values(days=_configured_days(tariff))
        )

    now_ms = time.time_ns() // 1_000_000
    rows = bind.execute(
        sa.select(users.c.id, users.c.tariff, users.c.tariff_expires_at).where(
            users.c.tariff.is_not(None), users.c.tariff_expires_at.is_not(None)
        )
    ).all()
    opening = [
        {
            "user_id": user_id,
            "payment_id": None,
            "tariff": tariff,
            "duration_ms": _ms(expires_at) - now_ms,
            "credited_at": now_ms,
        }
        for user_id, tariff, expires_at in rows
        if _ms(expires_at) > now_ms
    ]
    if opening:
        bind.execute(sa.insert(periods), opening)


def downgrade() -> None:
    with op.batch_alter_table("periods", schema=None) as batch_op:
        batch_op.drop_index("ix_periods_user_id")
    op.drop_table("periods")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("days")
