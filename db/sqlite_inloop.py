"""SQLite for transactions and short reads: the stdlib `sqlite3`, run on the loop's thread.

aiosqlite runs every statement on a thread of its own, and a statement crosses threads
three or four times (about 70 hand-offs per Click Prepare+Complete, as profiled). Inside
SQLite's single-writer section those hand-offs, not SQLite, set the pace: the loop and
the thread mostly wait for each other. These statements are point reads and writes that
take tens of microseconds, so here they run where the transaction's code runs, at once.

This is aiosqlite's surface that SQLAlchemy's aiosqlite dialect uses (its
`async_creator` takes `connect()`), so every transaction keeps its one definition in
SQLAlchemy Core for both databases.

What it must never do is sleep inside SQLite: the connection has no busy timeout, and a
"database is locked" (another process holds the writer) is retried between
`asyncio.sleep`s until the bound, so the loop keeps serving meanwhile. Nor does it
checkpoint the WAL on the loop: `wal_autocheckpoint` is off here and `Database` runs a
passive checkpoint on a worker thread now and then.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

# SQLite's own busy handler waits about this way (1, 2, 5, 10 … ms), capped lower here:
# a writer of another process holds the lock for a millisecond or two.
_BUSY_PAUSES = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025)


class InLoopConnection:
    """An `aiosqlite.Connection` look-alike whose coroutines finish without suspending,
    except to wait for another process's writer."""

    def __init__(self, connection: sqlite3.Connection, patience: float) -> None:
        self._conn = connection
        self._connection = connection  # the dialect checks it before commit/rollback
        self.patience = patience

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InLoopCursor:
        """Entered by the dialect (`async with`), as aiosqlite's is."""
        return InLoopCursor(self._conn.cursor(), self)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    async def run(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        """One statement straight on the stdlib connection (db/prepared.py, and the
        transactions `Database` begins itself), waited for as `when_free` does.

        A failure is raised as SQLAlchemy would raise it (`OperationalError`,
        `IntegrityError`…), so callers tell a database that is unavailable from a bug
        the same way whichever path ran the statement."""
        try:
            return await self.when_free(lambda: self._conn.execute(sql, parameters))
        except sqlite3.Error as error:
            raise DBAPIError.instance(sql, parameters, error, sqlite3.Error) from error

    async def end(self, sql: str) -> None:
        """`COMMIT` or `ROLLBACK` the transaction begun by `run("BEGIN …")`, if still open
        (SQLAlchemy ends it first when a Core statement ran)."""
        if self._conn.in_transaction:
            await self.run(sql)

    async def commit(self) -> None:
        await self.when_free(self._conn.commit)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def when_free(self, step: Callable[[], T]) -> T:
        """Run `step`, again after a pause each time SQLite answers that another
        connection holds the lock it needs, for at most `patience` seconds."""
        deadline = time.monotonic() + self.patience
        pauses = iter(_BUSY_PAUSES)
        while True:
            try:
                return step()
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(next(pauses, _BUSY_PAUSES[-1]))


class InLoopCursor:
    """An `aiosqlite.Cursor` look-alike over a stdlib cursor."""

    def __init__(self, cursor: sqlite3.Cursor, connection: InLoopConnection) -> None:
        self._cursor = cursor
        self._connection = connection
        self.arraysize = cursor.arraysize

    async def __aenter__(self) -> InLoopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InLoopCursor:
        await self._connection.when_free(lambda: self._cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> InLoopCursor:
        rows = list(rows)  # a retry must see them all again
        await self._connection.when_free(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


def driver_of(conn: AsyncConnection) -> InLoopConnection | None:
    """The in-loop connection under a SQLAlchemy connection, None for any other driver."""
    driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    return driver if isinstance(driver, InLoopConnection) else None


async def connect(database: str, patience: float) -> InLoopConnection:
    """Open an in-loop connection: no busy timeout (a wait must not block the loop),
    transactions begun by the caller (`BEGIN IMMEDIATE`), no automatic checkpoint."""
    connection = sqlite3.connect(database, timeout=0, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA wal_autocheckpoint=0")
    return InLoopConnection(connection, patience)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    message = str(error)
    return "database is locked" in message or "database is busy" in message
