"""Broadcasts: an admin's message to many users, drafted, confirmed once, sent through the
outbox, cancellable.

Nothing lives in memory between the steps (any instance may get the next button press):
the draft is a `broadcasts` row; confirming turns it into one outbox notice per
recipient (`broadcast_id` set) by INSERT ... SELECT, in the transaction that moves it
from `draft` to `sending`, so a second Confirm finds no draft and queues nothing.
Cancelling marks the pending rows `cancelled` in one statement, and the notifier re-reads
a row's status right before sending it (`still_pending`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db import outbox
from db.schema import broadcasts, notifications, users
from db.states import NoticeStatus

ANY_LANGUAGE = "*"  # the key of the one text every language gets


class BroadcastStatus(StrEnum):
    DRAFT = "draft"
    SENDING = "sending"
    CANCELLED = "cancelled"
    DONE = "done"


class Audience(StrEnum):
    ALL = "all"
    ACTIVE = "active"  # a plan active now
    EXPIRED = "expired"  # a plan that ended within `days`
    TARIFF = "tariff"  # a plan of one tariff active now (stored as the tariff's code)


@dataclass(frozen=True)
class Target:
    """Who a broadcast is for: an audience, and its days (expired) or tariff code."""

    audience: Audience
    days: int | None = None
    tariff: str | None = None

    @property
    def stored(self) -> str:
        return self.tariff if self.audience == Audience.TARIFF and self.tariff else self.audience


@dataclass(frozen=True)
class Broadcast:
    id: int
    admin_id: int
    target: Target
    texts: dict[str, str]
    status: BroadcastStatus
    recipients: int
    chat_id: int | None
    message_id: int | None
    language: str | None


@dataclass(frozen=True)
class Progress:
    sent: int
    failed: int
    left: int
    cancelled: int


def audience(target: Target, now: datetime) -> Select[tuple[int]]:
    """The ids of the users a broadcast is for, whether they can be reached or not."""
    query = select(users.c.id)
    plan_running = users.c.tariff.is_not(None) & (users.c.tariff_expires_at > now)
    if target.audience == Audience.ACTIVE:
        query = query.where(plan_running)
    elif target.audience == Audience.TARIFF:
        query = query.where(plan_running, users.c.tariff == target.tariff)
    elif target.audience == Audience.EXPIRED:
        since = now - timedelta(days=target.days or 0)
        query = query.where(users.c.tariff_expires_at <= now, users.c.tariff_expires_at > since)
    return query


def recipients(target: Target, now: datetime) -> Select[tuple[int]]:
    """Who gets it: the audience less the users known to have blocked the bot (a message
    to them can only fail)."""
    return audience(target, now).where(users.c.reachable.is_(True))


async def count_by_language(
    conn: AsyncConnection, target: Target, now: datetime
) -> dict[str | None, int]:
    """How many recipients read each language (None: not chosen yet)."""
    ids = recipients(target, now).subquery()
    query = (
        select(users.c.language, func.count())
        .join(ids, ids.c.id == users.c.id)
        .group_by(users.c.language)
    )
    rows: list[Any] = list(await conn.execute(query))
    return {row[0]: int(row[1]) for row in rows}


async def unreachable_count(conn: AsyncConnection, target: Target, now: datetime) -> int:
    """The audience's users left out because they blocked the bot."""
    ids = audience(target, now).where(users.c.reachable.is_(False)).subquery()
    return int(await conn.scalar(select(func.count()).select_from(ids)) or 0)


async def create_draft(
    conn: AsyncConnection, admin_id: int, target: Target, texts: dict[str, str], now: datetime
) -> int:
    statement = (
        insert(broadcasts)
        .values(
            admin_id=admin_id,
            audience=target.stored,
            days=target.days,
            texts=texts,
            status=BroadcastStatus.DRAFT,
            created_at=now,
        )
        .returning(broadcasts.c.id)
    )
    return int((await conn.execute(statement)).scalar_one())


def _target(audience: str, days: int | None) -> Target:
    if audience in Audience.__members__.values() and audience != Audience.TARIFF:
        return Target(Audience(audience), days)
    return Target(Audience.TARIFF, tariff=audience)


async def get_broadcast(conn: AsyncConnection, broadcast_id: int) -> Broadcast | None:
    row = (
        await conn.execute(select(broadcasts).where(broadcasts.c.id == broadcast_id))
    ).one_or_none()
    if row is None:
        return None
    return Broadcast(
        id=row.id,
        admin_id=row.admin_id,
        target=_target(row.audience, row.days),
        texts=dict(row.texts),
        status=BroadcastStatus(row.status),
        recipients=row.recipients,
        chat_id=row.chat_id,
        message_id=row.message_id,
        language=row.language,
    )


async def confirm(
    conn: AsyncConnection,
    broadcast_id: int,
    chat_id: int,
    message_id: int,
    language: str,
    now: datetime,
) -> int | None:
    """Queue the broadcast's rows, once: the number queued, or None when it was not a
    draft any more (confirmed or cancelled already, by this tap's twin or another admin).

    The audience is read again now, not taken from the preview: whoever joined since gets
    it, whoever blocked the bot since does not."""
    moved = await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.id == broadcast_id, broadcasts.c.status == BroadcastStatus.DRAFT)
        .values(
            status=BroadcastStatus.SENDING,
            confirmed_at=now,
            chat_id=chat_id,
            message_id=message_id,
            language=language,  # the notifier's edits keep the language the admin saw
            status_edited_at=now,  # the tap shows the status; the notifier's edits follow
        )
        .returning(broadcasts.c.audience, broadcasts.c.days)
    )
    row = moved.one_or_none()
    if row is None:
        return None
    target = _target(row.audience, row.days)
    payload = {"broadcast": broadcast_id}
    count = await outbox.enqueue_each(
        conn, recipients(target, now), outbox.BROADCAST, payload, now, broadcast_id
    )
    await conn.execute(
        update(broadcasts).where(broadcasts.c.id == broadcast_id).values(recipients=count)
    )
    if count == 0:
        await finish(conn, broadcast_id, now)
    return count


