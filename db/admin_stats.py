"""Statistics that need the subscription ledger, not just the payments (/stats).

Kept apart from db/admin_queries.py, whose queries read payments and orders only.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import ledger
from db.clock import to_datetime
from db.schema import periods, users


async def active_subscribers(conn: AsyncConnection, at_ms: int) -> dict[str, int]:
    """Buyers per tariff running at `at_ms`, now or in the past, replayed from the ledger
    (db/ledger.py), so that both ends of a comparison are counted the same way.

    Only a buyer whose plan ends after `at_ms` (the indexed `users` cache) can have been
    running then, and only periods credited by then shape that moment: the replay reads
    those, one buyer at a time, never the whole history.
    """
    running = select(users.c.id).where(users.c.tariff_expires_at > to_datetime(at_ms))
    query = (
        select(periods)
        .where(periods.c.user_id.in_(running), periods.c.credited_at <= at_ms)
        .order_by(periods.c.user_id, periods.c.id)
    )
    counts: dict[str, int] = {}
    rows = await conn.stream(query.execution_options(yield_per=1000))
    buyer: list[ledger.Period] = []

    def count_buyer() -> None:
        tariff = ledger.compute(buyer).active(at_ms)
        if tariff is not None:
            counts[tariff] = counts.get(tariff, 0) + 1

    async for row in rows:
        if buyer and buyer[-1].user_id != row.user_id:
            count_buyer()
            buyer = []
        buyer.append(
            ledger.Period(
                row.id,
                row.user_id,
                row.payment_id,
                row.tariff,
                row.duration_ms,
                row.credited_at,
                row.refunded_at,
            )
        )
    if buyer:
        count_buyer()
    return counts
