"""The subscription lifecycle's notices: "ends in N days" reminders and "has expired".

Each is queued once per subscription period. A period is identified by its expiry
moment, which goes into the notice's dedupe key: a renewal (or a refund) moves the
expiry, so the new period gets its own reminders, while re-running a scan for the same
period (another instance, a retried run, a restart) queues nothing new.

The expiry read here is the cache db/ledger.py keeps: the end of the last period. A
plan that ended by a refund has no tariff there, so it gets no "expired" message.

A scan covers the moments that passed since the previous completed scan (`since`), so
its cost follows the subscriptions due now, not every subscription ever sold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import outbox
from db.clock import to_ms
from db.schema import users


def _payload(tariff: str, expires_at: datetime, **extra: int) -> dict[str, object]:
    return {"tariff": tariff, "expires_at": expires_at.isoformat(), **extra}


async def _subscriptions(
    conn: AsyncConnection, after: datetime, until: datetime
) -> list[tuple[int, str, datetime]]:
    """(user, tariff, expiry) of reachable users whose expiry is in `(after, until]`."""
    rows = await conn.execute(
        select(users.c.id, users.c.tariff, users.c.tariff_expires_at)
        .where(
            users.c.tariff.is_not(None),
            users.c.reachable.is_(True),
            users.c.tariff_expires_at > after,
            users.c.tariff_expires_at <= until,
        )
        .order_by(users.c.tariff_expires_at)
    )
    return [(row.id, row.tariff, row.tariff_expires_at) for row in rows]


async def queue_expiry_notices(conn: AsyncConnection, since: datetime, now: datetime) -> int:
    """One "your plan has expired" notice per period that ended in `(since, now]`."""
    queued = 0
    for user_id, tariff, expires_at in await _subscriptions(conn, since, now):
        queued += await outbox.enqueue(
            conn,
            user_id,
            outbox.SUBSCRIPTION_EXPIRED,
            _payload(tariff, expires_at),
            now,
            dedupe_key=f"expired:{user_id}:{to_ms(expires_at)}",
        )
    return queued


async def queue_reminders(
    conn: AsyncConnection, since: datetime, now: datetime, reminder_days: Sequence[int]
) -> int:
    """Reminders whose moment (expiry minus N days) passed in `(since, now]`.

    When a pause spans two reminder moments (the scheduler was down), only the later,
    more accurate one is sent: a reminder N days out is skipped once the next one is due.
    """
    queued = 0
    marks = sorted(set(reminder_days), reverse=True)
    for days, next_days in zip(marks, [*marks[1:], 0], strict=True):
        lead, next_lead = timedelta(days=days), timedelta(days=next_days)
        after = max(since + lead, now + next_lead)
        for user_id, tariff, expires_at in await _subscriptions(conn, after, now + lead):
            queued += await outbox.enqueue(
                conn,
                user_id,
                outbox.SUBSCRIPTION_REMINDER,
                _payload(tariff, expires_at, days=days),
                now,
                dedupe_key=f"reminder:{days}:{user_id}:{to_ms(expires_at)}",
            )
    return queued
