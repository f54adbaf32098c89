"""The shop edited from the chat: admins' overrides of tariffs.toml and every change's log.

A change asked for with /shop is a `pending` row of `shop_changes`; its Confirm and
Cancel buttons carry only the row's id, so any instance can decide it and nothing lives
in one process's memory. Deciding is one conditional UPDATE (`... WHERE status =
'pending'`), so of two taps exactly one applies it. A change applies only if the field
still holds the value the admin saw: a change confirmed after another one to the same
field is `outdated`, never a silent overwrite.

Orders snapshot price and days when they are made (db/orders.py), so a change here
reaches new orders only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.schema import shop_changes, tariff_overrides, users
from db.tariffs import Tariff, TariffOverride, with_overrides

# The value of a field: tiyin or days (int), hidden (bool), a title (str), feature lines.
Value = int | bool | str | list[str]


class Field(StrEnum):
    PRICE = "price"
    DAYS = "days"
    HIDDEN = "hidden"
    TITLE = "title"  # per language
    FEATURES = "features"  # per language


class Status(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    CANCELLED = "cancelled"
    OUTDATED = "outdated"  # the field had changed meanwhile: nothing applied


@dataclass(frozen=True)
class Change:
    id: int
    admin_id: int
    tariff: str
    field: Field
    language: str | None
    before: Value
    after: Value
    status: Status
    created_at: datetime
    decided_at: datetime | None
    admin_name: str | None = None  # the history's "who", when read with it


def _change(row: Any) -> Change:
    return Change(
        id=row.id,
        admin_id=row.admin_id,
        tariff=row.tariff,
        field=Field(row.field),
        language=row.language,
        before=row.value_before,
        after=row.value_after,
        status=Status(row.status),
        created_at=row.created_at,
        decided_at=row.decided_at,
        admin_name=getattr(row, "first_name", None),
    )


def _override(row: Any) -> TariffOverride:
    return TariffOverride(
        code=row.code,
        price=row.price,
        days=row.days,
        hidden=bool(row.hidden),
        titles=dict(row.titles),
        features={language: tuple(lines) for language, lines in row.features.items()},
    )


async def load_overrides(conn: AsyncConnection) -> dict[str, TariffOverride]:
    """Every override: one primary-key table of a row per changed tariff (a handful)."""
    rows = await conn.execute(select(tariff_overrides))
    return {row.code: _override(row) for row in rows}


def current_value(
    catalogue: Mapping[str, Tariff],
    overrides: Mapping[str, TariffOverride],
    code: str,
    field: Field,
    language: str | None,
) -> Value:
    """What buyers are offered now for one field (in `language` for title and features)."""
    tariff = with_overrides(catalogue, overrides, language or "en")[code]
    if field is Field.PRICE:
        return tariff.price
    if field is Field.DAYS:
        return tariff.days
    if field is Field.HIDDEN:
        return code in overrides and overrides[code].hidden
    if field is Field.TITLE:
        return tariff.title
    return list(tariff.features.get(language or "en", ()))


async def propose(
    conn: AsyncConnection,
    admin_id: int,
    code: str,
    field: Field,
    language: str | None,
    before: Value,
    after: Value,
    now: datetime,
) -> Change:
    """Record a change an admin asked for; nothing is applied until it is confirmed."""
    row = (
        await conn.execute(
            shop_changes.insert()
            .values(
                admin_id=admin_id,
                tariff=code,
                field=field.value,
                language=language,
                value_before=before,
                value_after=after,
                status=Status.PENDING.value,
                created_at=now,
            )
            .returning(*shop_changes.c)
        )
    ).one()
    return _change(row)


async def get_change(conn: AsyncConnection, change_id: int) -> Change | None:
    row = (
        await conn.execute(select(shop_changes).where(shop_changes.c.id == change_id))
    ).one_or_none()
    return _change(row) if row else None


@dataclass(frozen=True)
class Decision:
    change: Change
    decided_now: bool  # False: decided before (a second tap, another admin, another instance)


async def decide(
    conn: AsyncConnection,
    change_id: int,
    admin_id: int,
    confirm: bool,
    catalogue: Mapping[str, Tariff],
    now: datetime,
) -> Decision | None:
    """Apply (`confirm`) or cancel a pending change, once; None for an unknown id.

    Call inside one transaction: the claim, the check of the field and the write commit
    together. The tariff's override row is locked before it is read (PostgreSQL; SQLite's
    single writer does the same), so two changes of one field cannot both apply."""
    status = Status.APPLIED if confirm else Status.CANCELLED
    claimed = (
        await conn.execute(
            update(shop_changes)
            .where(shop_changes.c.id == change_id, shop_changes.c.status == Status.PENDING.value)
            .values(status=status.value, admin_id=admin_id, decided_at=now)
            .returning(*shop_changes.c)
        )
    ).one_or_none()
    if claimed is None:
        change = await get_change(conn, change_id)
        return Decision(change, False) if change else None
    change = _change(claimed)
    if not confirm:
        return Decision(change, True)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(tariff_overrides)
        .values(code=change.tariff, titles={}, features={}, updated_at=now)
        .on_conflict_do_nothing(index_elements=[tariff_overrides.c.code])
    )
    await conn.execute(
        select(tariff_overrides.c.code)
        .where(tariff_overrides.c.code == change.tariff)
        .with_for_update()
    )
    overrides = await load_overrides(conn)
    now_value = current_value(catalogue, overrides, change.tariff, change.field, change.language)
    if now_value != change.before:
        await conn.execute(
            update(shop_changes)
            .where(shop_changes.c.id == change.id)
            .values(status=Status.OUTDATED.value)
        )
        return Decision(replace(change, status=Status.OUTDATED), True)
    await conn.execute(
        update(tariff_overrides)
        .where(tariff_overrides.c.code == change.tariff)
        .values(updated_at=now, **_column_values(overrides[change.tariff], change))
    )
    return Decision(change, True)


def _column_values(current: TariffOverride, change: Change) -> dict[str, object]:
    if change.field is Field.TITLE:
        return {"titles": {**current.titles, str(change.language): change.after}}
    if change.field is Field.FEATURES:
        features = {language: list(lines) for language, lines in current.features.items()}
        return {"features": {**features, str(change.language): change.after}}
    return {change.field.value: change.after}


async def history(conn: AsyncConnection, older_than: int, limit: int) -> list[Change]:
    """Applied changes, newest first, with the admin's name; `older_than` 0 for the
    newest page, else the last id of the page before (a keyset: new changes never shift
    the pages)."""
    query = (
        select(shop_changes, users.c.first_name)
        .outerjoin(users, users.c.id == shop_changes.c.admin_id)
        .where(shop_changes.c.status == Status.APPLIED.value)
        .order_by(shop_changes.c.id.desc())
        .limit(limit)
    )
    if older_than:
        query = query.where(shop_changes.c.id < older_than)
    return [_change(row) for row in await conn.execute(query)]
