"""The money path: crediting and refunding a payment, shared by Click and Payme.

Callers hold one transaction that has already locked the order row (`get_order(...,
lock=True)`); everything here happens inside it, so the payment, the order, the user's
tariff and the outbox notice change together or not at all.

Tariff rule when a payment arrives:
- no active tariff: the tariff starts now for its period;
- the same tariff is active: the period is added to the current expiry;
- another tariff is active: its unused time is converted at the price ratio
  (unused time x old price / new price) and the new tariff runs for that plus its period.
A refund moves the expiry back by exactly the days that payment granted; if that is not
after now, the paid tariff ends now.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import outbox
from db.admin_alerts import PAYMENT_PAID, PAYMENT_REFUNDED, payment_notice
from db.clock import to_datetime
from db.orders import Order, set_order_status
from db.payments import Payment, update_payment
from db.schema import payments
from db.tariffs import Tariff
from db.users import User, get_user, set_tariff


def extended_tariff(
    user: User, tariff: Tariff, tariffs: Mapping[str, Tariff], now: datetime
) -> datetime:
    """The new expiry when `tariff` is bought by `user` at `now` (rules in the module doc)."""
    period = timedelta(days=tariff.days)
    current = user.active_tariff(now)
    if current is None or user.tariff_expires_at is None:
        return now + period
    if current == tariff.code:
        return user.tariff_expires_at + period
    old = tariffs.get(current)
    unused_ms = int((user.tariff_expires_at - now).total_seconds() * 1000)
    converted = unused_ms * old.price // tariff.price if old else 0
    return now + timedelta(milliseconds=converted) + period


async def credit_payment(
    conn: AsyncConnection,
    payment: Payment,
    order: Order,
    tariffs: Mapping[str, Tariff],
    now_ms: int,
    admin_ids: Collection[int] = (),
) -> datetime:
    """Mark `payment` paid and give its user the order's tariff; returns the new expiry."""
    now = to_datetime(now_ms)
    tariff = tariffs[order.tariff]
    user = await get_user(conn, order.user_id, lock=True)
    assert user is not None, "orders reference users"
    expires_at = extended_tariff(user, tariff, tariffs, now)
    await update_payment(
        conn, payment.id, state="paid", perform_time=now_ms, granted_days=tariff.days
    )
    if order.status != "paid":
        await set_order_status(conn, order.id, "paid", paid_at=now)
    await set_tariff(conn, user.id, tariff.code, expires_at)
    await outbox.enqueue(
        conn,
        user.id,
        outbox.PAYMENT_RECEIVED,
        {"tariff": tariff.code, "amount": payment.amount, "expires_at": expires_at.isoformat()},
        now,
        dedupe_key=f"{outbox.PAYMENT_RECEIVED}:{payment.id}",
    )
    await payment_notice(conn, admin_ids, PAYMENT_PAID, payment.id, now_ms)
    return expires_at


async def refund_payment(
    conn: AsyncConnection,
    payment: Payment,
    order: Order,
    now_ms: int,
    reason: int | None,
    admin_ids: Collection[int] = (),
) -> None:
    """Undo a paid payment: take back its days, close the order, tell the user."""
    now = to_datetime(now_ms)
    await update_payment(
        conn, payment.id, state="refunded", cancel_time=now_ms, cancel_reason=reason
    )
    user = await get_user(conn, order.user_id, lock=True)
    assert user is not None, "orders reference users"
    expires_at = user.tariff_expires_at
    if user.tariff == order.tariff and expires_at is not None:
        expires_at = max(
            min(expires_at, now), expires_at - timedelta(days=payment.granted_days or 0)
        )
        await set_tariff(conn, user.id, user.tariff, expires_at)
    still_paid = await conn.scalar(
        select(func.count())
        .select_from(payments)
        .where(payments.c.order_id == order.id, payments.c.state == "paid")
    )
    if not still_paid:
        await set_order_status(conn, order.id, "refunded")
    await outbox.enqueue(
        conn,
        user.id,
        outbox.PAYMENT_REFUNDED,
        {
            "tariff": order.tariff,
            "amount": payment.amount,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        now,
        dedupe_key=f"{outbox.PAYMENT_REFUNDED}:{payment.id}",
    )
    await payment_notice(conn, admin_ids, PAYMENT_REFUNDED, payment.id, now_ms)
