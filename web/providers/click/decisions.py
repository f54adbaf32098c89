"""Click's decision tables: Prepare and Complete, each one locked transaction.

The check order is the reference's (docs/providers/click.md §7, steps 4 onwards). Every
operation that writes starts by locking the order row (`BEGIN IMMEDIATE` on SQLite, `SELECT … FOR
UPDATE` on PostgreSQL), so two callbacks for one order never interleave: N identical
Completes see the payment one after the other, and only the first finds it unpaid.
Crediting goes through `db.billing.credit_payment`, the path Payme shares.

Results are `Outcome`s, not Click's wire codes: turning them into `error` numbers and
notes is the protocol module's job (`protocol.py`).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from db.admin_alerts import CLICK_CANCEL_ON_PAID, alert_admins
from db.billing import credit_payment
from db.clock import to_datetime
from db.database import Database
from db.orders import Order, get_order, glance_order_and_attempt
from db.payments import Payment, find_payment, get_payment, insert_once, update_payment
from db.states import OrderStatus, PaymentState
from db.tariffs import Tariff

NAME = "click"  # payments.provider of Click's rows

# payments.id is an INTEGER: larger prepare ids cannot exist (and PostgreSQL would
# refuse to compare them with an int4 column).
MAX_PAYMENT_ID = 2**31 - 1
SIGN_TIME_LIMIT = 32  # the column's width; Click's `YYYY-MM-DD HH:mm:ss` is 19


class Outcome(enum.Enum):
    OK = "ok"
    WRONG_AMOUNT = "wrong_amount"
    ALREADY_PAID = "already_paid"
    NO_ORDER = "no_order"
    NO_PAYMENT = "no_payment"
    CANCELLED = "cancelled"
    FOREIGN_ATTEMPT = "foreign_attempt"  # a click_trans_id already used for another order
    CANCEL_ON_PAID = "cancel_on_paid"  # A1: error<0 on credited money; admins are told


@dataclass(frozen=True)
class Attempt:
    """What Click's callback says about one payment attempt, already validated.

    `amount` is in tiyin, or None when the received amount is not a whole number of
    tiyin (it then equals no order and no payment). `error` is Click's own code.
    """

    click_trans_id: int
    click_paydoc_id: int
    merchant_trans_id: str
    amount: int | None
    error: int
    error_note: str | None
    sign_time: str


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    payment_id: int | None = None


async def prepare(db: Database, attempt: Attempt, now_ms: int) -> Result:
    """Reserve a payment row for the attempt (steps 4-9); repeats get the same row.

    Most Prepares that write nothing (Click repeats one until it gets an answer, and
    refusals) are answered from one statement on a snapshot, without queueing for the
    writer: the rows they read only ever move forward (pending → paid or cancelled), so
    a snapshot's answer is the one the locked path would have given a moment earlier. A
    new payment row is decided again under the order's lock."""
    decision = _prepare_decision(*await _glance(db, attempt), attempt)
    if isinstance(decision, Result):
        return decision
    async with db.transaction() as conn:
        decision = _prepare_decision(*await _locked_reads(conn, attempt), attempt)
        if isinstance(decision, Result):
            return decision
        payment_id = await _insert_payment(conn, decision, attempt, now_ms)
        if payment_id is None:
            # The same click_trans_id was inserted meanwhile for another order (only
            # possible then: this order's row lock serializes everything else).
            raced = await find_payment(conn, NAME, str(attempt.click_trans_id))
            assert raced is not None, "the unique constraint fired, so the row exists"
            return _repeated_prepare(raced, decision, attempt)
        return Result(Outcome.OK, payment_id)


async def _glance(db: Database, attempt: Attempt) -> tuple[Order | None, Payment | None]:
    """The order and the attempt's payment, read together on a snapshot."""
    if _names_no_order(attempt.merchant_trans_id):
        return None, None
    return await glance_order_and_attempt(
        db, attempt.merchant_trans_id, NAME, str(attempt.click_trans_id)
    )


async def _locked_reads(
    conn: AsyncConnection, attempt: Attempt
) -> tuple[Order | None, Payment | None]:
    """The order, locked, then the attempt's payment: two statements. A PostgreSQL
    statement that waited for the order's lock sees the order as its holder left it, but
    the rows it joined as they were when it began waiting (a payment still pending that
    the holder has just settled), so the payment is read after the lock."""
    order = await _locked_order(conn, attempt.merchant_trans_id)
    if order is None:
        return None, None
    return order, await find_payment(conn, NAME, str(attempt.click_trans_id))


def _prepare_decision(
    order: Order | None, existing: Payment | None, attempt: Attempt
) -> Result | Order:
    """Steps 4-8: the answer when the Prepare writes nothing, else the order to insert
    the payment row for."""
    if order is None:
        return Result(Outcome.NO_ORDER)
    if existing is not None:
        return _repeated_prepare(existing, order, attempt)
    if attempt.error < 0:
        return Result(Outcome.CANCELLED)
    if order.status == OrderStatus.PAID:
        return Result(Outcome.ALREADY_PAID)
    if order.status != OrderStatus.PENDING:
        return Result(Outcome.CANCELLED)
    if attempt.amount != order.amount:
        return Result(Outcome.WRONG_AMOUNT)
    return order


