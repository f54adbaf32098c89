"""Read-only queries behind the admin console: search, totals, details, statistics, export.

Search terms become indexed lookups: each free term (a number, an id, an order prefix)
is resolved to payment ids through a UNION of lookups that each hit one index, so a
million payments are searched without a scan on both SQLite and PostgreSQL. Pages are
cut by a keyset cursor `(create_time, id)`, never an offset, so a payment arriving while
the admin pages can neither repeat a row nor push one out of sight. The header's totals
of a search that may match most payments add up per-day sums that triggers keep exact
(migration 0013_search_speed), not the payments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    column,
    false,
    func,
    literal,
    or_,
    select,
    table,
    true,
    tuple_,
    union,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from db.clock import TASHKENT_OFFSET_MS, to_datetime
from db.ledger import DAY_MS
from db.orders import order_id_from_code
from db.schema import orders, orders_paid_twice, payment_day_sums, payments, users

MAX_BIGINT = 2**63 - 1
MAX_AMOUNT_SOM = 10**12  # a bare number above this cannot be an amount
# SQLite's FTS5 trigram index of the buyers' names (migration 0013): rowid is users.id.
NAME_TRIGRAMS = table("users_name_trigrams", column("rowid"), column("users_name_trigrams"))


@dataclass(frozen=True)
class Filters:
    """A parsed admin search; every part narrows the result (terms combine with AND)."""

    terms: tuple[str, ...] = ()  # provider id, order id (prefix), name part; numbers more
    amounts: tuple[int, ...] = ()  # tiyin, written as an amount ("15 000", "15000 so'm")
    usernames: tuple[str, ...] = ()  # without @, any case
    states: frozenset[str] = frozenset()
    providers: frozenset[str] = frozenset()
    tariffs: frozenset[str] = frozenset()
    created_from_ms: int | None = None  # inclusive
    created_to_ms: int | None = None  # exclusive
    test: bool = False  # only test payments (otherwise listed, marked, and not counted)
    double: bool = False  # only payments of orders paid more than once
    user_id: int | None = None  # exactly one buyer (the card's "their payments")
    real_only: bool = False  # leave test payments out (exports, unless `test` is asked)
    # What `resolve` made of the free terms: ids, or else name parts (words) and amounts.
    id_terms: tuple[str, ...] = ()
    name_terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cursor:
    """A row's place in the newest-first order: what a page button carries."""

    create_time: int
    id: int


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

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.create_time, self.id)


@dataclass(frozen=True)
class Totals:
    """Count and sums of every match; test payments only when the search asks for them."""

    count: int
    paid: int  # tiyin
    refunded: int  # tiyin
    test_count: int  # test payments among the matches, left out of the figures above


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


def _joined(*columns: Any) -> Select[Any]:
    return (
        select(*(columns or COLUMNS))
        .select_from(payments)
        .join(orders, orders.c.id == payments.c.order_id)
        .join(users, users.c.id == orders.c.user_id)
    )


def _line(row: Any) -> PaymentLine:
    return PaymentLine(**dict(row._mapping))


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _name_contains(word: str, postgres: bool) -> ColumnElement[bool]:
    """A case-insensitive part of the buyer's name.

    PostgreSQL's ILIKE folds every alphabet (and uses the trigram index of migration
    0013 when the server has pg_trgm). On SQLite a word of three letters or more is a
    phrase of the FTS5 trigram table, which folds every alphabet too; a shorter one has
    no trigram, and SQLite's LIKE folds only ASCII, so the word is also tried lower-,
    upper- and title-cased: `ал` finds `Алиса`.
    """
    if postgres:
        return users.c.first_name.ilike(_like_pattern(word), escape="\\")
    if len(word) >= 3:
        phrase = '"' + word.replace('"', '""') + '"'
        found = select(NAME_TRIGRAMS.c.rowid).where(
            NAME_TRIGRAMS.c.users_name_trigrams.op("MATCH")(phrase)
        )
        return users.c.id.in_(found)
    variants = sorted({word, word.lower(), word.upper(), word.capitalize(), word.title()})
    return or_(*(users.c.first_name.like(_like_pattern(v), escape="\\") for v in variants))


def _number(term: str) -> int | None:
    return int(term) if term.isascii() and term.isdigit() and int(term) <= MAX_BIGINT else None


