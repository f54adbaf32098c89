"""Payme's decision tables: one locked transaction per writing Merchant API call.

The decision tables are docs/providers/payme.md §5.1 and §5.2. Every writing method first
locks the order row (`BEGIN IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on PostgreSQL)
and re-reads the transaction under that lock, so repeated or concurrent calls with one
Payme id see each other's effects and give one row and one effect. Crediting and
refunding go through `db.billing`, the path Click shares.

Sandbox and production never mix (A1): every call is made with one key, `test` says
which, and a transaction of the other kind is as absent as an unknown id (-31003), is
left out of GetStatement and does not make an order busy (-31008).

Results are `Outcome`s plus the stored row, never wire codes: turning them into
JSON-RPC errors and results is the protocol module's job (`methods.py`). Some refusals
still change state (a transaction past its 12 hours is cancelled with reason 4, and
§5.1 step 5 is committed even if the request then fails), so those are returned, not
raised, and the transaction commits.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, ColumnElement, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.billing import credit_payment, refund_payment
from db.database import Database
from db.orders import Order, get_order, get_order_by_id, order_from_row
from db.payments import (
    Payment,
    find_payment,
    glance_payment,
    insert_once,
    payment_from_row,
    update_payment,
)
from db.prepared import Prepared
from db.schema import orders, payments, users
from db.states import OrderStatus, PaymentState
from db.tariffs import Tariff
from db.users import get_user

NAME = "payme"  # payments.provider of Payme's rows
TIMEOUT_MS = 43_200_000  # 12 hours, counted from Payme's `time` (D10)

# Payme's states of a transaction, from our payment states.
STATES: dict[str, int] = {
    PaymentState.PENDING: 1,
    PaymentState.PAID: 2,
    PaymentState.CANCELLED: -1,
    PaymentState.REFUNDED: -2,
}

REASON_EXECUTION_ERROR = 3
REASON_TIMEOUT = 4


class Outcome(enum.Enum):
    OK = "ok"
    ORDER_NOT_FOUND = "order_not_found"  # -31050
    WRONG_AMOUNT = "wrong_amount"  # -31001
    ORDER_PAID = "order_paid"  # -31051
    ORDER_CLOSED = "order_closed"  # -31052
    ORDER_BUSY = "order_busy"  # -31008 (a)
    EXPIRED = "expired"  # -31008 (b)
    CONFLICT = "conflict"  # -31008 (c)
    NOT_FOUND = "not_found"  # -31003


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    payment: Payment | None = None
    order: Order | None = None
    language: str | None = None  # the order user's, for the fiscal receipt title


def payme_state(payment: Payment) -> int:
    return STATES[payment.state]


async def check_perform(
    db: Database, mti: str, amount: int, now_ms: int, test: bool = False
) -> Result:
    """CheckPerformTransaction: may this order be paid with this amount now? (§5.1)

    Answered from one statement on a snapshot (`Database.glance`), without queueing for
    the writer: it writes nothing unless a reservation of the order has timed out (then
    it is cancelled first, under the order's lock). The rows it reads only move forward,
    so the snapshot's answer is the one the locked path would have given a moment
    earlier."""
    rows = await db.glance(_CHECK_PERFORM, mti=mti, test=test)
    order = order_from_row(rows[0], "orders_") if rows else None
    live = [payment_from_row(row, "payments_") for row in rows if row["payments_id"] is not None]
    refusal = _refusal(order, amount, now_ms, None)
    if refusal is not None:
        return refusal
    if not _expired(live, now_ms):
        if live:
            return Result(Outcome.ORDER_BUSY)
        return Result(Outcome.OK, order=order, language=rows[0]["users_language"])
    # A reservation has timed out: cancelling it is a write, decided under the lock.
    async with db.transaction() as conn:
        order = await get_order(conn, mti, lock=True)
        refusal = await _order_checks(conn, order, amount, now_ms, None, test)
        if refusal is not None:
            return refusal
        assert order is not None
        user = await get_user(conn, order.user_id)
        return Result(Outcome.OK, order=order, language=user.language if user else None)


def _is_live(order_id: Any) -> ColumnElement[bool]:
    """A live transaction of `order_id`: Payme's, in state 1, of the caller's kind
    (`test`, a bound parameter: A1). The one definition for both reads of them."""
    return and_(
        payments.c.order_id == order_id,
        payments.c.provider == NAME,
        payments.c.state == PaymentState.PENDING,
        payments.c.test == bindparam("test"),
    )


# CheckPerformTransaction's rows: the order, its user's language and its live
# transactions of the caller's kind (one row each, or one row with none).
_CHECK_PERFORM = Prepared(
    select(orders, users.c.language, payments)
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
    .select_from(
        orders.join(users, users.c.id == orders.c.user_id).outerjoin(
            payments, _is_live(orders.c.id)
        )
    )
    .where(orders.c.merchant_trans_id == bindparam("mti"))
    .order_by(payments.c.id)
)


async def create(
    db: Database, payme_id: str, payme_time: int, amount: int, mti: str, now_ms: int, test: bool
) -> Result:
    """CreateTransaction: a new state-1 transaction, or the stored one on a repeat."""
    async with db.transaction() as conn:
        existing = await find_payment(conn, NAME, payme_id)
        if existing is not None and existing.test != test:
            # The id is the other kind's (A1): never answered from, never changed.
            return Result(Outcome.CONFLICT)
        order = (
            await get_order_by_id(conn, existing.order_id, lock=True)
            if existing
            else await get_order(conn, mti, lock=True)
        )
        # Re-read under the order lock: a concurrent Create may have inserted it meanwhile.
        existing = await find_payment(conn, NAME, payme_id)
        if existing is not None and existing.test != test:
            return Result(Outcome.CONFLICT)
        if existing is not None:
            return await _repeated_create(conn, existing, amount, mti, now_ms)
        refusal = await _order_checks(conn, order, amount, now_ms, payme_time, test)
        if refusal is not None:
            return refusal
        assert order is not None
        inserted = await insert_once(
            conn,
            provider=NAME,
            provider_id=payme_id,
            order_id=order.id,
            amount=order.amount,
            state=PaymentState.PENDING,
            test=test,
            payme_time=payme_time,
            create_time=now_ms,
        )
        if inserted is None:
            # The same Payme id was created meanwhile for another order (a different
            # order lock): the stored transaction decides, as for any repeat.
            raced = await find_payment(conn, NAME, payme_id)
            assert raced is not None, "the unique constraint fired, so the row exists"
            if raced.test != test:
                return Result(Outcome.CONFLICT)
            return await _repeated_create(conn, raced, amount, mti, now_ms)
        return Result(Outcome.OK, inserted, order)


async def perform(
    db: Database,
    payme_id: str,
    tariffs: Mapping[str, Tariff],
    now_ms: int,
    test: bool = False,
    admin_ids: Collection[int] = (),
) -> Result:
    """PerformTransaction: credit the order once; repeats return the stored result."""
    async with db.transaction() as conn:
        found = await _locked_transaction(conn, payme_id, test)
        if found is None:
            return Result(Outcome.NOT_FOUND)
        payment, order = found
        if payment.state == PaymentState.PAID:
            return Result(Outcome.OK, payment, order)
        if payment.state != PaymentState.PENDING:
            return Result(Outcome.CONFLICT, payment, order)
        if now_ms - (payment.payme_time or 0) > TIMEOUT_MS:
            await _cancel(conn, payment, REASON_TIMEOUT, now_ms)
            return Result(Outcome.EXPIRED)
        if order.status != OrderStatus.PENDING:
            # D11: an order is paid once; close this attempt so no state 1 is left over.
            await _cancel(conn, payment, REASON_EXECUTION_ERROR, now_ms)
            return Result(Outcome.CONFLICT)
        await credit_payment(conn, payment, order, tariffs, now_ms, admin_ids)
        return Result(Outcome.OK, await _reread(conn, payment), order)


async def cancel(
    db: Database,
    payme_id: str,
    reason: int,
    now_ms: int,
    test: bool = False,
    admin_ids: Collection[int] = (),
) -> Result:
    """CancelTransaction: before perform the order stays payable (D8); after perform it
    is a refund (D9). A cancelled transaction returns its stored result unchanged."""
    async with db.transaction() as conn:
        found = await _locked_transaction(conn, payme_id, test)
        if found is None:
            return Result(Outcome.NOT_FOUND)
        payment, order = found
        if payment.state == PaymentState.PENDING:
            await _cancel(conn, payment, reason, now_ms)
        elif payment.state == PaymentState.PAID:
            await refund_payment(conn, payment, order, now_ms, reason, admin_ids)
        return Result(Outcome.OK, await _reread(conn, payment), order)


async def check(db: Database, payme_id: str, test: bool = False) -> Result:
    """CheckTransaction: read only, even for an expired state 1 (§5.2), so it takes no
    write lock."""
    payment = await glance_payment(db, NAME, payme_id)
    if payment is None or payment.test != test:
        return Result(Outcome.NOT_FOUND)
    return Result(Outcome.OK, payment)


async def statement(
    db: Database, start: int, end: int, test: bool = False
) -> list[tuple[Payment, str]]:
    """GetStatement: every Payme transaction of the caller's kind (A1) with
    start <= time <= end, by time then id."""
    query = (
        select(payments, orders.c.merchant_trans_id)
        .join(orders, orders.c.id == payments.c.order_id)
        .where(
            and_(
                payments.c.provider == NAME,
                payments.c.test == test,
                payments.c.payme_time >= start,
                payments.c.payme_time <= end,
            )
        )
        .order_by(payments.c.payme_time, payments.c.id)
    )
    # A read snapshot: a long statement must not hold up Performs queued for the writer.
    async with db.read() as conn:
        rows = await conn.execute(query)
        return [(payment_from_row(row), row.merchant_trans_id) for row in rows]


async def set_fiscal_data(
    db: Database, payme_id: str, kind: str, fiscal_data: dict[str, Any], test: bool = False
) -> Result:
    """SetFiscalData: the receipt Payme made, kept per payment and type (a repeat replaces)."""
    async with db.transaction() as conn:
        # The order lock, as for every writer: a PERFORM and a CANCEL receipt arriving
        # together would otherwise both read the old JSON and one would be lost.
        found = await _locked_transaction(conn, payme_id, test)
        if found is None:
            return Result(Outcome.NOT_FOUND)
        payment, _order = found
        stored = dict(payment.fiscal_data or {})
        stored[kind] = fiscal_data
        await update_payment(conn, payment.id, fiscal_data=stored)
        return Result(Outcome.OK, payment)


async def _order_checks(
    conn: AsyncConnection,
    order: Order | None,
    amount: int,
    now_ms: int,
    payme_time: int | None,
    test: bool,
) -> Result | None:
    """§5.1 steps 1-6 on a locked order; None when it may be paid. Only a live
    transaction of the caller's kind makes the order busy (A1); one past its 12 hours
    is cancelled."""
    refusal = _refusal(order, amount, now_ms, payme_time)
    if refusal is not None:
        return refusal
    assert order is not None
    rows = await _LIVE_TRANSACTIONS.all(conn, order_id=order.id, test=test)
    live = [payment_from_row(row) for row in rows]
    expired = _expired(live, now_ms)
    for payment in expired:
        await _cancel(conn, payment, REASON_TIMEOUT, now_ms)
    return Result(Outcome.ORDER_BUSY) if len(expired) < len(live) else None


def _refusal(
    order: Order | None, amount: int, now_ms: int, payme_time: int | None
) -> Result | None:
    """§5.1 steps 1-5: what the order and the request alone refuse."""
    if order is None:
        return Result(Outcome.ORDER_NOT_FOUND)
    if amount != order.amount:
        return Result(Outcome.WRONG_AMOUNT)
    if order.status == OrderStatus.PAID:
        return Result(Outcome.ORDER_PAID)
    if order.status != OrderStatus.PENDING:
        return Result(Outcome.ORDER_CLOSED)
    if payme_time is not None and now_ms - payme_time > TIMEOUT_MS:
        return Result(Outcome.EXPIRED)
    return None


def _expired(live: list[Payment], now_ms: int) -> list[Payment]:
    """The live transactions past their 12 hours: they no longer hold the order."""
    return [payment for payment in live if now_ms - (payment.payme_time or 0) > TIMEOUT_MS]


_LIVE_TRANSACTIONS = Prepared(select(payments).where(_is_live(bindparam("order_id"))))


async def _repeated_create(
    conn: AsyncConnection, payment: Payment, amount: int, mti: str, now_ms: int
) -> Result:
    order = await get_order_by_id(conn, payment.order_id)
    if payment.amount != amount or order.merchant_trans_id != mti:
        return Result(Outcome.CONFLICT)
    if payment.state != PaymentState.PENDING:
        return Result(Outcome.CONFLICT)
    if now_ms - (payment.payme_time or 0) > TIMEOUT_MS:
        await _cancel(conn, payment, REASON_TIMEOUT, now_ms)
        return Result(Outcome.EXPIRED)
    return Result(Outcome.OK, payment, order)


async def _locked_transaction(
    conn: AsyncConnection, payme_id: str, test: bool
) -> tuple[Payment, Order] | None:
    """The transaction of the caller's kind (A1) and its order, locked; else None."""
    payment = await find_payment(conn, NAME, payme_id)
    if payment is None or payment.test != test:
        return None
    order = await get_order_by_id(conn, payment.order_id, lock=True)
    return await _reread(conn, payment), order


async def _reread(conn: AsyncConnection, payment: Payment) -> Payment:
    fresh = await find_payment(conn, NAME, payment.provider_id)
    assert fresh is not None
    return fresh


async def _cancel(conn: AsyncConnection, payment: Payment, reason: int, now_ms: int) -> None:
    """State 1 -> -1: only this attempt ends; the order stays payable (D8)."""
    await update_payment(
        conn, payment.id, state=PaymentState.CANCELLED, cancel_time=now_ms, cancel_reason=reason
    )