async def cancel(conn: AsyncConnection, broadcast_id: int, now: datetime) -> bool:
    """Stop a draft or a sending broadcast: its pending rows are cancelled in one
    statement (the notifier re-checks a row before sending it). False when it had
    finished or was cancelled already."""
    moved = await conn.execute(
        update(broadcasts)
        .where(
            broadcasts.c.id == broadcast_id,
            broadcasts.c.status.in_([BroadcastStatus.DRAFT, BroadcastStatus.SENDING]),
        )
        .values(status=BroadcastStatus.CANCELLED, finished_at=now)
        .returning(broadcasts.c.id)
    )
    if moved.one_or_none() is None:
        return False
    await conn.execute(
        update(notifications)
        .where(
            notifications.c.broadcast_id == broadcast_id,
            notifications.c.status == NoticeStatus.PENDING,
        )
        .values(status=NoticeStatus.CANCELLED)
    )
    return True


async def progress(conn: AsyncConnection, broadcast_id: int) -> Progress:
    query = (
        select(notifications.c.status, func.count())
        .where(notifications.c.broadcast_id == broadcast_id)
        .group_by(notifications.c.status)
    )
    counts: dict[str, int] = {str(row[0]): int(row[1]) for row in await conn.execute(query)}
    return Progress(
        sent=counts.get(NoticeStatus.SENT, 0),
        failed=counts.get(NoticeStatus.FAILED, 0),
        left=counts.get(NoticeStatus.PENDING, 0),
        cancelled=counts.get(NoticeStatus.CANCELLED, 0),
    )


async def still_pending(conn: AsyncConnection, notice_id: int) -> bool:
    """The notifier's last look before sending a broadcast row: not cancelled meanwhile."""
    query = select(notifications.c.status).where(notifications.c.id == notice_id)
    return await conn.scalar(query) == NoticeStatus.PENDING


async def texts_of(conn: AsyncConnection, broadcast_id: int) -> dict[str, str]:
    texts = await conn.scalar(select(broadcasts.c.texts).where(broadcasts.c.id == broadcast_id))
    return dict(texts or {})


def text_for(texts: dict[str, str], language: str, default_language: str) -> str:
    """The text a reader of `language` gets: theirs, else the one for all, else the
    default language's, else the first one written (none: empty, which Telegram refuses
    and the notifier closes, rather than a delivery that fails for ever)."""
    for key in (language, ANY_LANGUAGE, default_language):
        if key in texts:
            return texts[key]
    return next(iter(texts.values()), "")


async def anything_left(conn: AsyncConnection, broadcast_id: int) -> bool:
    """One indexed probe: is any row of the broadcast still to be sent?"""
    row = await conn.scalar(
        select(notifications.c.id)
        .where(
            notifications.c.broadcast_id == broadcast_id,
            notifications.c.status == NoticeStatus.PENDING,
        )
        .limit(1)
    )
    return row is not None


async def finish(conn: AsyncConnection, broadcast_id: int, now: datetime) -> bool:
    """Mark a sending broadcast done; True for the one caller that did it."""
    moved = await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.id == broadcast_id, broadcasts.c.status == BroadcastStatus.SENDING)
        .values(status=BroadcastStatus.DONE, finished_at=now, status_edited_at=now)
        .returning(broadcasts.c.id)
    )
    return moved.one_or_none() is not None


async def status_edited_at(conn: AsyncConnection, broadcast_id: int) -> datetime | None:
    query = select(broadcasts.c.status_edited_at).where(broadcasts.c.id == broadcast_id)
    moment: datetime | None = await conn.scalar(query)
    return moment


async def status_shown(conn: AsyncConnection, broadcast_id: int, now: datetime) -> None:
    """The tap's status message is on screen at `now`: the notifier's first edit comes
    the edit interval (bot/admin/broadcast.py) after that, not after the tap. Queueing
    and the edit itself take a moment (most under load), and two edits would then come
    closer than the interval (seen at 2.1 s in a CI run)."""
    await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.id == broadcast_id, broadcasts.c.status == BroadcastStatus.SENDING)
        .values(status_edited_at=now)
    )


async def take_status_edit(
    conn: AsyncConnection, broadcast_id: int, now: datetime, every: timedelta
) -> bool:
    """True at most once per `every` for a sending broadcast: whoever gets True edits the
    status message. Decided in the database, so it holds across instances."""
    moved = await conn.execute(
        update(broadcasts)
        .where(
            broadcasts.c.id == broadcast_id,
            broadcasts.c.status == BroadcastStatus.SENDING,
            broadcasts.c.status_edited_at.is_(None)
            | (broadcasts.c.status_edited_at <= now - every),
        )
        .values(status_edited_at=now)
        .returning(broadcasts.c.id)
    )
    return moved.one_or_none() is not None
