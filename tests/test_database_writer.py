"""SQLite writers queue on an in-process lock (db/database.py), bounded by the busy timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from db.database import Database


async def test_sqlite_transactions_run_one_at_a_time(tmp_path: Path) -> None:
    db = await Database.connect(f"sqlite+aiosqlite:///{tmp_path}/w.db", migrate=False)
    events: list[str] = []

    async def unit(name: str) -> None:
        async with db.transaction() as conn:
            events.append(f"{name} begin")
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.01)
            events.append(f"{name} end")

    try:
        await asyncio.gather(*(unit(str(number)) for number in range(5)))
    finally:
        await db.close()
    assert events == [f"{n} {step}" for n in range(5) for step in ("begin", "end")]


async def test_a_nested_sqlite_transaction_fails_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await Database.connect(
        f"sqlite+aiosqlite:///{tmp_path}/w.db", migrate=False, wait_seconds=0.2
    )
    try:
        async with db.transaction():
            with pytest.raises(TimeoutError):
                async with db.transaction():
                    pass
        async with db.transaction() as conn:  # the lock was not leaked
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await db.close()
