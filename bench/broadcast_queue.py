"""How long a broadcast's queueing stops the event loop on SQLite, chunked and in one go.

    python -m bench.broadcast_queue [--users 100000] [--rounds 3]

On SQLite every statement of a transaction runs on the event loop's thread, so while a
broadcast is confirmed nothing else of the process runs between two statements. This
queues one notice per user (`outbox.enqueue_each`) in a fresh SQLite file of `--users`
users, once in chunks of `QUEUE_CHUNK` users (as the product does) and once as a single
INSERT ... SELECT (the baseline, as before chunking), while a ticker task records the
longest gap between its turns. Figures are medians over the rounds, printed, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, insert, select

from db import broadcasts, outbox
from db.database import Database
from db.schema import notifications, users

NOW = datetime(2026, 12, 1, tzinfo=UTC)


async def _seed(db: Database, count: int) -> int:
    rows = [
        {"id": n, "first_name": f"User{n}", "created_at": NOW, "reachable": True}
        for n in range(1, count + 1)
    ]
    async with db.transaction() as conn:
        for start in range(0, count, 10_000):
            await conn.execute(insert(users), rows[start : start + 10_000])
        target = broadcasts.Target(broadcasts.Audience.ALL)
        return await broadcasts.create_draft(conn, 1, target, {"en": "x"}, NOW)


async def _queue(db: Database, broadcast_id: int, chunk: int) -> tuple[float, float]:
    """(longest loop gap, whole queueing) in milliseconds; the rows are removed after."""
    longest = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    async with db.transaction() as conn:
        await outbox.enqueue_each(
            conn, select(users.c.id), outbox.BROADCAST, {}, NOW, broadcast_id, chunk=chunk
        )
    whole = time.perf_counter() - started
    stop = True
    await task
    async with db.transaction() as conn:
        await conn.execute(delete(notifications))
    return longest * 1000, whole * 1000


async def main(users_count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        db = await Database.connect(f"sqlite+aiosqlite:///{Path(scratch) / 'bench.db'}")
        try:
            broadcast_id = await _seed(db, users_count)
            results: dict[str, list[tuple[float, float]]] = {"one statement": [], "chunked": []}
            for n in range(rounds):
                results["one statement"].append(await _queue(db, broadcast_id, users_count + 1))
                results["chunked"].append(await _queue(db, broadcast_id, outbox.QUEUE_CHUNK))
                print(f"round {n + 1}/{rounds} done", flush=True)
        finally:
            await db.close()
    base_gap = statistics.median(gap for gap, _ in results["one statement"])
    base_whole = statistics.median(whole for _, whole in results["one statement"])
    print(f"\n{users_count} users, SQLite, median of {rounds} rounds\n")
    print("| queueing | longest loop gap, ms | vs one statement | whole, ms | vs one statement |")
    print("|---|---|---|---|---|")
    for name, figures in results.items():
        gap = statistics.median(g for g, _ in figures)
        whole = statistics.median(w for _, w in figures)
        label = name if name == "one statement" else f"chunks of {outbox.QUEUE_CHUNK}"
        print(
            f"| {label} | {gap:.1f} | {gap / base_gap:.2f}× | {whole:.0f} | "
            f"{whole / base_whole:.2f}× |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.users, arguments.rounds))
