"""The engines, the transaction discipline and migrations on start.

SQLite needs two things the driver does not do by itself: WAL so readers and the single
writer coexist, and `BEGIN IMMEDIATE` so that a transaction takes the write lock when it
starts. Without the latter, two payment callbacks could both read "pending" and both
credit; with it, the first statement of the money path serializes them exactly as
`SELECT ... FOR UPDATE` does on PostgreSQL.

On SQLite, transactions and short reads run on the event loop's own thread
(db/sqlite_inloop.py): a payment's statements take microseconds each, and handing each one
to a driver thread and back cost more than SQLite itself. Long reads (`report()`) and
migrations keep a thread (aiosqlite). PostgreSQL has one engine (asyncpg) for all.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_

from db import sqlite_inloop
from db.prepared import Prepared

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# How long a unit of work may wait for the database (SQLite's writer, a pooled
# PostgreSQL connection, a row lock) before it fails. Well below the providers' patience,
# so a stuck database gives them the retryable -7 / -32400 while they still listen.
DEFAULT_WAIT_SECONDS = 5.0
DEFAULT_POOL_SIZE = 10
# Any fixed 64-bit number: the PostgreSQL advisory lock that makes migrations run once
# when several instances start together.
MIGRATION_LOCK_ID = 7_318_204_551
# Commits of the in-loop SQLite writer between two WAL checkpoints (on a thread). SQLite's
# own default is one per 1 000 pages written; a Click pair writes a few pages.
CHECKPOINT_EVERY = 200
# SQLite connections kept open for snapshots between reads; more may be open at a moment.
IDLE_READERS = 4
_TOPICS = "committed_topics"  # key in `Connection.info`: what this transaction announces


def announce_on_commit(conn: AsyncConnection, topic: str) -> None:
    """Tell this process's listeners of `topic` once the current transaction has committed.

    This is how an enqueued notice wakes the notifier at once instead of at its next poll,
    without `db` knowing who listens (and never before the row is visible to others).
    """
    conn.info.setdefault(_TOPICS, set()).add(topic)


class Database:
    """Owns the engines (on SQLite: in-loop, and aiosqlite for reports and migrations);
    every unit of work goes through `transaction()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        reports_engine: AsyncEngine | None = None,
    ) -> None:
        self.engine = engine  # transactions and short reads
        # Long reads and migrations: on SQLite on a thread (aiosqlite), so that they never
        # stop the loop that runs the in-loop connections (db/sqlite_inloop.py).
        self.reports_engine = reports_engine or engine
        self.wait_seconds = wait_seconds
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        # Every transaction here writes (BEGIN IMMEDIATE), and SQLite has one writer at a
        # time. Queueing them on a lock in this process keeps them first-come first-served;
        # left to SQLite, the losers poll in sleeps of up to 100 ms (p99 of seconds under
        # load). Other processes are still kept out by the database lock itself.
        self._writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._writer_since: float | None = None  # time.monotonic() the writer took its turn
        self._commits = 0
        self._writer_connection: AsyncConnection | None = None  # SQLite: see _sqlite_write
        self._idle_readers: list[AsyncConnection] = []  # SQLite: see _sqlite_read
        self._checkpoint: asyncio.Task[None] | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> Database:
        """The database object without touching the server: no connection is made until
        the first transaction, so an app can be built before its database is up."""
        if make_url(url).get_backend_name() == "sqlite":
            in_loop, on_thread = _sqlite_engines(url, wait_seconds)
            return cls(in_loop, wait_seconds, on_thread)
        return cls(_postgres_engine(url, wait_seconds, pool_size), wait_seconds)

    @classmethod
    async def connect(
        cls, url: str, *, migrate: bool = True, wait_seconds: float = DEFAULT_WAIT_SECONDS
    ) -> Database:
        database = cls.from_url(url, wait_seconds=wait_seconds)
        if migrate:
            await database.migrate()
        return database

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One atomic unit: commits on success, rolls back on any exception."""
        begin = self._sqlite_write if self.is_sqlite else self.engine.begin
        async with self._writer_turn(), begin() as connection:
            try:
                yield connection
            finally:
                # `info` outlives the checkout (it belongs to the pooled connection).
                topics: set[str] = connection.info.pop(_TOPICS, set())
        if self.is_sqlite:
            self._count_commit()
        for topic in topics:
            for callback in self._listeners.get(topic, ()):
                callback()

    @asynccontextmanager
    async def _sqlite_write(self) -> AsyncIterator[AsyncConnection]:
        """`BEGIN IMMEDIATE` … `COMMIT` on the writer's own connection, kept open.

        Only the holder of the writer's turn gets here, so one connection serves every
        write of the process. Checking one out of the pool and giving it back cost
        about 0.4 ms a transaction (the pool's reset, events, and a close that
        SQLAlchemy runs in a task of its own); this costs two statements. SQLAlchemy's
        own transaction, begun by the first Core statement, is committed with it.
        """
        connection = self._writer_connection
        if connection is None or connection.closed or connection.invalidated:
            connection = self._writer_connection = await self.engine.connect()
        raw = sqlite_inloop.driver_of(connection)
        assert raw is not None, "the SQLite writer's engine is the in-loop one"
        await raw.run("BEGIN IMMEDIATE")
        try:
            yield connection
            await connection.commit()
            await raw.end("COMMIT")
        except BaseException:
            await _rolled_back(connection, raw)  # or invalidated: the next one opens another
            raise

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        """On SQLite, wait for this process's writer lock; elsewhere, nothing to wait for."""
        if self._writer is None:
            yield
            return
        # Bounded like SQLite's own busy timeout: a writer that never comes back (say, a
        # nested transaction) or a long queue fails the waiting one instead of hanging it.
        async with asyncio.timeout(self.wait_seconds):
            await self._writer.acquire()
        self._writer_since = time.monotonic()
        try:
            yield
        finally:
            self._writer_since = None
            self._writer.release()

    def _count_commit(self) -> None:
        """Every `CHECKPOINT_EVERY` commits, copy the WAL into the database file on a
        thread. The in-loop writer never does it itself: a checkpoint writes and syncs
        pages (tens of milliseconds measured), which would stop every request meanwhile."""
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY or (self._checkpoint and not self._checkpoint.done()):
            return
        path = self.engine.url.database
        assert path, "an SQLite database here is always a file (settings refuse :memory:)"
        self._checkpoint = asyncio.create_task(asyncio.to_thread(_checkpoint_wal, path))

    def writer_held_seconds(self) -> float:
        """How long this process's SQLite writer has held its turn (0 when nobody does).

        A transaction that hangs (awaiting something that never comes) keeps every
        payment out; they fail after `wait_seconds`, and /health reports it with this."""
        if self._writer_since is None:
            return 0.0
        return time.monotonic() - self._writer_since

    def listen(self, topic: str, callback: Callable[[], None]) -> None:
        """Call `callback` after every commit that announced `topic` (this process only)."""
        self._listeners.setdefault(topic, []).append(callback)

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A read-only snapshot that takes no write lock (on SQLite a plain, deferred
        BEGIN outside the writer queue), for reads that take milliseconds: on SQLite it
        runs on the loop's thread, like the writer."""
        return self._sqlite_read() if self.is_sqlite else _snapshot(self.engine)

    @asynccontextmanager
    async def _sqlite_read(self) -> AsyncIterator[AsyncConnection]:
        """A deferred `BEGIN` … `ROLLBACK` on an in-loop connection kept between reads,
        for the same reason as `_sqlite_write`: the pool's checkout and return cost
        ten times the read. A write slipped in is rolled back at the end."""
        idle = self._idle_readers
        connection = idle.pop() if idle else await self.engine.connect()
        raw = sqlite_inloop.driver_of(connection)
        assert raw is not None, "SQLite's short reads run on the in-loop engine"
        try:
            await raw.run("BEGIN")  # deferred: no lock is taken before the first read
            yield connection
        finally:
            if await _rolled_back(connection, raw) and len(idle) < IDLE_READERS:
                idle.append(connection)
            elif not connection.invalidated:
                await connection.close()

    async def glance(self, statement: Prepared, **params: Any) -> list[Mapping[str, Any]]:
        """The rows of one `SELECT`, read on a snapshot of its own and under no lock: the
        read paths that answer from a single statement.

        On PostgreSQL it runs outside any transaction (autocommit: a statement is its
        own snapshot), one round trip where `read()` takes three (`BEGIN READ ONLY`,
        the statement, `ROLLBACK`). Only a `SELECT` is accepted, so nothing can commit
        here outside the writers' locks."""
        if not statement.reads_only:
            raise ValueError("Database.glance runs a SELECT only")
        if self.is_sqlite:
            async with self.read() as connection:
                return await statement.all(connection, **params)
        async with self.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            return await statement.all(autocommit, **params)

    def report(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """The same snapshot for reads that may take long (an export, /stats over a
        million payments): on SQLite it runs on a thread, and the loop serves meanwhile."""
        return _snapshot(self.reports_engine)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the schema to head, once even when several instances start together: on
        PostgreSQL under an advisory lock (a start that loses the race waits, then finds
        nothing to do); on SQLite the write lock of `BEGIN IMMEDIATE` does the same.

        A database already at head (every start but the first after a deploy) is told by
        one read, without importing Alembic: it would hold about 12 MiB for the life of
        the process to learn that there is nothing to do."""
        async with self.reports_engine.connect() as connection:
            if await connection.run_sync(_revision) == head_revision():
                return
        async with self.reports_engine.connect() as connection:
            if not self.is_sqlite:
                await connection.execute(
                    text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                await connection.commit()  # the lock is the session's; end the autobegin
            try:
                async with self._writer_turn(), connection.begin():
                    await connection.run_sync(_upgrade_to_head)
            finally:
                if not self.is_sqlite:
                    await connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                    )
                    await connection.commit()

    async def close(self) -> None:
        for connection in [self._writer_connection, *self._idle_readers]:
            if connection is not None:
                await connection.close()
        self._writer_connection, self._idle_readers = None, []
        if self._checkpoint is not None:
            await self._checkpoint
        if self.reports_engine is not self.engine:
            await self.reports_engine.dispose()
        await self.engine.dispose()


async def _rolled_back(connection: AsyncConnection, raw: sqlite_inloop.InLoopConnection) -> bool:
    """End a kept SQLite connection's transaction, SQLAlchemy's and the driver's. False
    when it could not be ended: the connection is then invalidated (closed, never handed
    out again), so a transaction left open cannot stop every later one."""
    try:
        await connection.rollback()
        await raw.end("ROLLBACK")
    except Exception:
        log.exception("an SQLite connection could not roll back; it is replaced")
        await connection.invalidate()
        return False
    return not connection.invalidated


@asynccontextmanager
async def _snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Read only for real: PostgreSQL refuses a write (`BEGIN READ ONLY`), and on both
    databases the snapshot ends in a rollback, so a write slipped in is never committed
    outside the writer's locks."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(read_only=True, postgresql_readonly=True)
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


def _postgres_engine(url: str, wait_seconds: float, pool_size: int) -> AsyncEngine:
    # A fixed budget: `pool_size` connections per instance and no overflow, so the
    # sum over instances stays under the server's max_connections (README); waiting
    # for one, or for a row lock, is bounded by `wait_seconds`.
    # No pool pre-ping: it cost three round trips (BEGIN, a ping, ROLLBACK) before
    # every transaction. A connection the server closed (restart, idle kill,
    # pg_terminate_backend) is known closed to asyncpg as soon as the loop has read
    # the socket's end, so checkout refuses it for free and the pool reconnects once.
    postgres = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=wait_seconds,
        pool_pre_ping=False,
        connect_args={
            "timeout": wait_seconds,
            "server_settings": {"lock_timeout": str(int(wait_seconds * 1000))},
        },
    )
    event.listen(postgres.sync_engine, "checkout", _refuse_closed_connection)
    return postgres


def _sqlite_engines(url: str, wait_seconds: float) -> tuple[AsyncEngine, AsyncEngine]:
    """The in-loop engine (db/sqlite_inloop.py: a statement costs no thread hand-off)
    for transactions and short reads, and aiosqlite's (each connection on a thread of
    its own) for long reads and migrations."""
    path = make_url(url).database
    assert path, "settings refuse an SQLite URL without a file"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    in_loop = create_async_engine(
        url,
        async_creator=lambda: sqlite_inloop.connect(path, wait_seconds),
        pool_size=5,
        max_overflow=10,
        pool_timeout=wait_seconds,
    )
    on_thread = create_async_engine(
        url, connect_args={"timeout": wait_seconds}, pool_size=5, max_overflow=10
    )
    for engine, busy_timeout_ms in ((in_loop, 0), (on_thread, int(wait_seconds * 1000))):
        event.listen(
            engine.sync_engine,
            "connect",
            partial(_sqlite_on_connect, busy_timeout_ms=busy_timeout_ms, patience=wait_seconds),
        )
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return in_loop, on_thread


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose server side is gone is replaced, not handed out.

    SQLAlchemy's documented way: `DisconnectionError` from a checkout listener makes the
    pool drop that connection and connect again (once, then the error propagates)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("pooled connection closed by the server")


def _sqlite_on_connect(
    dbapi_connection: Any, _record: Any, *, busy_timeout_ms: int, patience: float
) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (the
    # in-loop writer's connection is opened that way).
    if dbapi_connection.isolation_level is not None:
        dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    _switch_to_wal(cursor, patience)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _switch_to_wal(cursor: Any, patience: float) -> None:
    """`PRAGMA journal_mode=WAL`, tried again while SQLite says "database is locked".

    Two connections switching a new file at the same moment would each wait for the
    other, so SQLite answers one of them at once, without its busy timeout (seen when
    instances start together under load); the in-loop writer has no busy timeout at
    all. The switch is stored in the file: the retry finds WAL and needs no lock. The
    pause is the loop's (`await_`), not a blocking sleep, so a connection of this
    process that holds the lock can finish meanwhile.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        await_(asyncio.sleep(0.05))


def _checkpoint_wal(path: str) -> None:
    """Copy what the WAL holds into the database file, as far as no reader needs it."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _sqlite_on_begin(connection: Connection) -> None:
    if connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        return  # the writer's connection: `Database._sqlite_write` began it
    read_only = connection.get_execution_options().get("read_only", False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def head_revision() -> str:
    """The newest migration's id, read from the files: the one no other revises."""
    revisions, revised = set(), set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = script.read_text()
        revisions.update(re.findall(r"^revision = ['\"](\w+)['\"]", source, re.M))
        for line in re.findall(r"^down_revision = (.*)$", source, re.M):  # one id or a tuple
            revised.update(re.findall(r"['\"](\w+)['\"]", line))
    (head,) = revisions - revised
    return str(head)


def _revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade_to_head(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
