"""Migration 0005 on a database made by the previous schema with real rows in it: each
current plan becomes an opening period, orders get their days, and the ledger then
takes over (a refund of a new payment, a purchase on top of the opening period)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection

from db import ledger
from db.database import MIGRATIONS_DIR, Database, head_revision
from db.schema import orders, payments, periods, users

NOW = datetime.now(UTC).replace(microsecond=0)


def _upgrade(connection: Connection, target: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, target)


async def _to(db: Database, target: str) -> None:
    async with db.engine.connect() as connection, connection.begin():
        await connection.run_sync(_upgrade, target)


async def test_migration_turns_plans_into_opening_periods(database_url: str) -> None:
    db = Database.from_url(database_url)
    try:
        await _to(db, "0001")
        async with db.transaction() as conn:
            await conn.execute(
                insert(users),
                [
                    {"id": 1, "first_name": "Active", "tariff": "PRO", "created_at": NOW,
                     "tariff_expires_at": NOW + timedelta(days=12)},
                    {"id": 2, "first_name": "Expired", "tariff": "PLUS", "created_at": NOW,
                     "tariff_expires_at": NOW - timedelta(days=3)},
                    {"id": 3, "first_name": "Never", "tariff": None, "created_at": NOW,
                     "tariff_expires_at": None},
                ],
            )  # fmt: skip
            # users.tariff etc. exist in 0001; orders.days does not yet
            await conn.execute(
                text(
                    "INSERT INTO orders (id, merchant_trans_id, user_id, tariff, amount, status,"
                    " created_at) VALUES (1, '1_PRO_1', 1, 'PRO', 3900000, 'paid', :t),"
                    " (2, '3_PLUS_2', 3, 'PLUS', 1500000, 'pending', :t),"
                    " (3, '2_PLUS_3', 2, 'PLUS', 1000000, 'paid', :t)"
                ),
                {"t": NOW},
            )
            await conn.execute(
                text(
                    "INSERT INTO payments (provider, provider_id, order_id, amount, state,"
                    " create_time, perform_time, granted_days) VALUES"
                    " ('click', '11', 1, 3900000, 'paid', 1, 2, 30),"
                    " ('payme', 'p3', 3, 1000000, 'paid', 1, 2, 20)"
                )
            )
        before_ms = time.time_ns() // 1_000_000
        await db.migrate()
        after_ms = time.time_ns() // 1_000_000

        async with db.read() as conn:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            assert version == head_revision()
            days = dict((await conn.execute(select(orders.c.id, orders.c.days))).all())
            assert days == {1: 30, 2: 30, 3: 20}  # granted_days, else the configured 30
            rows = (await conn.execute(select(periods))).all()
            assert len(rows) == 1  # only the active plan; expired and none have nothing
            opening = rows[0]
            assert (opening.user_id, opening.payment_id, opening.tariff) == (1, None, "PRO")
            end = int((NOW + timedelta(days=12)).timestamp() * 1000)
            assert before_ms <= opening.credited_at <= after_ms
            assert opening.credited_at + opening.duration_ms == end
            timeline = await ledger.user_timeline(conn, 1)
            assert [(s.tariff, s.end) for s in timeline.segments] == [("PRO", end)]
            assert await conn.scalar(select(payments.c.granted_days).where(payments.c.id == 1))

        # The ledger takes over from the opening period: PLUS bought now waits after PRO.
        async with db.transaction() as conn:
            timeline = await ledger.add_period(conn, 1, None, "PLUS", 30 * ledger.DAY_MS, after_ms)
            cached = (await conn.execute(select(users).where(users.c.id == 1))).one()
        assert [(s.tariff, s.end) for s in timeline.ahead(after_ms)] == [
            ("PRO", end),
            ("PLUS", end + 30 * ledger.DAY_MS),
        ]
        assert cached.tariff == "PLUS"
        assert int(cached.tariff_expires_at.timestamp() * 1000) == end + 30 * ledger.DAY_MS
    finally:
        await db.close()


async def test_refund_of_a_payment_made_before_the_ledger(database_url: str) -> None:
    """A pre-ledger payment has no period: its refund takes what it granted out of the
    opening period's unused time (30 of the 40 days left; 10 remain)."""
    from db.billing import refund_payment
    from db.orders import get_order
    from db.payments import get_payment

    db = Database.from_url(database_url)
    try:
        await _to(db, "0001")
        async with db.transaction() as conn:
            await conn.execute(
                insert(users).values(
                    id=1, first_name="A", tariff="PRO", created_at=NOW,
                    tariff_expires_at=NOW + timedelta(days=40),
                )
            )  # fmt: skip
            await conn.execute(
                text(
                    "INSERT INTO orders (id, merchant_trans_id, user_id, tariff, amount, status,"
                    " created_at) VALUES (1, '1_PRO_1', 1, 'PRO', 3900000, 'paid', :t)"
                ),
                {"t": NOW},
            )
            await conn.execute(
                text(
                    "INSERT INTO payments (id, provider, provider_id, order_id, amount, state,"
                    " create_time, perform_time, granted_days) VALUES"
                    " (1, 'click', '11', 1, 3900000, 'paid', 1, 2, 30)"
                )
            )
        await db.migrate()
        now_ms = time.time_ns() // 1_000_000
        async with db.transaction() as conn:
            order = await get_order(conn, "1_PRO_1", lock=True)
            payment = await get_payment(conn, 1)
            assert order is not None and payment is not None
            refund = await refund_payment(conn, payment, order, now_ms, None)
        assert refund.removed_ms == 30 * ledger.DAY_MS
        end = int((NOW + timedelta(days=40)).timestamp() * 1000)
        assert [(s.tariff, s.end) for s in refund.ahead] == [("PRO", end - 30 * ledger.DAY_MS)]
    finally:
        await db.close()
