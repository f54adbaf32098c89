"""The notifications outbox: messages written in the same transaction as what they announce.

Rows hold a kind and its parameters, not text: the notifier renders them in the user's
language at send time, so a language change before delivery is respected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, exists, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.database import announce_on_commit
from db.prepared import Call, Prepared
from db.schema import notifications, users
from db.states import NoticeStatus

PAYMENT_RECEIVED = "payment_received"
PAYMENT_REFUNDED = "payment_refunded"
SUBSCRIPTION_EXPIRED = "subscription_expired"
SUBSCRIPTION_REMINDER = "subscription_reminder"
ADMIN_ALERT = "admin_alert"  # db/admin_alerts.py
BROADCAST = "broadcast"  # db/broadcasts.py: an admin's /broadcast, one row per recipient

ENQUEUED = "outbox.enqueued"  # the commit topic the notifier listens to
QUEUE_CHUNK = 2000  # users per INSERT of `enqueue_each`: about 10 ms of SQLite each


@dataclass(frozen=True)
class Notice:
    id: int
    user_id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    language: str | None
    broadcast_id: int | None = None


_ENQUEUE = Prepared(
    lambda dialect: (
        dialect.insert(notifications)
        .values(
            user_id=bindparam("user_id"),
            kind=bindparam("kind"),
            payload=bindparam("payload", type_=notifications.c.payload.type),
            dedupe_key=bindparam("dedupe_key"),
            status=NoticeStatus.PENDING,
            next_attempt_at=bindparam("now", type_=notifications.c.next_attempt_at.type),
            created_at=bindparam("now", type_=notifications.c.created_at.type),
        )
        .on_conflict_do_nothing(index_elements=[notifications.c.dedupe_key])
        .returning(notifications.c.id)
    )
)


async def enqueue(
    conn: AsyncConnection,
    user_id: int,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    dedupe_key: str | None = None,
) -> bool:
    """Queue a notice; with a `dedupe_key` already queued, do nothing and return False.

    One statement (`INSERT ... ON CONFLICT DO NOTHING`) so that two instances racing to
    queue the same "once per period" notice cannot both succeed, and neither fails.
    """
    statement, params = enqueue_call(conn, user_id, kind, payload, now, dedupe_key)
    return await statement.one_or_none(conn, **params) is not None


def enqueue_call(
    conn: AsyncConnection,
    user_id: int,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    dedupe_key: str | None = None,
) -> Call:
    """`enqueue` as a call, to run with other writes (`db.prepared.run_together`). The
    notifier is woken at commit whether or not the dedupe key let the notice in (a
    wakeup with nothing new costs it one poll)."""
    announce_on_commit(conn, ENQUEUED)
    return _ENQUEUE, {
        "user_id": user_id,
        "kind": kind,
        "payload": payload,
        "dedupe_key": dedupe_key,
        "now": now,
    }


async def enqueue_each(
    conn: AsyncConnection,
    user_ids: Select[tuple[int]],
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    broadcast_id: int,
    *,
    chunk: int = QUEUE_CHUNK,
) -> int:
    """Queue one notice for every user `user_ids` selects and return how many: one
    INSERT ... SELECT per `chunk` users, in id order, never a statement per user.

    Chunks, not one statement: on SQLite a statement runs on the event loop's thread,
    and one INSERT over 100 000 users stopped every request of the process for about
    half a second. Between chunks the loop serves others; writers still wait for this
    transaction, as for any.
    """
    user_id = user_ids.selected_columns[0]
    columns = [
        "user_id",
        "kind",
        "payload",
        "status",
        "next_attempt_at",
        "created_at",
        "broadcast_id",
    ]
    values = (
        literal(kind),
        literal(payload, notifications.c.payload.type),
        literal(NoticeStatus.PENDING.value),
        literal(now, notifications.c.next_attempt_at.type),
        literal(now, notifications.c.created_at.type),
        literal(broadcast_id, notifications.c.broadcast_id.type),
    )
    queued, after = 0, None
    while True:
        ids = user_ids.order_by(user_id).limit(chunk)
        if after is not None:
            ids = ids.where(user_id > after)
        rows = select(ids.subquery().c[0], *values)
        inserted = (
            await conn.scalars(
                notifications.insert().from_select(columns, rows).returning(notifications.c.user_id)
            )
        ).all()
        if inserted:
            announce_on_commit(conn, ENQUEUED)
        queued += len(inserted)
        if len(inserted) < chunk:
            return queued
        after = max(inserted)
        await asyncio.sleep(0)  # the loop's turn: requests waiting since this chunk began


async def claim_due(
    conn: AsyncConnection,
    now: datetime,
    limit: int,
    lease: timedelta,
    exclude: Collection[int] = (),
) -> list[Notice]:
    """Take up to `limit` due notices, oldest first, and lease them until `now + lease`;
    broadcast rows only when no other notice is due, and after them in the batch.

    The lease is what makes delivery safe: a claimed notice is not due again until the
    lease ends, so a second worker (another instance) skips it, and if this process dies
    mid-send the notice becomes due again by itself. On PostgreSQL `SKIP LOCKED` lets
    concurrent claimers pass each other instead of waiting.

    Only a user's oldest pending notice is ever due (broadcast rows aside: `_due_ids`), so
    a user's messages arrive in the order they were queued even when one of them waits
    for a retry (or sits in another instance). `exclude` is what this worker holds in
    flight already: a clock jump (tests travel in time) must not make its own leases look
    expired.
    """
    taken = list(exclude)
    ids = await _due_ids(conn, now, limit, taken, broadcast=False)
    if len(ids) < limit:
        ids += await _due_ids(conn, now, limit - len(ids), taken + ids, broadcast=True)
    if not ids:
        return []
    await conn.execute(
        update(notifications).where(notifications.c.id.in_(ids)).values(next_attempt_at=now + lease)
    )
    rows = await conn.execute(
        select(notifications, users.c.language)
        .join(users, users.c.id == notifications.c.user_id)
        .where(notifications.c.id.in_(ids))
        .order_by(notifications.c.id)
    )
    notices = [
        Notice(
            row.id,
            row.user_id,
            row.kind,
            dict(row.payload),
            row.attempts,
            row.language,
            row.broadcast_id,
        )
        for row in rows
    ]
    return sorted(notices, key=lambda notice: (notice.broadcast_id is not None, notice.id))


async def _due_ids(
    conn: AsyncConnection, now: datetime, limit: int, exclude: list[int], *, broadcast: bool
) -> list[int]:
    """The ids of up to `limit` due notices, oldest first: every other notice, or (with
    `broadcast`) broadcast rows.

    Only a user's oldest pending notice is due, with one exception: a broadcast row never
    holds a buyer's payment notice or an admin's alert back (it waits for them, they do
    not wait for it), so money news overtakes a running broadcast.
    """
    older = notifications.alias("older")
    # Inlined, not bound: PostgreSQL's generic plan of a prepared statement (asyncpg
    # caches them) can use the partial indexes on pending notices only with a literal.
    pending = literal(NoticeStatus.PENDING.value, literal_execute=True)
    holds_back = older.c.id < notifications.c.id
    if not broadcast:
        holds_back = holds_back & older.c.broadcast_id.is_(None)
    query = (
        select(notifications.c.id)
        .where(
            notifications.c.status == pending,
            notifications.c.broadcast_id.is_not(None)
            if broadcast
            else notifications.c.broadcast_id.is_(None),
            notifications.c.next_attempt_at <= now,
            ~exists().where(
                older.c.user_id == notifications.c.user_id, older.c.status == pending, holds_back
            ),
        )
        .order_by(notifications.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=notifications)
    )
    if exclude:
        query = query.where(notifications.c.id.not_in(exclude))
    return list((await conn.execute(query)).scalars())


async def extend_lease(conn: AsyncConnection, notice_id: int, until: datetime) -> None:
    """Keep a notice this worker still holds (say, waiting out a 429) from being re-claimed."""
    await conn.execute(
        update(notifications)
        .where(notifications.c.id == notice_id, notifications.c.status == NoticeStatus.PENDING)
        .values(next_attempt_at=until)
    )


async def mark_sent(conn: AsyncConnection, notice_id: int, now: datetime) -> None:
    await conn.execute(
        update(notifications)
        .where(notifications.c.id == notice_id)
        .values(status=NoticeStatus.SENT, sent_at=now, attempts=notifications.c.attempts + 1)
    )


async def mark_failed(conn: AsyncConnection, notice_id: int, reason: str) -> None:
    """Close a notice that can never be delivered (the user blocked the bot)."""
    await conn.execute(
        update(notifications)
        .where(notifications.c.id == notice_id)
        .values(
            status=NoticeStatus.FAILED, error=reason[:500], attempts=notifications.c.attempts + 1
        )
    )


async def retry_later(conn: AsyncConnection, notice_id: int, when: datetime, reason: str) -> None:
    await conn.execute(
        update(notifications)
        .where(notifications.c.id == notice_id)
        .values(next_attempt_at=when, error=reason[:500], attempts=notifications.c.attempts + 1)
    )
