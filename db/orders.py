"""Orders: one purchase intent each, identified by `merchant_trans_id`.

An order is a snapshot: it records the tariff, amount and days of the configuration of
the moment it is made, and a payment grants exactly that (Click A4 / Payme A3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from db.database import Database
from db.payments import Payment, payment_from_row
from db.prepared import Call, Prepared, as_mapping, row_update, run_together
from db.schema import orders, payments
from db.states import PaymentState
from db.tariffs import Tariff

# A pending order younger than this is shown again instead of creating another one.
ORDER_REUSE_LIFETIME = timedelta(hours=1)

# Short order numbers (`#A7K2Q`): Crockford's base32 (no I, L, O, U: nothing to misread
# on the phone), 5 characters for the first 33 million orders, more after.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_MULTIPLIER = 0x2F5A3  # odd: multiplying by it permutes every 32**n range
_CODE_OFFSET = 0x1B3C7


@dataclass(frozen=True)
class Order:
    id: int
    merchant_trans_id: str
    user_id: int
    tariff: str
    amount: int
    status: str
    created_at: datetime
    paid_at: datetime | None
    # Last, with a default, so positional construction stays valid; None only for rows
    # written around open_order (old fixtures), which then grant the tariff's days.
    days: int | None = None
    # Where the buyer's checkout message is, so a second tap edits it and a payment
    # turns it into "Paid ✓" (migration 0007); None until the bot has shown it.
    checkout_chat_id: int | None = None
    checkout_message_id: int | None = None

    @property
    def code(self) -> str:
        """The short number a person can quote: `A7K2Q` (shown as `#A7K2Q`)."""
        return order_code(self.id)


def _code_width(order_id: int) -> int:
    width = 5
    while order_id >= 32**width:
        width += 1
    return width


def order_code(order_id: int) -> str:
    """Order id -> short code, a bijection per width: unique, derived, nothing stored.

    Scrambled (an odd multiplier and an offset modulo 32**width) so that consecutive
    orders do not read as a sales counter."""
    width = _code_width(order_id)
    value = (order_id * _CODE_MULTIPLIER + _CODE_OFFSET) % 32**width
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(CODE_ALPHABET[digit])
    return "".join(reversed(chars))


def order_id_from_code(text: str) -> int | None:
    """`#a7k2q`, `A7K2Q` -> the order id it names, None when it names none (the admin
    search hook: `/payments #A7K2Q`)."""
    raw = text.strip().lstrip("#").upper().replace("O", "0").replace("I", "1").replace("L", "1")
    if len(raw) < 5 or any(char not in CODE_ALPHABET for char in raw):
        return None
    value = 0
    for char in raw:
        value = value * 32 + CODE_ALPHABET.index(char)
    modulus = 32 ** len(raw)
    order_id = (value - _CODE_OFFSET) * pow(_CODE_MULTIPLIER, -1, modulus) % modulus
    return order_id if _code_width(order_id) == len(raw) else None


def order_from_row(row: object, prefix: str = "") -> Order:
    """An order from a Core row or a mapping; `prefix` as `payment_from_row`'s."""
    mapping = as_mapping(row)
    return Order(**{name: mapping[prefix + name] for name in Order.__dataclass_fields__})


def merchant_trans_id(user_id: int, tariff: str, now: datetime) -> str:
    return f"{user_id}_{tariff}_{int(now.timestamp())}"


_BY_MTI = select(orders).where(orders.c.merchant_trans_id == bindparam("mti"))
_BY_ID = select(orders).where(orders.c.id == bindparam("order_id"))
# (unlocked, locked): SQLite ignores FOR UPDATE, its writer holds the whole database.
_ORDER_BY_MTI = (Prepared(_BY_MTI), Prepared(_BY_MTI.with_for_update()))
_ORDER_BY_ID = (Prepared(_BY_ID), Prepared(_BY_ID.with_for_update()))


async def get_order(conn: AsyncConnection, mti: str, *, lock: bool = False) -> Order | None:
    """Find an order by its exact id; `lock` takes the row lock the money path needs."""
    row = await _ORDER_BY_MTI[lock].one_or_none(conn, mti=mti)
    return order_from_row(row) if row else None


