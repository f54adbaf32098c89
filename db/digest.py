"""The admins' daily digest of payments and refunds, instead of a notice for each one.

An admin picks "at once" or "a digest at HH:00 Tashkent" (`set_mode`). In digest mode
`db/admin_alerts.payment_notice` skips them; alerts about money at risk still come at
once. Each scheduler poll calls `queue_due`: for every such admin whose last digest hour
has passed, one conditional UPDATE moves their `digest_since` watermark to that hour and,
in the same transaction, queues one outbox notice with the figures of
[old watermark, hour). The UPDATE is the claim (two instances cannot both move it) and
the dedupe key (admin, day and hour) guards the outbox too, so a restart or a second
instance never sends a digest twice; an instance that was down at the hour sends it at
its next poll, covering the same span, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, false, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.admin_alerts import PAYMENT_DIGEST, alert_admins
from db.clock import TASHKENT, to_datetime, to_ms
from db.schema import admin_settings, orders, payments, users

LINES_SHOWN = 15  # payments listed one by one; the rest are "and N more"


@dataclass(frozen=True)
class Mode:
    """An admin's choice: `hour` None means every notice at once."""

    hour: int | None
    since: int | None  # ms: the start of the next digest's span


async def get_mode(conn: AsyncConnection, admin_id: int) -> Mode:
    row = (
        await conn.execute(
            select(admin_settings.c.digest_hour, admin_settings.c.digest_since).where(
                admin_settings.c.admin_id == admin_id
            )
        )
    ).first()
    return Mode(row.digest_hour, row.digest_since) if row else Mode(None, None)


async def set_mode(conn: AsyncConnection, admin_id: int, hour: int | None, now_ms: int) -> Mode:
    """Switch an admin's notices (returns the mode before); nothing they were not told of
    is dropped.

    Into digest mode the span starts now (everything before was sent at once); a new hour
    keeps the span running. Back to "at once", what the pending digest holds so far is
    queued now, since no digest hour will come for it any more.
    """
    old = await get_mode(conn, admin_id)
    since = now_ms
    if old.hour is not None and old.since is not None:
        since = old.since
        if hour is None and old.since < now_ms:
            await queue_digest(conn, admin_id, old.since, now_ms, f"until:{now_ms}", quiet=False)
            since = now_ms
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {"digest_hour": hour, "digest_since": since, "updated_at": to_datetime(now_ms)}
    await conn.execute(
        dialect.insert(admin_settings)
        .values(admin_id=admin_id, **values)
        .on_conflict_do_update(index_elements=[admin_settings.c.admin_id], set_=values)
    )
    return old


def last_hour_due(now_ms: int, hour: int) -> int:
    """The latest Tashkent `hour`:00 at or before `now_ms`."""
    local = to_datetime(now_ms).astimezone(TASHKENT)
    due = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if due > local:
        due -= timedelta(days=1)
    return to_ms(due)


async def queue_due(conn: AsyncConnection, admin_ids: Collection[int], now_ms: int) -> int:
    """Queue the digest of every admin (in `admin_ids`) whose hour has come; how many."""
    if not admin_ids:
        return 0
    rows: list[Any] = list(
        await conn.execute(
            select(
                admin_settings.c.admin_id,
                admin_settings.c.digest_hour,
                admin_settings.c.digest_since,
            ).where(
                admin_settings.c.digest_hour.is_not(None),
                admin_settings.c.admin_id.in_(sorted(admin_ids)),
            )
        )
    )
    queued = 0
    for admin_id, hour, since in rows:
        due = last_hour_due(now_ms, hour)
        if since >= due:
            continue
        claimed = (
            await conn.execute(
                update(admin_settings)
                .where(
                    admin_settings.c.admin_id == admin_id, admin_settings.c.digest_since == since
                )
                .values(digest_since=due)
                .returning(admin_settings.c.admin_id)
            )
        ).first()
        if claimed is None:  # another instance queued it a moment ago
            continue
        day = to_datetime(due).astimezone(TASHKENT)
        await queue_digest(conn, admin_id, since, due, key=f"{day:%Y-%m-%dT%H}")
        queued += 1
    return queued


