"""The engine's cheap wins, checked on both databases.

The notifier claims pending notices inside the single writer, so a claim that walks the
history of sent notices holds up every payment behind it. These tests read the plan the
database makes for the very statement `outbox.claim_due` sends, on a database holding a
history of sent notices, as the bench's `--rows` stores it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.callbacks import seed_history
from db import outbox
from db.clock import system_clock, to_datetime
from db.database import Database

HISTORY = 20_000  # sent notices: enough for either planner to prefer the index
PENDING_INDEX = "ix_notifications_pending"


async def _claim_statement(database: Database) -> tuple[str, Any]:
    """The SQL and parameters of the claim's first statement (the pending query)."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(database.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with database.transaction() as conn:
            claimed = await outbox.claim_due(
                conn, to_datetime(system_clock()), 10, timedelta(seconds=60)
            )
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", capture)
    assert claimed == []  # the history is all sent
    (query,) = [(sql, params) for sql, params in sent if "FROM notifications" in sql][:1]
    return query


def _sql_literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


async def _plan(conn: AsyncConnection, sql: str, parameters: Any) -> str:
    if conn.dialect.name == "sqlite":
        rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters)
        return "\n".join(str(row[-1]) for row in rows)
    # A generic plan is what a prepared statement (asyncpg's cache) may run from its
    # sixth execution on: the index must be usable without the parameters' values.
    await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    await conn.exec_driver_sql("PREPARE claim AS " + sql)
    values = ", ".join(map(_sql_literal, parameters))  # EXECUTE takes no bound values
    rows = await conn.exec_driver_sql(f"EXPLAIN EXECUTE claim({values})")
    return "\n".join(str(row[0]) for row in rows)


async def test_the_pending_query_uses_the_partial_index(database_url: str) -> None:
    database = await Database.connect(database_url)
    try:
        await seed_history(database_url, HISTORY)
        sql, parameters = await _claim_statement(database)
        async with database.read() as conn:
            plan = await _plan(conn, sql, parameters)
    finally:
        await database.close()
    outer = plan.splitlines()[0] if database.is_sqlite else plan
    assert PENDING_INDEX in outer, plan
    # A walk of the table itself: SQLite's "SCAN notifications" without an index.
    assert "SCAN notifications\n" not in plan + "\n", plan
    assert "Seq Scan" not in plan, plan
