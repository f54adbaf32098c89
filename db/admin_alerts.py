"""Alerts about money at risk, queued to every admin through the outbox.

They ride the same outbox as the buyers' messages, so they keep its guarantees: queued in
the transaction that saw the problem (never lost, never sent for a rolled-back change),
delivered at the bot's rate, once per admin (a dedupe key per alert and admin).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db import outbox
from db.schema import users

# What an alert is about; the notifier renders each in the admin's language.
CLICK_CANCEL_ON_PAID = "click_cancel_on_paid"  # Click A1: Click claims a failure on credited money
DOUBLE_PAYMENT = "double_payment"  # Click A5 / Payme A4: one order paid twice


async def alert_admins(
    conn: AsyncConnection,
    admin_ids: Collection[int],
    alert: str,
    details: Mapping[str, Any],
    now: datetime,
    key: str,
) -> None:
    """Queue `alert` for each admin; `key` names the event, so a repeat queues nothing.

    An admin who never wrote to the bot has no `users` row yet: one is created (the
    outbox refers to users), and Telegram delivers once they have started the bot.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for admin_id in sorted(admin_ids):
        await conn.execute(
            dialect.insert(users)
            .values(id=admin_id, created_at=now)
            .on_conflict_do_nothing(index_elements=[users.c.id])
        )
        await outbox.enqueue(
            conn,
            admin_id,
            outbox.ADMIN_ALERT,
            {"alert": alert, **details},
            now,
            dedupe_key=f"{outbox.ADMIN_ALERT}:{alert}:{key}:{admin_id}",
        )