async def queue_digest(
    conn: AsyncConnection, admin_id: int, since_ms: int, until_ms: int, key: str, quiet: bool = True
) -> None:
    """Queue the digest of [since, until); with `quiet` False, only if something happened
    (the daily one says "nothing" too, so the admin knows it was not forgotten)."""
    details = await figures(conn, since_ms, until_ms)
    if not quiet and not (details["paid"][0] or details["refunded"][0] or details["tests"]):
        return
    await alert_admins(conn, [admin_id], PAYMENT_DIGEST, details, to_datetime(until_ms), key)


def _received(since_ms: int, until_ms: int) -> Any:
    """Real payments performed in the span, refunded since or not (each had its notice)."""
    return and_(
        payments.c.state.in_(("paid", "refunded")),
        payments.c.perform_time >= since_ms,
        payments.c.perform_time < until_ms,
    )


def _refunded(since_ms: int, until_ms: int) -> Any:
    return and_(
        payments.c.state == "refunded",
        payments.c.test == false(),
        payments.c.cancel_time >= since_ms,
        payments.c.cancel_time < until_ms,
    )


async def figures(conn: AsyncConnection, since_ms: int, until_ms: int) -> dict[str, Any]:
    """What one digest says, as an outbox payload (JSON): the span's payments received
    and refunds, in all and per tariff and provider, the first events one by one, and how
    many test payments were left out of the figures."""
    received = _received(since_ms, until_ms)
    split: list[Any] = list(
        await conn.execute(
            select(payments.c.provider, orders.c.tariff, func.count(), func.sum(payments.c.amount))
            .join(orders, orders.c.id == payments.c.order_id)
            .where(received, payments.c.test == false())
            .group_by(payments.c.provider, orders.c.tariff)
        )
    )
    by_tariff: dict[str, list[int]] = {}
    by_provider: dict[str, list[int]] = {}
    for provider, tariff, count, amount in split:
        for totals, name in ((by_tariff, tariff), (by_provider, provider)):
            entry = totals.setdefault(str(name), [0, 0])
            entry[0] += int(count)
            entry[1] += int(amount)
    refund_row: Any = (
        await conn.execute(
            select(func.count(), func.coalesce(func.sum(payments.c.amount), 0)).where(
                _refunded(since_ms, until_ms)
            )
        )
    ).one()
    tests = await conn.scalar(select(func.count()).where(received, payments.c.test == true()))
    columns = (
        payments.c.amount,
        orders.c.tariff,
        payments.c.provider,
        users.c.first_name,
        users.c.id,
    )
    events: list[list[Any]] = []
    for event, moment, condition in (
        ("paid", payments.c.perform_time, and_(received, payments.c.test == false())),
        ("refunded", payments.c.cancel_time, _refunded(since_ms, until_ms)),
    ):
        query = (
            select(moment, payments.c.id, *columns)
            .join(orders, orders.c.id == payments.c.order_id)
            .join(users, users.c.id == orders.c.user_id)
            .where(condition)
            .order_by(moment, payments.c.id)
            .limit(LINES_SHOWN)
        )
        events += [
            [int(r[0]), int(r[1]), event, int(r[2]), *r[3:6], int(r[6])]
            for r in await conn.execute(query)
        ]
    events.sort(key=lambda item: (item[0], item[1]))
    paid_count = sum(entry[0] for entry in by_tariff.values())
    return {
        "since": since_ms,
        "until": until_ms,
        "paid": [paid_count, sum(entry[1] for entry in by_tariff.values())],
        "refunded": [int(refund_row[0]), int(refund_row[1])],
        "by_tariff": by_tariff,
        "by_provider": by_provider,
        "tests": int(tests or 0),
        "events": events[:LINES_SHOWN],
        "more": max(0, paid_count + int(refund_row[0]) - LINES_SHOWN),
    }
