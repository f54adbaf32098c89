"""The users table: who they are, their language, their tariff, whether we can reach them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.prepared import Call, Prepared, as_mapping, run_together
from db.schema import users


@dataclass(frozen=True)
class User:
    id: int
    first_name: str
    username: str | None
    language: str | None
    tariff: str | None
    tariff_expires_at: datetime | None
    reachable: bool

    def active_tariff(self, now: datetime) -> str | None:
        if self.tariff and self.tariff_expires_at and self.tariff_expires_at > now:
            return self.tariff
        return None


def _user(row: object) -> User:
    mapping = as_mapping(row)
    return User(**{name: mapping[name] for name in User.__dataclass_fields__})


async def upsert_user(
    conn: AsyncConnection, user_id: int, first_name: str, username: str | None, now: datetime
) -> User:
    """Record a Telegram user (or refresh their name) in one statement, race-free."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(users).values(
        id=user_id, first_name=first_name[:256], username=username, created_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=[users.c.id],
        set_={"first_name": statement.excluded.first_name, "username": statement.excluded.username},
    ).returning(*users.c)
    return _user((await conn.execute(statement)).one())


_BY_ID = select(users).where(users.c.id == bindparam("user_id"))
_USER_BY_ID = (Prepared(_BY_ID), Prepared(_BY_ID.with_for_update()))  # (unlocked, locked)


async def get_user(conn: AsyncConnection, user_id: int, *, lock: bool = False) -> User | None:
    row = await _USER_BY_ID[lock].one_or_none(conn, user_id=user_id)
    return _user(row) if row else None


async def set_language(conn: AsyncConnection, user_id: int, language: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(language=language))


async def set_reachable(conn: AsyncConnection, user_id: int, reachable: bool) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(reachable=reachable))


_SET_TARIFF = Prepared(
    update(users)
    .where(users.c.id == bindparam("user_id"))
    .values(tariff=bindparam("tariff"), tariff_expires_at=bindparam("expires_at"))
)


def tariff_update(user_id: int, tariff: str | None, expires_at: datetime | None) -> Call:
    """The rewrite of the cached plan (db/ledger.py keeps it equal to the ledger's
    result), as a call to run (`db.prepared.run_together`)."""
    return _SET_TARIFF, {"user_id": user_id, "tariff": tariff, "expires_at": expires_at}


async def set_tariff(
    conn: AsyncConnection, user_id: int, tariff: str | None, expires_at: datetime | None
) -> None:
    await run_together(conn, tariff_update(user_id, tariff, expires_at))
