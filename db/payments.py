"""Provider payment rows: one per Click attempt or Payme transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

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


def payment_from_row(row: object) -> Payment:
    mapping = row._mapping  # type: ignore[attr-defined]
    return Payment(**{name: mapping[name] for name in Payment.__dataclass_fields__})


async def get_payment(conn: AsyncConnection, payment_id: int) -> Payment | None:
    row = (await conn.execute(select(payments).where(payments.c.id == payment_id))).one_or_none()
    return payment_from_row(row) if row else None


async def find_payment(conn: AsyncConnection, provider: str, provider_id: str) -> Payment | None:
    query = select(payments).where(
        payments.c.provider == provider, payments.c.provider_id == provider_id
    )
    row = (await conn.execute(query)).one_or_none()
    return payment_from_row(row) if row else None


async def update_payment(conn: AsyncConnection, payment_id: int, **values: Any) -> None:
    await conn.execute(update(payments).where(payments.c.id == payment_id).values(**values))


async def insert_once(conn: AsyncConnection, **values: Any) -> Payment | None:
    """Insert a provider payment row, or return None if its (provider, provider_id)
    exists already. `ON CONFLICT DO NOTHING` instead of a savepoint: one round trip,
    and the transaction stays usable for re-reading the existing row."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(payments)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[payments.c.provider, payments.c.provider_id])
        .returning(*payments.c)
    )
    row = (await conn.execute(statement)).one_or_none()
    return payment_from_row(row) if row else None
