"""Migration 0013_search_speed on a database that already holds payments: the per-day
sums, the orders paid twice and the names' trigram index start from the rows there,
and a downgrade then an upgrade come back to the same figures."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from bot.admin.search import parse_query
from db import admin_queries
from db.admin_queries import Totals
from db.database import MIGRATIONS_DIR, Database
from db.schema import orders, orders_paid_twice, payments, users

NOW = datetime(2026, 11, 10, 8, tzinfo=UTC)
DAY_MS = 86_400_000


def _run(connection: Connection, action: str, target: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    getattr(command, action)(config, target)


async def _migrate(db: Database, action: str, target: str) -> None:
    async with db.engine.connect() as connection, connection.begin():
        await connection.run_sync(_run, action, target)


async def _seed(db: Database) -> None:
    """Thirty payments over ten days, two of them paying order 1 twice (0 and 2)."""
    created = int(NOW.timestamp() * 1000)
    async with db.transaction() as conn:
        await conn.execute(
            insert(users),
            [{"id": 1, "first_name": "Алиса", "created_at": NOW},
             {"id": 2, "first_name": "Bobur", "created_at": NOW}],
        )  # fmt: skip
        await conn.execute(
            insert(orders),
            [{"id": n, "merchant_trans_id": f"{1 + n % 2}_PLUS_{n}", "user_id": 1 + n % 2,
              "tariff": ("PLUS", "PRO")[n % 3 == 0], "amount": 1_500_000, "status": "paid",
              "created_at": NOW}
             for n in range(1, 30)],
        )  # fmt: skip
        await conn.execute(
            insert(payments),
            [{"id": n, "provider": ("click", "payme")[n % 2], "provider_id": str(n),
              "order_id": n if n not in (0, 2) else 1, "amount": 1_500_000 + 100 * (n % 4),
              "state": ("paid", "refunded", "paid", "cancelled", "pending")[n % 5],
              "test": n % 9 == 0, "create_time": created - n * DAY_MS // 3}
             for n in range(30)],
        )  # fmt: skip


async def _figures(db: Database) -> list[Totals]:
    async with db.read() as conn:
        found = []
        for query in ("", "paid", "click refunded", "pro", "2026-11-07..2026-11-09", "test"):
            filters = parse_query(query, ("click", "payme"), NOW.date())
            lines = await admin_queries.search(conn, filters, 1000)
            counted = [line for line in lines if filters.test or not line.test]
            direct = Totals(
                len(counted),
                sum(line.amount for line in counted if line.state == "paid"),
                sum(line.amount for line in counted if line.state == "refunded"),
                0 if filters.test else sum(line.test for line in lines),
            )
            assert await admin_queries.totals(conn, filters) == direct, query
            found.append(direct)
        assert set((await conn.execute(select(orders_paid_twice.c.order_id))).scalars()) == {1}
        named = parse_query("ЛИС", ("click", "payme"), NOW.date())
        assert {line.user_id for line in await admin_queries.search(conn, named, 100)} == {1}
        return found


async def test_the_sums_start_from_the_payments_already_there(database_url: str) -> None:
    db = Database.from_url(database_url)
    try:
        await _migrate(db, "upgrade", "0008")
        await _seed(db)
        await _migrate(db, "upgrade", "head")
        before = await _figures(db)
        assert before[0].count > 0 and before[1].paid > 0
        await _migrate(db, "downgrade", "0008")
        await _migrate(db, "upgrade", "head")
        assert await _figures(db) == before
    finally:
        await db.close()
