"""The in-loop SQLite writer (db/sqlite_inloop.py) never stops the event loop: it waits
for another process's writer between `asyncio.sleep`s, within the bound, and leaves the
WAL's checkpoints to a thread."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from db.database import CHECKPOINT_EVERY, Database

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WAIT = 2.0


async def scratch_database(database_url: str, wait_seconds: float) -> Database:
    database = await Database.connect(database_url, wait_seconds=wait_seconds)
    async with database.transaction() as conn:
        await conn.execute(text("CREATE TABLE scratch (n INTEGER)"))
    return database


@contextmanager
def writer_elsewhere(path: str, seconds: float) -> Iterator[threading.Event]:
    """Another connection (as another instance's would be) holds the write lock for
    `seconds`, on a thread of its own; the event is set once it holds it."""
    holding = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        holding.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        yield holding
    finally:
        thread.join()


def file_size(path: str) -> int:
    """The database file's size: it grows only when a checkpoint copies the WAL in."""
    return os.path.getsize(path)


@asynccontextmanager
async def longest_loop_stall() -> AsyncIterator[list[float]]:
    """Measures the longest gap between ticks of the loop inside the block."""
    stalls = [0.0]
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.monotonic()
            stalls[0] = max(stalls[0], now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)  # the ticker has started
    try:
        yield stalls
    finally:
        done.set()
        await ticker


async def test_a_busy_database_is_waited_for_without_stopping_the_loop(database_url: str) -> None:
    database = await scratch_database(database_url, WAIT)
    path = str(make_url(database_url).database)
    try:
        with writer_elsewhere(path, 0.6) as holding:
            await asyncio.to_thread(holding.wait)
            started = time.monotonic()
            async with longest_loop_stall() as stalls, database.transaction() as conn:
                await conn.execute(text("INSERT INTO scratch VALUES (1)"))
        assert 0.4 < time.monotonic() - started < WAIT  # it did wait for the other writer
        assert stalls[0] < 0.2, f"the loop stood still for {stalls[0]:.3f} s"
        async with database.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM scratch"))).scalar() == 1
    finally:
        await database.close()


async def test_a_writer_held_past_the_bound_fails_the_transaction(database_url: str) -> None:
    database = await scratch_database(database_url, 0.5)
    path = str(make_url(database_url).database)
    try:
        with writer_elsewhere(path, 1.5) as holding:
            await asyncio.to_thread(holding.wait)
            started = time.monotonic()
            with pytest.raises(OperationalError, match="database is locked"):
                async with database.transaction() as conn:
                    await conn.execute(text("INSERT INTO scratch VALUES (1)"))
            assert time.monotonic() - started < 1.2
        async with database.transaction() as conn:  # free again: the writer works
            await conn.execute(text("INSERT INTO scratch VALUES (2)"))
    finally:
        await database.close()


async def test_the_wal_is_checkpointed_on_a_thread_every_so_many_commits(
    database_url: str,
) -> None:
    database = await Database.connect(database_url)
    path = str(make_url(database_url).database)
    page = b"x" * 40_000  # ten pages a commit: SQLite's own checkpoint would run at 1 000
    try:
        async with database.transaction() as conn:
            await conn.execute(text("CREATE TABLE ballast (data BLOB)"))
        await asyncio.sleep(0.5)  # any checkpoint of the migrations has ended
        size = file_size(path)
        for _ in range(CHECKPOINT_EVERY - 2):  # the CREATE TABLE was one commit
            async with database.transaction() as conn:
                await conn.execute(text("INSERT INTO ballast VALUES (:data)"), {"data": page})
        assert file_size(path) == size  # every page is still in the WAL
        async with database.transaction() as conn:
            await conn.execute(text("INSERT INTO ballast VALUES (:data)"), {"data": page})
        deadline = time.monotonic() + 10
        while file_size(path) < size + CHECKPOINT_EVERY * len(page) // 2:
            assert time.monotonic() < deadline, "no checkpoint after CHECKPOINT_EVERY commits"
            await asyncio.sleep(0.05)
    finally:
        await database.close()
