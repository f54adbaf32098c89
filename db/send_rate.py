"""Which instance sends the bot's notices: one at a time, chosen through the database.

Telegram's limit (about 30 messages a second) is the bot's, not an instance's. Each
instance paces its own sends exactly (`bot/workers/pacing.py`), so the simplest way to
keep N instances at one rate is that exactly one of them -- the *sender* -- delivers the
outbox, and the others stand by. Rate tokens in a table were the other choice: every few
sends a write to one hot row, slots drawn by one instance but not used lost to all, and
slot times carried between machines' clocks. The sender lock costs one cheap query a
second per instance and no table, and throughput does not suffer: the rate, not any one
instance, is the bottleneck.

- **PostgreSQL**: a session-level advisory lock taken on a dedicated connection (outside
  the pool, so one more connection per instance; the pool budget is untouched). The
  server releases it when that session ends, so a killed instance hands over as soon as
  its connection is gone. The holder re-checks the lock every `CHECK_SECONDS` (bounded by
  `CHECK_TIMEOUT_SECONDS`); a check that fails closes the connection (the lock is then
  surely gone) and the holder stops sending at once.
- **SQLite**: an exclusive `flock` on a file beside the database file (`<file>-sender`).
  Every process of one SQLite file runs on one machine; the kernel releases the lock when
  the process dies, and nothing can take it away while the process lives.

The hand-over window: a new holder waits `takeover_seconds` before its first send. The
previous holder's last send came before it released the lock or, on PostgreSQL, at most
`CHECK_SECONDS + CHECK_TIMEOUT_SECONDS` after it lost it unawares; one more second after
that, no one-second window can hold sends of both. This is what keeps the rate while an
old and a new instance overlap during a deploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from db.database import Database

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0  # how often the holder re-checks, and a standby tries to take over
CHECK_TIMEOUT_SECONDS = 1.0
WINDOW_SECONDS = 1.0  # Telegram counts messages per second
# Any fixed 64-bit number other than the migrations' (db/database.py).
SENDER_LOCK_ID = 7_318_204_552


class SenderLock(Protocol):
    """Held by at most one instance of the bot at a time."""

    takeover_seconds: float

    async def acquire(self) -> bool:
        """Try once, without waiting; True when this instance holds the lock now."""

    async def still_held(self) -> bool:
        """True while the lock is surely held; False (and released) otherwise."""

    async def release(self) -> None:
        """Give the lock up (idempotent)."""


def sender_lock_for(db: Database) -> SenderLock:
    """The lock that fits the database: an advisory lock, or a file beside SQLite's."""
    url = db.engine.url
    if db.is_sqlite:
        if not url.database or url.database == ":memory:":
            return ProcessLock()
        return FileLock(Path(url.database + "-sender"))
    return AdvisoryLock(url, db.wait_seconds)


class ProcessLock:
    """An in-memory database has one process: it is always the sender."""

    takeover_seconds = 0.0

    async def acquire(self) -> bool:
        return True

    async def still_held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class FileLock:
    """`flock` on a file beside the SQLite database; the kernel drops it with the process."""

    takeover_seconds = WINDOW_SECONDS

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # never blocks the event loop
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def still_held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor releases the flock


class AdvisoryLock:
    """A session-level PostgreSQL advisory lock on a connection of its own."""

    takeover_seconds = WINDOW_SECONDS + CHECK_SECONDS + CHECK_TIMEOUT_SECONDS

    def __init__(self, url: URL, connect_timeout: float) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        if self._conn is not None:
            return await self.still_held()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS + self.connect_timeout):
                if self._engine is None:
                    self._engine = create_async_engine(
                        self.url,
                        poolclass=NullPool,
                        connect_args={"timeout": self.connect_timeout},
                    )
                conn = await self._engine.connect()
                try:
                    taken = await conn.scalar(
                        text("SELECT pg_try_advisory_lock(:id)"), {"id": SENDER_LOCK_ID}
                    )
                    await conn.commit()  # the lock is the session's; end the autobegin
                except BaseException:
                    await _close_quietly(conn)
                    raise
        except Exception as error:
            log.warning("sender lock: cannot reach the database (%s); standing by", error)
            return False
        if not taken:
            await _close_quietly(conn)
            return False
        self._conn = conn
        return True

    async def still_held(self) -> bool:
        if self._conn is None:
            return False
        classid, objid = divmod(SENDER_LOCK_ID, 2**32)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                held = await self._conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND pid = pg_backend_pid() AND granted"
                        " AND classid = :classid AND objid = :objid AND objsubid = 1"
                    ),
                    {"classid": classid, "objid": objid},
                )
                await self._conn.commit()
        except Exception as error:
            log.warning("sender lock: the check failed (%s); giving the lock up", error)
            held = 0
        if not held:
            await self.release()
            return False
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close_quietly(conn)  # the session ends: the server drops the lock


async def _close_quietly(conn: AsyncConnection) -> None:
    """Close a connection that may be broken; if closing hangs or fails, invalidate it so
    the session is dropped rather than returned anywhere."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await conn.close()
    except Exception:
        with contextlib.suppress(Exception):
            await conn.invalidate()