def _id_branches(term: str) -> Any:
    """Payment ids a free word names as an id of any kind (a provider id, an order id or
    its start, the order's short code, a Click paydoc id, a user id), each branch one
    indexed lookup."""
    branches = [
        select(payments.c.id).where(payments.c.provider_id == term),
        select(payments.c.id)
        .join(orders, orders.c.id == payments.c.order_id)
        .where(orders.c.merchant_trans_id >= term, orders.c.merchant_trans_id < term + "\uffff"),
    ]
    # The short number a buyer quotes, always with its "#": without it most five-letter
    # names would also read as some order's code.
    order_id = order_id_from_code(term) if term.startswith("#") else None
    if order_id is not None:
        branches.append(select(payments.c.id).where(payments.c.order_id == order_id))
    number = _number(term)
    if number is not None:
        branches.append(select(payments.c.id).where(payments.c.click_paydoc_id == number))
        branches.append(
            select(payments.c.id)
            .join(orders, orders.c.id == payments.c.order_id)
            .where(orders.c.user_id == number)
        )
    return union(*branches)


async def resolve(conn: AsyncConnection, filters: Filters) -> Filters:
    """Decide what each free word is, with one cheap indexed probe per word.

    A word that names some id (of a payment, an order, a user) means that id; otherwise a
    number is an amount in so'm and a word a part of the buyer's name. Deciding first
    keeps every search one indexed plan: an `OR` of "an id, or an amount, or a name"
    would make both databases scan every payment.
    """
    if not filters.terms:
        return filters
    id_terms, name_terms, amounts = [], [], list(filters.amounts)
    for term in filters.terms:
        probe = select(literal(1)).select_from(_id_branches(term).subquery()).limit(1)
        number = _number(term)
        if await conn.scalar(probe) is not None:
            id_terms.append(term)
        elif number is not None and number <= MAX_AMOUNT_SOM:
            amounts.append(number * 100)
        else:
            name_terms.append(term)
    return replace(
        filters,
        terms=(),
        id_terms=(*filters.id_terms, *id_terms),
        name_terms=(*filters.name_terms, *name_terms),
        amounts=tuple(amounts),
    )


def _needs_orders(filters: Filters) -> bool:
    return bool(
        filters.tariffs or filters.name_terms or filters.usernames or filters.user_id is not None
    )


def _where(query: Select[Any], filters: Filters, postgres: bool, walking: bool) -> Select[Any]:
    """`walking`: the query walks the newest payments for one page (see the states)."""
    assert not filters.terms, "resolve() the free terms first"
    for term in filters.id_terms:
        query = query.where(payments.c.id.in_(_id_branches(term)))
    for word in filters.name_terms:
        named = select(users.c.id).where(_name_contains(word, postgres))
        query = query.where(orders.c.user_id.in_(named))
    # An amount is shared by many payments: its index helps only when nothing narrower
    # (a person, an id) is asked for; otherwise `+ 0` keeps the planners on that.
    narrower = filters.id_terms or filters.name_terms or filters.usernames or filters.user_id
    for amount in filters.amounts:
        query = query.where((payments.c.amount + 0 if narrower else payments.c.amount) == amount)
    for username in filters.usernames:
        handle = select(users.c.id).where(func.lower(users.c.username) == username.lower())
        query = query.where(orders.c.user_id.in_(handle))
    if filters.user_id is not None:
        query = query.where(orders.c.user_id == filters.user_id)

    # States, providers and tariffs match a large share of all rows: walking the newest
    # payments and checking them finds a page at once, while an index on them would make
    # the database collect and sort every match. On SQLite `|| ''` keeps the planner off
    # those indexes (the state index would otherwise be chosen). Not on PostgreSQL: there
    # it hides how many rows match, the planner then expects a handful, reads the whole
    # creation-time index in parallel workers and pays their start (20 ms a page); with
    # the columns' statistics it walks the newest payments by itself. Totals read every
    # match anyway, so there the index is welcome.
    def plain(column: Any) -> Any:
        return column + "" if walking and not postgres else column

    if filters.states:
        query = query.where(plain(payments.c.state).in_(sorted(filters.states)))
    if filters.providers:
        query = query.where(plain(payments.c.provider).in_(sorted(filters.providers)))
    if filters.tariffs:
        query = query.where(plain(orders.c.tariff).in_(sorted(filters.tariffs)))
    if filters.created_from_ms is not None:
        query = query.where(payments.c.create_time >= filters.created_from_ms)
    if filters.created_to_ms is not None:
        query = query.where(payments.c.create_time < filters.created_to_ms)
    if filters.test:
        query = query.where(payments.c.test == true())
    elif filters.real_only:
        query = query.where(payments.c.test == false())
    if filters.double:  # the trigger-kept list of orders paid twice (migration 0013)
        query = query.where(payments.c.order_id.in_(select(orders_paid_twice.c.order_id)))
    return query


