"""Days an admin gives a buyer: asked for, confirmed once, and taken back.

The bot may run as several instances, so nothing of the conversation lives in memory:
`/gift` writes a `pending` row, and Confirm (pressed on whichever instance gets it)
turns it `granted` with one conditional UPDATE, so two presses grant once. The granted
time is a ledger period of kind `gift` (db/ledger.py), never a payment: revenue,
/stats and exports, which read payments, never see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db import ledger, outbox
from db.clock import to_datetime
from db.schema import gifts, users
from db.users import User, get_user

# The buyer's outbox notices (bot/workers/notices.py)
GIFT_RECEIVED = "gift_received"
GIFT_TAKEN_BACK = "gift_taken_back"


class GiftStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    CANCELLED = "cancelled"
    TAKEN_BACK = "taken_back"


@dataclass(frozen=True)
class Gift:
    id: int
    user_id: int
    tariff: str
    days: int
    reason: str
    granted_by: int
    status: str
    period_id: int | None
    created_at: int  # ms
    decided_at: int | None
    taken_back_by: int | None
    taken_back_at: int | None


def _gift(row: object) -> Gift:
    mapping = row._mapping  # type: ignore[attr-defined]
    return Gift(**{name: mapping[name] for name in Gift.__dataclass_fields__})


async def find_buyer(conn: AsyncConnection, who: str) -> User | None:
    """`123456` by id, `@name` or `name` by username in any case (the indexed lower())."""
    who = who.strip()
    if who.isascii() and who.isdigit():
        number = int(who)  # a Telegram id; past BIGINT it names nobody
        return await get_user(conn, number) if number < 2**63 else None
    name = who.removeprefix("@").lower()
    if not name:
        return None
    user_id = await conn.scalar(
        select(users.c.id).where(func.lower(users.c.username) == name).order_by(users.c.id).limit(1)
    )
    return await get_user(conn, user_id) if user_id is not None else None


async def get_gift(conn: AsyncConnection, gift_id: int) -> Gift | None:
    row = (await conn.execute(select(gifts).where(gifts.c.id == gift_id))).one_or_none()
    return _gift(row) if row else None


async def user_gifts(conn: AsyncConnection, user_id: int) -> list[Gift]:
    """The buyer's granted (and taken back) gifts, the ones with a ledger period."""
    rows = await conn.execute(
        select(gifts)
        .where(gifts.c.user_id == user_id, gifts.c.period_id.is_not(None))
        .order_by(gifts.c.id)
    )
    return [_gift(row) for row in rows]


async def ask(
    conn: AsyncConnection,
    user_id: int,
    tariff: str,
    days: int,
    reason: str,
    admin_id: int,
    now_ms: int,
) -> Gift:
    """Write the pending gift the preview's Confirm refers to."""
    inserted = await conn.execute(
        insert(gifts)
        .values(
            user_id=user_id,
            tariff=tariff,
            days=days,
            reason=reason,
            granted_by=admin_id,
            status=GiftStatus.PENDING,
            created_at=now_ms,
        )
        .returning(*gifts.c)
    )
    return _gift(inserted.one())


def known_periods(periods: list[ledger.Period], user: User, now_ms: int) -> list[ledger.Period]:
    """The buyer's ledger as their next ledger change will see it: a buyer with no
    periods but a live cached plan (set before the ledger, or by hand) gets that plan as
    an opening period first (`ledger.add_period` adopts it the same way), so the card
    and the gift's preview show what the buyer has and what the gift will give."""
    if periods:
        return periods
    opening = ledger.cached_opening(user.id, user.tariff, user.tariff_expires_at, now_ms)
    return periods if opening is None else [opening]


def preview(periods: list[ledger.Period], gift: Gift, now_ms: int) -> ledger.Timeline:
    """The buyer's plan as it would be with the gift credited now (the ledger's rules)."""
    credit = ledger.Period(
        id=max((p.id for p in periods), default=0) + 1,
        user_id=gift.user_id,
        payment_id=None,
        tariff=gift.tariff,
        duration_ms=gift.days * ledger.DAY_MS,
        credited_at=now_ms,
        refunded_at=None,
        kind=ledger.GIFT,
    )
    return ledger.compute([*periods, credit])


async def _decide(conn: AsyncConnection, gift_id: int, status: GiftStatus, now_ms: int) -> bool:
    """Move a pending gift to `status`; False when it was decided already. The row's
    own condition settles two presses on two instances: only one UPDATE matches."""
    result = await conn.execute(
        update(gifts)
        .where(gifts.c.id == gift_id, gifts.c.status == GiftStatus.PENDING)
        .values(status=status, decided_at=now_ms)
    )
    return result.rowcount == 1


async def grant(conn: AsyncConnection, gift_id: int, now_ms: int) -> ledger.Timeline | None:
    """Credit a pending gift as a ledger period and tell the buyer (outbox, their
    language). None when the gift was no longer pending: nothing changes."""
    if not await _decide(conn, gift_id, GiftStatus.GRANTED, now_ms):
        return None
    gift = await get_gift(conn, gift_id)
    assert gift is not None
    await get_user(conn, gift.user_id, lock=True)
    period_id, timeline = await ledger.add_gift(
        conn, gift.user_id, gift.tariff, gift.days * ledger.DAY_MS, now_ms
    )
    await conn.execute(update(gifts).where(gifts.c.id == gift_id).values(period_id=period_id))
    await _tell(conn, GIFT_RECEIVED, gift, timeline, now_ms)
    return timeline


async def _tell(
    conn: AsyncConnection, kind: str, gift: Gift, timeline: ledger.Timeline, now_ms: int
) -> None:
    """Queue the buyer's notice of a gift granted or taken back, once per gift."""
    await outbox.enqueue(
        conn,
        gift.user_id,
        kind,
        {
            "tariff": gift.tariff,
            "days": gift.days,
            "timeline": ledger.describe(timeline.ahead(now_ms)),
        },
        to_datetime(now_ms),
        dedupe_key=f"{kind}:{gift.id}",
    )


async def cancel(conn: AsyncConnection, gift_id: int, now_ms: int) -> bool:
    return await _decide(conn, gift_id, GiftStatus.CANCELLED, now_ms)


async def take_back(
    conn: AsyncConnection, gift_id: int, admin_id: int, now_ms: int
) -> ledger.Removal | None:
    """Remove a granted gift's period as a refund removes a payment's (its unused part
    goes, later periods move earlier) and tell the buyer when days went. None when it
    was not granted (or taken back already): one conditional UPDATE, so two presses
    take back once."""
    result = await conn.execute(
        update(gifts)
        .where(gifts.c.id == gift_id, gifts.c.status == GiftStatus.GRANTED)
        .values(status=GiftStatus.TAKEN_BACK, taken_back_by=admin_id, taken_back_at=now_ms)
    )
    if result.rowcount != 1:
        return None
    gift = await get_gift(conn, gift_id)
    assert gift is not None and gift.period_id is not None
    await get_user(conn, gift.user_id, lock=True)
    removal = await ledger.take_back_gift(conn, gift.user_id, gift.period_id, now_ms)
    if removal.removed_ms:
        await _tell(conn, GIFT_TAKEN_BACK, gift, removal.after, now_ms)
    return removal
