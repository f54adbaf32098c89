"""Provider payment rows: one per Click attempt or Payme transaction."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.database import Database
from db.prepared import Prepared, as_mapping, row_update, run_together
from db.schema import payments


@dataclass(frozen=True)
class Payment:
    id: int
    provider: str
    provider_id: str
    order_id: int
    amount: int
    state: str  # pending | paid | cancelled | refunded
    test: bool
    click_paydoc_id: int | None
    click_sign_time: str | None
    payme_time: int | None
    create_time: int
    perform_time: int | None
    cancel_time: int | None
    cancel_reason: int | None
    cancel_note: str | None
    granted_days: int | None
    fiscal_data: dict[str, Any] | None


def payment_from_row(row: object, prefix: str = "") -> Payment:
    """A payment from a Core row or a mapping (db/prepared.py); `prefix`: the columns'
    labels in a join (`payments_`)."""
    mapping = as_mapping(row)
    return Payment(**{name: mapping[prefix + name] for name in Payment.__dataclass_fields__})


_BY_ID = Prepared(select(payments).where(payments.c.id == bindparam("payment_id")))
_BY_PROVIDER_ID = Prepared(
    select(payments).where(
        payments.c.provider == bindparam("provider"),
        payments.c.provider_id == bindparam("provider_id"),
    )
)


async def get_payment(conn: AsyncConnection, payment_id: int) -> Payment | None:
    row = await _BY_ID.one_or_none(conn, payment_id=payment_id)
    return payment_from_row(row) if row else None


async def find_payment(conn: AsyncConnection, provider: str, provider_id: str) -> Payment | None:
    row = await _BY_PROVIDER_ID.one_or_none(conn, provider=provider, provider_id=provider_id)
    return payment_from_row(row) if row else None


async def glance_payment(db: Database, provider: str, provider_id: str) -> Payment | None:
    """`find_payment` on a snapshot of its own (`Database.glance`: one round trip)."""
    rows = await db.glance(_BY_PROVIDER_ID, provider=provider, provider_id=provider_id)
    return payment_from_row(rows[0]) if rows else None


async def update_payment(conn: AsyncConnection, payment_id: int, **values: Any) -> None:
    await run_together(conn, row_update(payments, payment_id, **values))


async def insert_once(conn: AsyncConnection, **values: Any) -> Payment | None:
    """Insert a provider payment row, or return None if its (provider, provider_id)
    exists already. `ON CONFLICT DO NOTHING` instead of a savepoint: one round trip,
    and the transaction stays usable for re-reading the existing row."""
    row = await _insert_once(tuple(sorted(values))).one_or_none(conn, **values)
    return payment_from_row(row) if row else None


@cache
def _insert_once(columns: tuple[str, ...]) -> Prepared:
    return Prepared(
        lambda dialect: (
            dialect.insert(payments)
            .values({column: bindparam(column) for column in columns})
            .on_conflict_do_nothing(index_elements=[payments.c.provider, payments.c.provider_id])
            .returning(*payments.c)
        )
    )