def _is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def search(
    conn: AsyncConnection,
    filters: Filters,
    limit: int,
    *,
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
    at_or_older: Cursor | None = None,
) -> list[PaymentLine]:
    """One page, newest first, cut at a cursor (at most one of the three is given).

    `newer_than` walks the other way (the ◀ button) and returns the page in the usual
    newest-first order.
    """
    filters = await resolve(conn, filters)
    # `double` names a few orders among a million payments, maybe none: the page starts
    # from their list and sorts what they paid. `+ 0` keeps both planners from walking
    # the creation-time index instead, which reads every payment when no order was paid
    # twice.
    created = payments.c.create_time + 0 if filters.double else payments.c.create_time
    key = tuple_(created, payments.c.id)
    # The page's ids first, from the payments (and orders only if filtered on), then the
    # details of those few rows: a planner that expects many matches would otherwise join
    # every order by hash before it cuts the page.
    source: Any = payments
    if _needs_orders(filters):
        source = payments.join(orders, orders.c.id == payments.c.order_id)
    page = _where(select(payments.c.id).select_from(source), filters, _is_postgres(conn), True)
    if older_than is not None:
        page = page.where(key < tuple_(literal(older_than.create_time), literal(older_than.id)))
    if at_or_older is not None:
        page = page.where(key <= tuple_(literal(at_or_older.create_time), literal(at_or_older.id)))
    if newer_than is not None:
        page = page.where(key > tuple_(literal(newer_than.create_time), literal(newer_than.id)))
        page = page.order_by(created, payments.c.id)
    else:
        page = page.order_by(created.desc(), payments.c.id.desc())
    ids = list((await conn.execute(page.limit(limit))).scalars())
    if not ids:
        return []
    rows = await conn.execute(_joined().where(payments.c.id.in_(ids)))
    lines = sorted((_line(row) for row in rows), key=lambda line: (line.create_time, line.id))
    return lines[::-1]  # newest first, whichever way the page was cut


def _figures(row_count: Any, row_sum: Any, state: Any, test: Any, only_tests: bool) -> list[Any]:
    """The header's four figures over rows that each stand for `row_count` payments
    summing to `row_sum`: payments themselves (1, amount) or per-day sums."""
    counted = true() if only_tests else test == false()

    def total(condition: ColumnElement[bool], value: Any) -> Any:
        return func.coalesce(func.sum(case((condition, value))), 0)

    return [
        total(counted, row_count),
        total(and_(counted, state == "paid"), row_sum),
        total(and_(counted, state == "refunded"), row_sum),
        total(test == true(), row_count),
    ]


