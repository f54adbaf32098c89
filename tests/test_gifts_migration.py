"""Migration 0009_gifts on a database with ledger rows: opening periods (no payment)
become kind 'opening', paid ones 'payment'; the refund of a payment made before the
ledger still takes from the opening period and never from a gift; and it goes down."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from db import ledger
from db.database import MIGRATIONS_DIR, Database
from db.schema import periods

NOW = datetime(2026, 11, 10, 7, 0, tzinfo=UTC)
T0 = int(NOW.timestamp() * 1000)
DAY = ledger.DAY_MS


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def _to(db: Database, target: str, down: bool = False) -> None:
    step = command.downgrade if down else command.upgrade
    async with db.engine.connect() as connection, connection.begin():
        await connection.run_sync(lambda sync: step(_config(sync), target))


async def test_existing_periods_get_their_kind_and_the_opening_stays_the_opening(
    database_url: str,
) -> None:
    db = Database.from_url(database_url)
    try:
        await _to(db, "0008")
        async with db.transaction() as conn:
            await conn.execute(
                text("INSERT INTO users (id, first_name, created_at) VALUES (7, 'A', :t)"),
                {"t": NOW},
            )
            await conn.execute(
                text(
                    "INSERT INTO orders (id, merchant_trans_id, user_id, tariff, amount, days,"
                    " status, created_at) VALUES (1, '7_PLUS_1', 7, 'PLUS', 1500000, 30,"
                    " 'paid', :t)"
                ),
                {"t": NOW},
            )
            await conn.execute(
                text(
                    "INSERT INTO payments (id, provider, provider_id, order_id, amount, state,"
                    " create_time, perform_time, granted_days) VALUES"
                    " (1, 'click', '11', 1, 1500000, 'paid', 1, 2, 30),"
                    " (2, 'click', '12', 1, 1500000, 'paid', 1, 2, 30)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO periods (user_id, payment_id, tariff, duration_ms, credited_at)"
                    " VALUES (7, NULL, 'PLUS', :opening, :t0), (7, 1, 'PLUS', :month, :t0)"
                ),
                {"opening": 20 * DAY, "month": 30 * DAY, "t0": T0},
            )
        await db.migrate()
        async with db.transaction() as conn:
            kinds = (await conn.execute(select(periods.c.payment_id, periods.c.kind))).all()
            assert sorted(kinds, key=str) == sorted([(None, "opening"), (1, "payment")], key=str)
            # A gift credited later has no payment either: the old payment 2 (no period)
            # is refunded from the opening period, never from the gift.
            await ledger.add_gift(conn, 7, "PLUS", 5 * DAY, T0)
            removal = await ledger.refund_period(conn, 7, 2, T0, fallback_ms=30 * DAY)
            rows = {
                row.kind: row.duration_ms for row in (await conn.execute(select(periods))).all()
            }
        assert removal.removed_ms == 20 * DAY
        assert rows == {"opening": 0, "payment": 30 * DAY, "gift": 5 * DAY}

        await _to(db, "0008", down=True)
        async with db.engine.connect() as connection:
            names = await connection.run_sync(
                lambda sync: (
                    {c["name"] for c in inspect(sync).get_columns("periods")},
                    inspect(sync).has_table("gifts"),
                )
            )
        assert "kind" not in names[0] and names[1] is False
    finally:
        await db.close()
