"""Several instances started together on an empty database: each start succeeds and the
schema is migrated once (PostgreSQL's advisory lock; SQLite's write lock)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from db.database import Database


async def test_instances_starting_together_all_migrate_cleanly(database_url: str) -> None:
    for _round in range(3):
        databases = [Database.from_url(database_url, wait_seconds=60) for _ in range(3)]
        try:
            await asyncio.gather(*(database.migrate() for database in databases))
            async with databases[0].read() as conn:
                versions = await conn.execute(text("SELECT version_num FROM alembic_version"))
                assert len(versions.all()) == 1
        finally:
            await asyncio.gather(*(database.close() for database in databases))
