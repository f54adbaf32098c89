"""Several instances started together on an empty database: each start succeeds and the
schema is migrated once (PostgreSQL's advisory lock; SQLite's write lock)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from sqlalchemy import text

from db.database import MIGRATIONS_DIR, Database, head_revision

ROOT = Path(__file__).resolve().parent.parent


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


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    """`migrate()` skips Alembic when the database is at this head, so it must be exact."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


async def test_a_start_on_a_migrated_database_does_not_load_alembic(database_url: str) -> None:
    """Alembic's memory is paid only by the start that has a migration to run."""
    first = Database.from_url(database_url)
    try:
        await first.migrate()
    finally:
        await first.close()
    script = (
        "import asyncio, sys\n"
        "from db.database import Database\n"
        "async def main():\n"
        f"    database = Database.from_url({database_url!r})\n"
        "    await database.migrate()\n"
        "    await database.close()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    assert process.returncode == 0
    assert output.decode().strip() == "False"


async def test_a_new_file_locked_by_another_connection_is_switched_to_wal_after_it(
    tmp_path: Path,
) -> None:
    """A connection switching a new file to WAL while another holds its write lock gets
    "database is locked" at once from SQLite (its busy timeout is not used: the two would
    each wait for the other). Instances starting together hit this under load; the
    switch is retried until the lock is free."""
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE first_writer (n INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO first_writer VALUES (1)")
    database = Database.from_url(f"sqlite+aiosqlite:///{path}", wait_seconds=10)
    try:
        release = asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        async with database.read() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        release.cancel()
    finally:
        await database.close()
        other.close()
    assert mode == "wal"
