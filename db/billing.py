"""The money path: crediting and refunding a payment, shared by Click and Payme.

Callers hold one transaction that has already locked the order row (`get_order(...,
lock=True)`); everything here happens inside it, so the payment, the order, the ledger,
the user's cached plan and the outbox notices change together or not at all.

What a payment grants and what a refund takes back is decided by db/ledger.py alone;
this module records the payment's side and tells the people concerned, with the
resulting timeline, so what they read is what the ledger holds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db import ledger, outbox
from db.admin_alerts import (
    DOUBLE_PAYMENT,
    PAYMENT_PAID,
    PAYMENT_REFUNDED,
    alert_admins,
    payment_notice,
)
from db.clock import to_datetime
from db.orders import Order, order_status_update, receipt_fields, set_order_status
from db.payments import Payment, payment_from_row, update_payment
from db.prepared import Prepared, row_update, run_together
from db.schema import payments
from db.states import OrderStatus, PaymentState
from db.tariffs import Tariff
from db.users import get_user


def order_days(order: Order, tariffs: Mapping[str, Tariff]) -> int:
    """The days the order recorded; the configured days only for an order written
    without them (fixtures and rows from before migration 0005 that it could not fill)."""
    return order.days if order.days is not None else tariffs[order.tariff].days


def _payload(
    payment: Payment, tariff: str, timeline: ledger.Timeline, now_ms: int
) -> dict[str, object]:
    """What a buyer's notice needs; `expires_at` stays for notices rendered by an older
    version during a deploy."""
    end = timeline.end
    return {
        "tariff": tariff,
        "amount": payment.amount,
        "expires_at": to_datetime(end).isoformat() if end is not None else None,
        "timeline": ledger.describe(timeline.ahead(now_ms)),
        "test": payment.test,
    }


async def credit_payment(
    conn: AsyncConnection,
    payment: Payment,
    order: Order,
    tariffs: Mapping[str, Tariff],
    now_ms: int,
    admin_ids: Collection[int] = (),
) -> ledger.Timeline:
    """Mark `payment` paid and add its order's period to the user's ledger.

    A second payment for an order paid already (Click A5, Payme A4) is credited as one
    more period, and every admin is told at once, naming both payments."""
    now = to_datetime(now_ms)
    user = await get_user(conn, order.user_id, lock=True)
    assert user is not None, "orders reference users"
    days = order_days(order, tariffs)
    earlier = await _other_paid(conn, order, payment)
    credit = await ledger.plan_period(
        conn, user.id, payment.id, order.tariff, days * ledger.DAY_MS, now_ms
    )
    timeline = credit.timeline
    settled = row_update(
        payments, payment.id, state=PaymentState.PAID, perform_time=now_ms, granted_days=days
    )
    order_paid = (
        []
        if order.status == OrderStatus.PAID
        else [order_status_update(order.id, OrderStatus.PAID, now)]
    )
    notice = outbox.enqueue_call(
        conn,
        user.id,
        outbox.PAYMENT_RECEIVED,
        {
            **_payload(payment, order.tariff, timeline, now_ms),
            **receipt_fields(order, payment, now_ms),
        },
        now,
        dedupe_key=f"{outbox.PAYMENT_RECEIVED}:{payment.id}",
    )
    # Every read is done: the writes go together, one round trip on PostgreSQL.
    await run_together(conn, settled, *order_paid, *credit.writes, notice)
    if earlier:
        await alert_admins(
            conn,
            admin_ids,
            DOUBLE_PAYMENT,
            {
                "order": order.merchant_trans_id,
                "amount": payment.amount,
                "payments": [
                    {
                        "id": paid.id,
                        "provider_title": paid.provider.capitalize(),
                        "provider_id": paid.provider_id,
                        "test": paid.test,
                    }
                    for paid in [*earlier, payment]
                ],
            },
            now,
            key=f"{order.id}:{payment.id}",
        )
    await payment_notice(conn, admin_ids, PAYMENT_PAID, payment.id, now_ms)
    return timeline


_OTHER_PAID = Prepared(
    select(payments)
    .where(
        payments.c.order_id == bindparam("order_id"),
        payments.c.id != bindparam("payment_id"),
        payments.c.state == PaymentState.PAID,
    )
    .order_by(payments.c.id)
)


async def _other_paid(conn: AsyncConnection, order: Order, payment: Payment) -> list[Payment]:
    rows = await _OTHER_PAID.all(conn, order_id=order.id, payment_id=payment.id)
    return [payment_from_row(row) for row in rows]


@dataclass(frozen=True)
class Refund:
    """What a refund changed, for messages that must be true: the unused time it removed
    (0 when the period was used up already) and the user's timeline after it."""

    removed_ms: int
    timeline: ledger.Timeline
    now_ms: int

    @property
    def ahead(self) -> tuple[ledger.Segment, ...]:
        return self.timeline.ahead(self.now_ms)


async def refund_payment(
    conn: AsyncConnection,
    payment: Payment,
    order: Order,
    now_ms: int,
    reason: int | None,
    admin_ids: Collection[int] = (),
) -> Refund:
    """Undo a paid payment: remove its period's unused time, close the order when no
    payment of it stays paid, tell the user what remains."""
    now = to_datetime(now_ms)
    await update_payment(
        conn, payment.id, state=PaymentState.REFUNDED, cancel_time=now_ms, cancel_reason=reason
    )
    user = await get_user(conn, order.user_id, lock=True)
    assert user is not None, "orders reference users"
    legacy_ms = (payment.granted_days or 0) * ledger.DAY_MS  # paid before the ledger existed
    removal = await ledger.refund_period(conn, user.id, payment.id, now_ms, legacy_ms)
    still_paid = await conn.scalar(
        select(func.count())
        .select_from(payments)
        .where(payments.c.order_id == order.id, payments.c.state == PaymentState.PAID)
    )
    if not still_paid:
        await set_order_status(conn, order.id, OrderStatus.REFUNDED)
    payload = _payload(payment, order.tariff, removal.after, now_ms)
    payload["removed_ms"] = removal.removed_ms
    payload["order_code"] = order.code  # the number the buyer's receipt gave
    await outbox.enqueue(
        conn,
        user.id,
        outbox.PAYMENT_REFUNDED,
        payload,
        now,
        dedupe_key=f"{outbox.PAYMENT_REFUNDED}:{payment.id}",
    )
    await payment_notice(conn, admin_ids, PAYMENT_REFUNDED, payment.id, now_ms)
    return Refund(removal.removed_ms, removal.after, now_ms)