def _summed_days(filters: Filters) -> tuple[int | None, int | None] | None:
    """The [first, end) Tashkent days of a search the per-day sums can answer, or None.

    They know a payment's day, provider, state, tariff, test flag and amount; any other
    word (an id, a person, `double`) or a bound inside a day needs the payments."""
    if filters.id_terms or filters.name_terms or filters.usernames or filters.double:
        return None
    if filters.user_id is not None:
        return None
    days: list[int | None] = []
    for bound in (filters.created_from_ms, filters.created_to_ms):
        if bound is not None and (bound + TASHKENT_OFFSET_MS) % DAY_MS:
            return None
        days.append(None if bound is None else (bound + TASHKENT_OFFSET_MS) // DAY_MS)
    return days[0], days[1]


def _from_day_sums(filters: Filters, first: int | None, end: int | None) -> Select[Any]:
    sums = payment_day_sums
    query = select(
        *_figures(
            sums.c.count, sums.c.count * sums.c.amount, sums.c.state, sums.c.test, filters.test
        )
    )
    if filters.states:
        query = query.where(sums.c.state.in_(sorted(filters.states)))
    if filters.providers:
        query = query.where(sums.c.provider.in_(sorted(filters.providers)))
    if filters.tariffs:
        query = query.where(sums.c.tariff.in_(sorted(filters.tariffs)))
    for amount in filters.amounts:
        query = query.where(sums.c.amount == amount)
    if first is not None:
        query = query.where(sums.c.day >= first)
    if end is not None:
        query = query.where(sums.c.day < end)
    if filters.test:
        query = query.where(sums.c.test == true())
    elif filters.real_only:
        query = query.where(sums.c.test == false())
    return query


def _from_payments(filters: Filters, postgres: bool) -> Select[Any]:
    source: Any = payments
    if _needs_orders(filters):  # no join the figures do not need
        source = payments.join(orders, orders.c.id == payments.c.order_id)
    return _where(
        select(
            *_figures(
                literal(1), payments.c.amount, payments.c.state, payments.c.test, filters.test
            )
        ).select_from(source),
        filters,
        postgres,
        # Within a date range the creation-time index is the narrow one: keep the planners
        # off the state and provider indexes there too.
        walking=filters.created_from_ms is not None,
    )


async def totals(conn: AsyncConnection, filters: Filters) -> Totals:
    """The header of a search: every match counted and summed, not just one page.

    A search made only of states, providers, tariffs, amounts, whole days and `test` may
    match most of a million payments: it adds up the per-day sums instead (a few
    thousand rows, exact: triggers keep them in the payment's own transaction)."""
    filters = await resolve(conn, filters)
    days = _summed_days(filters)
    if days is not None:
        query = _from_day_sums(filters, *days)
    else:
        query = _from_payments(filters, _is_postgres(conn))
    count, paid, refunded, tests = (await conn.execute(query)).one()
    return Totals(int(count), int(paid), int(refunded), 0 if filters.test else int(tests))


async def payment_line(conn: AsyncConnection, payment_id: int) -> PaymentLine | None:
    row = (await conn.execute(_joined().where(payments.c.id == payment_id))).one_or_none()
    return _line(row) if row else None


async def stream_lines(
    conn: AsyncConnection, filters: Filters, batch: int = 1000
) -> AsyncIterator[PaymentLine]:
    """All matching payments, oldest first, fetched in batches (never all in memory)."""
    filters = await resolve(conn, filters)
    query = _where(_joined(), filters, _is_postgres(conn), walking=False).order_by(payments.c.id)
    result = await conn.stream(query.execution_options(yield_per=batch))
    async for row in result:
        yield _line(row)


@dataclass(frozen=True)
class Figure:
    """A count of payments (or orders) and their sum in tiyin."""

    count: int = 0
    amount: int = 0


@dataclass(frozen=True)
class PeriodFigures:
    """What /stats shows for one period; test payments are never in it."""

    kept: Figure  # performed in the period and not refunded since
    by_provider: dict[str, Figure]
    by_tariff: dict[str, Figure]
    refunds: Figure  # refunded in the period
    pending_orders: int  # made in the period and still waiting for money


def _kept_between(start_ms: int, end_ms: int) -> ColumnElement[bool]:
    """Money kept from real payments performed in [start, end): what /stats and its
    chart both count as revenue, so their figures always agree."""
    return and_(
        payments.c.state == "paid",
        payments.c.test == false(),
        payments.c.perform_time >= start_ms,
        payments.c.perform_time < end_ms,
    )


async def period_figures(conn: AsyncConnection, start_ms: int, end_ms: int) -> PeriodFigures:
    kept_query = (
        select(payments.c.provider, orders.c.tariff, func.count(), func.sum(payments.c.amount))
        .join(orders, orders.c.id == payments.c.order_id)
        .where(_kept_between(start_ms, end_ms))
        .group_by(payments.c.provider, orders.c.tariff)
    )
    by_provider: dict[str, Figure] = {}
    by_tariff: dict[str, Figure] = {}
    rows: list[Any] = list(await conn.execute(kept_query))
    for provider, tariff, count, amount in rows:
        for split, key in ((by_provider, provider), (by_tariff, tariff)):
            old = split.get(key, Figure())
            split[key] = Figure(old.count + int(count), old.amount + int(amount))
    refunds_query = select(func.count(), func.coalesce(func.sum(payments.c.amount), 0)).where(
        payments.c.state == "refunded",
        payments.c.test == false(),
        payments.c.cancel_time >= start_ms,
        payments.c.cancel_time < end_ms,
    )
    refund_row: Any = (await conn.execute(refunds_query)).one()
    refund_count, refund_amount = refund_row
    pending = await conn.scalar(
        select(func.count()).where(
            orders.c.status == "pending",
            orders.c.created_at >= to_datetime(start_ms),
            orders.c.created_at < to_datetime(end_ms),
        )
    )
    kept = Figure(
        sum(f.count for f in by_provider.values()), sum(f.amount for f in by_provider.values())
    )
    return PeriodFigures(
        kept,
        by_provider,
        by_tariff,
        Figure(int(refund_count), int(refund_amount)),
        int(pending or 0),
    )


async def daily_by_tariff(
    conn: AsyncConnection, start_ms: int, end_ms: int, utc_offset_ms: int
) -> dict[tuple[int, str], int]:
    """Kept revenue per (local day number since the epoch, tariff), test payments out."""
    day = (payments.c.perform_time + utc_offset_ms) // 86_400_000
    query = (
        select(day, orders.c.tariff, func.sum(payments.c.amount))
        .join(orders, orders.c.id == payments.c.order_id)
        .where(_kept_between(start_ms, end_ms))
        .group_by(day, orders.c.tariff)
    )
    rows: list[Any] = list(await conn.execute(query))
    return {(int(row[0]), str(row[1])): int(row[2]) for row in rows}
