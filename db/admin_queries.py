"""Read-only queries behind the admin console: search, details, statistics, export.

Search terms become indexed lookups: each free term (a number, an id, an order prefix)
is resolved to payment ids through a UNION of lookups that each hit one index, so a
million payments are searched without a scan on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from db.schema import orders, payments, users

MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True)
class Filters:
    """A parsed admin search; every part narrows the result (terms combine with AND)."""

    terms: tuple[str, ...] = ()  # user id, provider id, paydoc id or order id (prefix)
    usernames: tuple[str, ...] = ()
    states: frozenset[str] = frozenset()
    providers: frozenset[str] = frozenset()
    tariffs: frozenset[str] = frozenset()
    created_from_ms: int | None = None  # inclusive
    created_to_ms: int | None = None  # exclusive


@dataclass(frozen=True)
class PaymentLine:
    id: int
    provider: str
    provider_id: str
    click_paydoc_id: int | None
    amount: int
    state: str
    create_time: int
    perform_time: int | None
    cancel_time: int | None
    cancel_reason: int | None
    cancel_note: str | None
    granted_days: int | None
    test: bool
    merchant_trans_id: str
    order_status: str
    tariff: str
    user_id: int
    first_name: str
    username: str | None
    user_tariff: str | None = None
    user_tariff_expires_at: datetime | None = None


COLUMNS = (
    payments.c.id,
    payments.c.provider,
    payments.c.provider_id,
    payments.c.click_paydoc_id,
    payments.c.amount,
    payments.c.state,
    payments.c.create_time,
    payments.c.perform_time,
    payments.c.cancel_time,
    payments.c.cancel_reason,
    payments.c.cancel_note,
    payments.c.granted_days,
    payments.c.test,
    orders.c.merchant_trans_id,
    orders.c.status.label("order_status"),
    orders.c.tariff,
    orders.c.user_id,
    users.c.first_name,
    users.c.username,
    users.c.tariff.label("user_tariff"),
    users.c.tariff_expires_at.label("user_tariff_expires_at"),
)


def _joined() -> Select[Any]:
    return (
        select(*COLUMNS)
        .select_from(payments)
        .join(orders, orders.c.id == payments.c.order_id)
        .join(users, users.c.id == orders.c.user_id)
    )


def _line(row: Any) -> PaymentLine:
    return PaymentLine(**dict(row._mapping))


def _term_ids(term: str) -> Any:
    """Payment ids matching one free term, each branch an indexed lookup."""
    branches = [
        select(payments.c.id).where(payments.c.provider_id == term),
        select(payments.c.id)
        .join(orders, orders.c.id == payments.c.order_id)
        .where(orders.c.merchant_trans_id >= term, orders.c.merchant_trans_id < term + "\uffff"),
    ]
    if term.isascii() and term.isdigit() and int(term) <= MAX_BIGINT:
        number = int(term)
        branches.append(select(payments.c.id).where(payments.c.click_paydoc_id == number))
        branches.append(
            select(payments.c.id)
            .join(orders, orders.c.id == payments.c.order_id)
            .where(orders.c.user_id == number)
        )
    return union(*branches)


def _where(query: Select[Any], filters: Filters) -> Select[Any]:
    for term in filters.terms:
        query = query.where(payments.c.id.in_(_term_ids(term)))
    for username in filters.usernames:
        query = query.where(users.c.username == username)
    # States, providers and tariffs match a large share of all rows: walking the newest
    # payments and checking them finds a page at once, while an index on them would make
    # the database collect and sort every match. `|| ''` keeps the planners off those
    # indexes (on SQLite the state index would otherwise be chosen).
    if filters.states:
        query = query.where((payments.c.state + "").in_(sorted(filters.states)))
    if filters.providers:
        query = query.where((payments.c.provider + "").in_(sorted(filters.providers)))
    if filters.tariffs:
        query = query.where((orders.c.tariff + "").in_(sorted(filters.tariffs)))
    if filters.created_from_ms is not None:
        query = query.where(payments.c.create_time >= filters.created_from_ms)
    if filters.created_to_ms is not None:
        query = query.where(payments.c.create_time < filters.created_to_ms)
    return query


async def search(
    conn: AsyncConnection, filters: Filters, offset: int, limit: int
) -> list[PaymentLine]:
    """Newest first, along the creation-time index; one page and nothing else."""
    query = (
        _where(_joined(), filters)
        .order_by(payments.c.create_time.desc(), payments.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_line(row) for row in await conn.execute(query)]


async def payment_line(conn: AsyncConnection, payment_id: int) -> PaymentLine | None:
    row = (await conn.execute(_joined().where(payments.c.id == payment_id))).one_or_none()
    return _line(row) if row else None


async def stream_lines(
    conn: AsyncConnection, filters: Filters, batch: int = 1000
) -> AsyncIterator[PaymentLine]:
    """All matching payments, oldest first, fetched in batches (never all in memory)."""
    query = _where(_joined(), filters).order_by(payments.c.id)
    result = await conn.stream(query.execution_options(yield_per=batch))
    async for row in result:
        yield _line(row)


@dataclass(frozen=True)
class Revenue:
    total: int
    by_provider: dict[str, int]
    by_tariff: dict[str, int]


async def revenue(conn: AsyncConnection, since_ms: int) -> Revenue:
    """Money kept from payments performed since `since_ms` (refunded ones excluded)."""
    query = (
        select(payments.c.provider, orders.c.tariff, func.sum(payments.c.amount))
        .join(orders, orders.c.id == payments.c.order_id)
        .where(payments.c.state == "paid", payments.c.perform_time >= since_ms)
        .group_by(payments.c.provider, orders.c.tariff)
    )
    by_provider: dict[str, int] = {}
    by_tariff: dict[str, int] = {}
    for provider, tariff, amount in (await conn.execute(query)).tuples():
        by_provider[provider] = by_provider.get(provider, 0) + int(amount)
        by_tariff[tariff] = by_tariff.get(tariff, 0) + int(amount)
    return Revenue(sum(by_provider.values()), by_provider, by_tariff)


async def paying_users(conn: AsyncConnection, since_ms: int) -> int:
    query = (
        select(func.count(func.distinct(orders.c.user_id)))
        .select_from(payments)
        .join(orders, orders.c.id == payments.c.order_id)
        .where(payments.c.state == "paid", payments.c.perform_time >= since_ms)
    )
    return int(await conn.scalar(query) or 0)


async def active_subscribers(conn: AsyncConnection, now: datetime) -> dict[str, int]:
    query = (
        select(users.c.tariff, func.count())
        .where(users.c.tariff_expires_at > now, users.c.tariff.is_not(None))
        .group_by(users.c.tariff)
    )
    rows = (await conn.execute(query)).tuples()
    return {str(tariff): int(count) for tariff, count in rows}


async def daily_revenue(conn: AsyncConnection, since_ms: int, utc_offset_ms: int) -> dict[int, int]:
    """Kept revenue per local day (days since the epoch, shifted by `utc_offset_ms`)."""
    day = (payments.c.perform_time + utc_offset_ms) // 86_400_000
    query = (
        select(day, func.sum(payments.c.amount))
        .where(payments.c.state == "paid", payments.c.perform_time >= since_ms)
        .group_by(day)
    )
    rows = (await conn.execute(query)).tuples()
    return {int(number): int(amount) for number, amount in rows}