async def complete(
    db: Database,
    attempt: Attempt,
    prepare_id: int | None,
    tariffs: Mapping[str, Tariff],
    now_ms: int,
    admin_ids: Collection[int],
) -> Result:
    """Settle a prepared payment (steps 4-10): cancel it, or credit it exactly once.

    `prepare_id` is None when Click sent it empty with `error<0` (A2).
    """
    async with db.transaction() as conn:
        order = await _locked_order(conn, attempt.merchant_trans_id)
        payment = None
        if order is not None and prepare_id and prepare_id <= MAX_PAYMENT_ID:
            payment = await get_payment(conn, prepare_id)
        if (
            order is None
            or payment is None
            or payment.provider != NAME
            or payment.order_id != order.id
            or payment.provider_id != str(attempt.click_trans_id)
        ):
            if attempt.error < 0:
                return Result(Outcome.CANCELLED)  # A2: a cancel after a refused Prepare
            return Result(Outcome.NO_ORDER if order is None else Outcome.NO_PAYMENT)
        if payment.state == PaymentState.PAID:
            if attempt.error < 0:
                await _alert_cancel_on_paid(conn, admin_ids, attempt, payment, order, now_ms)
                return Result(Outcome.CANCEL_ON_PAID, payment.id)
            return Result(Outcome.ALREADY_PAID)
        if payment.state != PaymentState.PENDING:
            return Result(Outcome.CANCELLED)
        if attempt.error < 0:
            await update_payment(
                conn,
                payment.id,
                state=PaymentState.CANCELLED,
                cancel_time=now_ms,
                cancel_note=cancel_note(attempt),
            )
            return Result(Outcome.CANCELLED)
        if attempt.amount != payment.amount:
            return Result(Outcome.WRONG_AMOUNT)
        # Credited even if the order was paid meanwhile (D8): Click has taken the money,
        # so it is one more period and every admin is told at once (A5).
        await credit_payment(conn, payment, order, tariffs, now_ms, admin_ids)
        return Result(Outcome.OK, payment.id)


async def _alert_cancel_on_paid(
    conn: AsyncConnection,
    admin_ids: Collection[int],
    attempt: Attempt,
    payment: Payment,
    order: Order,
    now_ms: int,
) -> None:
    """A1: Click claims a failure on money we credited; nothing changes, admins check it."""
    await alert_admins(
        conn,
        admin_ids,
        CLICK_CANCEL_ON_PAID,
        {
            "payment_id": payment.id,
            "click_trans_id": payment.provider_id,
            "click_paydoc_id": payment.click_paydoc_id,
            "order": order.merchant_trans_id,
            "amount": payment.amount,
            "error": attempt.error,
        },
        to_datetime(now_ms),
        key=str(payment.id),
    )


def cancel_note(attempt: Attempt) -> str:
    """Click's reason as stored: its error code, then its note when it sent one."""
    if attempt.error_note:
        return _storable(f"{attempt.error} {attempt.error_note}")
    return str(attempt.error)


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL; an unsigned note must not turn a cancel into -7."""
    return text.replace("\x00", "\ufffd")


def _names_no_order(merchant_trans_id: str) -> bool:
    """An id with NUL matches no order, and is not looked up: PostgreSQL would refuse
    the query, which must not become a -7 that Click retries forever."""
    return "\x00" in merchant_trans_id


async def _locked_order(conn: AsyncConnection, merchant_trans_id: str) -> Order | None:
    """The order row, locked for the rest of the transaction."""
    if _names_no_order(merchant_trans_id):
        return None
    return await get_order(conn, merchant_trans_id, lock=True)


def _repeated_prepare(existing: Payment, order: Order, attempt: Attempt) -> Result:
    """Step 5: a Prepare for a known click_trans_id never changes the payment (D15)."""
    if existing.order_id != order.id:
        return Result(Outcome.FOREIGN_ATTEMPT)
    if existing.state == PaymentState.PAID:
        return Result(Outcome.ALREADY_PAID)
    if existing.state != PaymentState.PENDING or attempt.error < 0:
        return Result(Outcome.CANCELLED)
    if attempt.amount != existing.amount:
        return Result(Outcome.WRONG_AMOUNT)
    return Result(Outcome.OK, existing.id)


async def _insert_payment(
    conn: AsyncConnection, order: Order, attempt: Attempt, now_ms: int
) -> int | None:
    """Insert the prepared row; None if its click_trans_id already exists."""
    inserted = await insert_once(
        conn,
        provider=NAME,
        provider_id=str(attempt.click_trans_id),
        order_id=order.id,
        amount=attempt.amount,
        state=PaymentState.PENDING,
        click_paydoc_id=attempt.click_paydoc_id,
        click_sign_time=_storable(attempt.sign_time[:SIGN_TIME_LIMIT]),
        create_time=now_ms,
    )
    return inserted.id if inserted else None