# An order and, beside it, the payment of one provider's attempt (whichever order that
# attempt belongs to). For snapshots only: a locked read must not join the payment (see
# the Click Prepare's `_locked_reads` for why).
_ORDER_AND_ATTEMPT = Prepared(
    select(orders, payments)
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
    .select_from(
        orders.outerjoin(
            payments,
            and_(
                payments.c.provider == bindparam("provider"),
                payments.c.provider_id == bindparam("provider_id"),
            ),
        )
    )
    .where(orders.c.merchant_trans_id == bindparam("mti"))
)


async def glance_order_and_attempt(
    db: Database, mti: str, provider: str, provider_id: str
) -> tuple[Order | None, Payment | None]:
    """`get_order` and `find_payment` as one statement on a snapshot of its own
    (`Database.glance`: one round trip on PostgreSQL); no payment is looked for when
    the order is unknown."""
    rows = await db.glance(_ORDER_AND_ATTEMPT, mti=mti, provider=provider, provider_id=provider_id)
    if not rows:
        return None, None
    (row,) = rows
    order = order_from_row(row, "orders_")
    return order, None if row["payments_id"] is None else payment_from_row(row, "payments_")


async def get_order_by_id(conn: AsyncConnection, order_id: int, *, lock: bool = False) -> Order:
    return order_from_row(await _ORDER_BY_ID[lock].one(conn, order_id=order_id))


async def open_order(conn: AsyncConnection, user_id: int, tariff: Tariff, now: datetime) -> Order:
    """Reuse the user's recent pending order for this tariff, price and days, or create
    one.

    An order with a live reservation (a pending payment: a Payme transaction in state 1,
    a prepared Click attempt) is never handed out again (Payme A2): a payer who abandoned
    a checkout page would otherwise leave the next one refused with -31008 for 12 hours.
    """
    reusable = (
        select(orders)
        .where(
            orders.c.user_id == user_id,
            orders.c.tariff == tariff.code,
            orders.c.status == "pending",
            orders.c.amount == tariff.price,
            orders.c.days == tariff.days,
            orders.c.created_at > now - ORDER_REUSE_LIFETIME,
            ~exists().where(
                payments.c.order_id == orders.c.id,
                payments.c.state == PaymentState.PENDING,
            ),
        )
        .order_by(orders.c.created_at.desc())
        .limit(1)
    )
    row = (await conn.execute(reusable)).one_or_none()
    if row:
        return order_from_row(row)
    mti = merchant_trans_id(user_id, tariff.code, now)
    try:
        async with conn.begin_nested():
            created = await conn.execute(
                insert(orders)
                .values(
                    merchant_trans_id=mti,
                    user_id=user_id,
                    tariff=tariff.code,
                    amount=tariff.price,
                    days=tariff.days,
                    status="pending",
                    created_at=now,
                )
                .returning(*orders.c)
            )
            return order_from_row(created.one())
    except IntegrityError:
        # A double tap in the same second: the other tap created it.
        existing = await get_order(conn, mti)
        assert existing is not None
        return existing


def receipt_fields(order: Order, payment: Payment, now_ms: int) -> dict[str, object]:
    """What the buyer's receipt and the "Paid ✓" edit need from the order and the payment
    (added to the "payment received" notice by db/billing.py)."""
    return {
        "order_id": order.id,
        "order_code": order.code,
        "days": order.days,
        "provider": payment.provider,
        "payment_id": payment.id,
        "paid_at": now_ms,
        "checkout": (
            [order.checkout_chat_id, order.checkout_message_id]
            if order.checkout_chat_id is not None and checkout_shown(order)
            else None
        ),
    }


async def paid_order_of(
    conn: AsyncConnection, order_id: int, user_id: int
) -> tuple[Order, Payment] | None:
    """One of the user's own orders with its (first) paid payment, or None: what a
    receipt shows again, fiscal link included once Payme sent it."""
    row = (
        await conn.execute(
            select(orders).where(orders.c.id == order_id, orders.c.user_id == user_id)
        )
    ).one_or_none()
    if row is None:
        return None
    paid = (
        await conn.execute(
            select(payments)
            .where(payments.c.order_id == order_id, payments.c.state == PaymentState.PAID)
            .order_by(payments.c.id)
            .limit(1)
        )
    ).one_or_none()
    return (order_from_row(row), payment_from_row(paid)) if paid is not None else None


