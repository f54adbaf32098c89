"""Alerts about money at risk, queued to every admin through the outbox.

They ride the same outbox as the buyers' messages, so they keep its guarantees: queued in
the transaction that saw the problem (never lost, never sent for a rolled-back change),
delivered at the bot's rate, once per admin (a dedupe key per alert and admin).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import outbox
from db.clock import to_datetime
from db.prepared import Prepared
from db.schema import admin_settings, orders, payments, users

# What an alert is about; the notifier renders each in the admin's language.
CLICK_CANCEL_ON_PAID = "click_cancel_on_paid"  # Click A1: Click claims a failure on credited money
DOUBLE_PAYMENT = "double_payment"  # Click A5 / Payme A4: one order paid twice


_ADMIN_USER = Prepared(
    lambda dialect: (
        dialect.insert(users)
        .values(
            id=bindparam("admin_id"), created_at=bindparam("now", type_=users.c.created_at.type)
        )
        .on_conflict_do_nothing(index_elements=[users.c.id])
    )
)


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
    for admin_id in sorted(admin_ids):
        await _ADMIN_USER.run(conn, admin_id=admin_id, now=now)
        await outbox.enqueue(
            conn,
            admin_id,
            outbox.ADMIN_ALERT,
            {"alert": alert, **details},
            now,
            dedupe_key=f"{outbox.ADMIN_ALERT}:{alert}:{key}:{admin_id}",
        )


# Money as it moves: a notice to every admin for each payment and each refund, or one
# digest a day for the admins who chose it (db/digest.py).
PAYMENT_PAID = "payment_paid"
PAYMENT_REFUNDED = "payment_refunded"
PAYMENT_DIGEST = "payment_digest"


# Admins who chose the daily digest (the table holds a row per admin who changed a
# setting: a handful of rows).
_ON_DIGEST = Prepared(
    select(admin_settings.c.admin_id).where(admin_settings.c.digest_hour.is_not(None))
)
_NOTICE_DETAILS = Prepared(
    select(
        payments.c.provider,
        payments.c.amount,
        payments.c.test,
        orders.c.merchant_trans_id,
        orders.c.tariff,
        users.c.id,
        users.c.first_name,
        users.c.username,
    )
    .join(orders, orders.c.id == payments.c.order_id)
    .join(users, users.c.id == orders.c.user_id)
    .where(payments.c.id == bindparam("payment_id"))
)


async def payment_notice(
    conn: AsyncConnection,
    admin_ids: Collection[int],
    event: str,
    payment_id: int,
    now_ms: int,
) -> None:
    """Tell every admin that `payment_id` was paid or refunded (`event`), at once.

    Called by the ledger (db/billing.py) inside the transaction that moved the money, so
    the notice is queued exactly when the change commits; the payment's details are read
    here, so the call is one line whatever the ledger holds in its variables. The dedupe
    key (event, payment, admin) makes a repeated call queue nothing. Admins who chose a
    daily digest are skipped: their digest reads the payments from the table.
    """
    if not admin_ids:
        return
    on_digest = {row["admin_id"] for row in await _ON_DIGEST.all(conn)}
    at_once = set(admin_ids) - on_digest
    if not at_once:
        return
    row = await _NOTICE_DETAILS.one(conn, payment_id=payment_id)
    details = {
        "payment_id": payment_id,
        "provider": row["provider"],
        "amount": int(row["amount"]),
        "test": bool(row["test"]),
        "order": row["merchant_trans_id"],
        "tariff": row["tariff"],
        "buyer_id": int(row["id"]),
        "buyer_name": row["first_name"],
        "buyer_username": row["username"],
    }
    now = to_datetime(now_ms)
    await alert_admins(conn, at_once, event, details, now, key=str(payment_id))