def fiscal_url(payment: Payment) -> str | None:
    """The buyer's fiscal receipt link from Payme's SetFiscalData (type PERFORM)."""
    perform = (payment.fiscal_data or {}).get("PERFORM")
    url = perform.get("qr_code_url") if isinstance(perform, dict) else None
    return url if isinstance(url, str) and url.startswith("https://") else None


# While a tap sends an order's checkout message, `checkout_message_id` holds minus the
# moment (ms) that tap claimed it (real message ids are positive): a second tap meanwhile
# does not send another one. A claim older than this is a send that died before storing
# its message id (a crash, a deploy): the next tap takes it over instead of pointing the
# buyer to a message that never came. The bot bounds the send itself well below it
# (bot/handlers/tariffs.py: CHECKOUT_SEND_SECONDS), so a live send never loses its claim.
CHECKOUT_CLAIM_MS = 30_000


def checkout_shown(order: Order) -> bool:
    """The order's checkout message was sent and its id stored."""
    return order.checkout_message_id is not None and order.checkout_message_id > 0


def checkout_being_sent(order: Order, now_ms: int) -> bool:
    """Another tap claimed the checkout message less than CHECKOUT_CLAIM_MS ago."""
    held = order.checkout_message_id
    return held is not None and held <= 0 and now_ms + held < CHECKOUT_CLAIM_MS


async def claim_checkout(conn: AsyncConnection, order: Order, chat_id: int, now_ms: int) -> bool:
    """Take the right to send this order's checkout message in place of what `order`
    holds (nothing, a stale claim, a message that is gone): True for exactly one tap.

    One conditional UPDATE on the value read (compare and swap), so two concurrent taps
    cannot both win (PostgreSQL re-checks the condition after the row lock; SQLite has
    one writer)."""
    held = order.checkout_message_id
    result = await conn.execute(
        update(orders)
        .where(
            orders.c.id == order.id,
            orders.c.checkout_message_id.is_(None)
            if held is None
            else orders.c.checkout_message_id == held,
        )
        .values(checkout_chat_id=chat_id, checkout_message_id=-now_ms)
    )
    return result.rowcount == 1


async def release_checkout(conn: AsyncConnection, order_id: int, claimed_ms: int) -> None:
    """The checkout claimed at `claimed_ms` could not be sent: the next tap may try again."""
    await conn.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.checkout_message_id == -claimed_ms)
        .values(checkout_chat_id=None, checkout_message_id=None)
    )


async def set_checkout_message(
    conn: AsyncConnection, order_id: int, chat_id: int, message_id: int
) -> None:
    """Remember the one message that shows this order's pay buttons."""
    await conn.execute(
        update(orders)
        .where(orders.c.id == order_id)
        .values(checkout_chat_id=chat_id, checkout_message_id=message_id)
    )


def order_status_update(order_id: int, status: str, paid_at: datetime | None = None) -> Call:
    """The order's new status (and the moment it was paid), as a call to run."""
    if paid_at is None:
        return row_update(orders, order_id, status=status)
    return row_update(orders, order_id, status=status, paid_at=paid_at)


async def set_order_status(
    conn: AsyncConnection, order_id: int, status: str, paid_at: datetime | None = None
) -> None:
    await run_together(conn, order_status_update(order_id, status, paid_at))


async def paid_twice(conn: AsyncConnection, limit: int = 20) -> list[tuple[Order, list[int]]]:
    """Orders with more than one paid payment (Click A5 / Payme A4), newest first, with
    their paid payment ids: what an admin reviews to refund one (`/payments double`)."""
    doubles = (
        select(payments.c.order_id)
        .where(payments.c.state == PaymentState.PAID)
        .group_by(payments.c.order_id)
        .having(func.count() > 1)
        .subquery()
    )
    rows = (
        await conn.execute(
            select(orders)
            .where(orders.c.id.in_(select(doubles.c.order_id)))
            .order_by(orders.c.id.desc())
            .limit(limit)
        )
    ).all()
    found = [order_from_row(row) for row in rows]
    paid = await conn.execute(
        select(payments.c.order_id, payments.c.id)
        .where(
            payments.c.order_id.in_([order.id for order in found]),
            payments.c.state == PaymentState.PAID,
        )
        .order_by(payments.c.id)
    )
    ids: dict[int, list[int]] = {}
    for row in paid:
        ids.setdefault(int(row.order_id), []).append(int(row.id))
    return [(order, ids.get(order.id, [])) for order in found]
