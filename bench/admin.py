"""Admin search speed on a large database.

    python -m bench.admin [--rows 1000000]

Seeds `--rows` payments (each with its order; 10 000 users) into the database that
`DATABASE_URL` names (a PostgreSQL URL gets a scratch database on that server; unset: a
temporary SQLite file), then prints how long each search form of /payments takes, as the
admin console runs it: one page (10 rows and one to see if there are more) and, apart,
the header's totals over every match, each beside its figure before migration
0013_search_speed ("was"). A script a person runs; no test depends on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from bench.callbacks import scratch_postgres
from bot.admin.search import parse_query
from db import admin_queries
from db.database import Database
from db.schema import orders, payments, users

USERS = 10_000
TARGET_MS = 30.0
# Medians before migration 0013_search_speed (docs/benchmarks.md, "Admin search, with the
# header's totals", 2026-12-02): (page, totals) in ms per database, printed beside each
# form's new figures. The forms added later have none.
BASELINES = {
    "sqlite": {
        "latest page": (10.6, 567), "user id": (3.6, 3.3), "@username": (14.8, 11.5),
        "order id (full)": (10.5, 7.7), "order id (prefix)": (6.8, 8.5),
        "click_trans_id": (9.0, 7.3), "click_paydoc_id": (10.4, 7.5), "Payme id": (10.1, 8.0),
        "state + provider": (16.0, 297), "tariff + state": (10.0, 450), "date": (7.6, 8.1),
        "date range + state": (7.6, 38.4), "user + range": (5.2, 3.2),
        "name part": (42.7, 31.8), "@USERNAME (any case)": (4.4, 3.5), "amount": (10.3, 741),
        "amount + user": (8.5, 6.8), "state word (ru)": (6.3, 320),
        "state word (uz)": (6.4, 301), "today": (9.5, 6.3), "week": (8.9, 13.4),
        "month": (7.6, 44.6), "test": (25.8, 20.5), "double": (19.3, 221),
    },
    "postgresql": {
        "latest page": (9.7, 314), "user id": (35.4, 26.8), "@username": (19.3, 12.2),
        "order id (full)": (16.7, 19.7), "order id (prefix)": (12.5, 11.8),
        "click_trans_id": (5.6, 4.8), "click_paydoc_id": (5.9, 10.1), "Payme id": (8.5, 10.8),
        "state + provider": (20.8, 119), "tariff + state": (69.5, 637), "date": (5.8, 13.5),
        "date range + state": (6.1, 40.2), "user + range": (20.6, 29.7),
        "name part": (20.9, 20.0), "@USERNAME (any case)": (8.4, 11.6), "amount": (8.5, 240),
        "amount + user": (10.4, 8.7), "state word (ru)": (29.4, 154),
        "state word (uz)": (24.9, 167), "today": (5.5, 7.0), "week": (11.0, 19.5),
        "month": (8.9, 52.9), "test": (9.1, 11.1), "double": (45.3, 1067),
    },
}  # fmt: skip
BATCH = 20_000
RUNS = 9  # per form; the machine is shared, so the median of a few
START = datetime(2026, 1, 1, tzinfo=UTC)


def tariff(n: int) -> str:
    return "PLUS" if n % 3 else "PRO"


def mti(n: int) -> str:
    return f"{100_000 + n % USERS}_{tariff(n)}_{1_767_225_600 + n}"


def moment_ms(seconds: int) -> int:
    return int((START + timedelta(seconds=seconds)).timestamp() * 1000)


async def seed(database: Database, rows: int) -> None:
    async with database.transaction() as conn:
        await conn.execute(
            insert(users),
            [
                {"id": 100_000 + n, "first_name": f"User{n}", "username": f"user{n}",
                 "created_at": START, "tariff": None, "tariff_expires_at": None}
                for n in range(USERS)
            ],
        )  # fmt: skip
    step = max(1, 365 * 86_400 // rows)  # the payments span a year
    started = time.perf_counter()
    for first in range(0, rows, BATCH):
        numbers = range(first, min(first + BATCH, rows))
        async with database.transaction() as conn:
            await conn.execute(
                insert(orders),
                [
                    {"id": n + 1, "merchant_trans_id": mti(n), "user_id": 100_000 + n % USERS,
                     "tariff": tariff(n), "amount": 1_500_000, "status": "paid",
                     "created_at": START}
                    for n in numbers
                ],
            )  # fmt: skip
            await conn.execute(
                insert(payments),
                [
                    {"id": n + 1, "provider": "click" if n % 2 else "payme",
                     "provider_id": str(5_000_000_000 + n) if n % 2 else f"{n:024x}",
                     "order_id": n + 1, "amount": 1_500_000,
                     "state": ("paid", "paid", "cancelled", "refunded", "pending")[n % 5],
                     "test": n % 997 == 0,
                     "click_paydoc_id": 9_000_000_000 + n if n % 2 else None,
                     "create_time": moment_ms(step * n), "perform_time": moment_ms(step * n + 5)}
                    for n in numbers
                ],
            )  # fmt: skip
            # Every thousandth order (a paid one) paid a second time: the `double` search.
            await conn.execute(
                insert(payments),
                [
                    {"id": rows + n // 1000 + 1, "provider": "click",
                     "provider_id": f"double-{n}", "order_id": n + 1, "amount": 1_500_000,
                     "state": "paid", "create_time": moment_ms(step * n + 60),
                     "perform_time": moment_ms(step * n + 65)}
                    for n in numbers if n % 1000 == 0
                ],
            )  # fmt: skip
        done = numbers.stop
        rate = done / (time.perf_counter() - started)
        print(f"\rseeded {done:>9,} / {rows:,} payments ({rate:,.0f}/s)", end="", flush=True)
    print()


async def time_searches(database: Database, rows: int) -> None:
    middle = rows // 2
    queries = {
        "latest page": "",
        "user id": str(100_000 + 1234),
        "@username": "@user1234",
        "order id (full)": mti(middle),
        "order id (prefix)": f"{100_000 + 777}_PRO",
        "click_trans_id": str(5_000_000_000 + (middle | 1)),
        "click_paydoc_id": str(9_000_000_000 + (middle | 1)),
        "Payme id": f"{middle & ~1:024x}",
        "state + provider": "refunded click",
        "tariff + state": "pro pending",
        "date": "2026-03-01",
        "date range + state": "2026-02-01..2026-02-28 cancelled",
        "user + range": f"{100_000 + 42} 2026-01-01..2026-06-30",
        "name part": "ser1234",
        "@USERNAME (any case)": "@USER1234",
        "amount": "15 000",
        "amount + user": f"15000 {100_000 + 42}",
        "state word (ru)": "возвращён click",
        "state word (uz)": "toʻlangan payme",
        "today": "today",
        "week": "week",
        "month": "month",
        "test": "test",
        "double": "double",
    }
    step = max(1, 365 * 86_400 // rows)
    today = (START + timedelta(seconds=step * rows)).date()  # the last seeded day
    baselines = BASELINES["sqlite" if database.is_sqlite else "postgresql"]
    print(
        f"{'search':<22} {'query':<36} {'found':>5} {'page ms':>8} {'max':>7} {'was':>6} "
        f"{'matches':>8} {'totals ms':>9} {'max':>7} {'was':>6}"
    )
    slow = []
    for label, query in queries.items():
        filters = parse_query(query, ("click", "payme"), today)
        pages, sums = [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            async with database.read() as conn:
                found = await admin_queries.search(conn, filters, 11)
            pages.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            async with database.read() as conn:
                totals = await admin_queries.totals(conn, filters)
            sums.append((time.perf_counter() - started) * 1000)
        page_was, totals_was = (f"{v:>6.1f}" for v in baselines.get(label, (0.0, 0.0)))
        page, total = statistics.median(pages), statistics.median(sums)
        if max(page, total) >= TARGET_MS:
            slow.append(label)
        print(
            f"{label:<22} {query[:36]:<36} {len(found):>5} "
            f"{page:>8.2f} {max(pages):>7.2f} {page_was} "
            f"{totals.count:>8} {total:>9.2f} {max(sums):>7.2f} {totals_was}"
        )
    print(f"median of {RUNS}; at or over {TARGET_MS:.0f} ms: {', '.join(slow) or 'none'}")


async def run(url: str, rows: int) -> None:
    database = await Database.connect(url)
    try:
        await seed(database, rows)
        if not database.is_sqlite:
            # What autovacuum does soon after a bulk load; without statistics the planner
            # would guess, and the figures would be of a state production never stays in.
            # The day sums are compacted too: each batch of 20 000 payments rewrote its
            # days' rows a hundred times or more in one transaction, leaving pages that
            # VACUUM empties but does not give back (docs/benchmarks.md). One payment a
            # transaction, as in production, lets PostgreSQL prune old versions as it
            # goes (and migration 0013 has autovacuum visit the table often).
            async with database.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
                await conn.execute(text("VACUUM FULL ANALYZE payment_day_sums"))
        await time_searches(database, rows)
    finally:
        await database.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="payments to seed")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql")):
        async with scratch_postgres(url) as scratch:
            print("PostgreSQL (scratch database)")
            await run(scratch, args.rows)
        return
    with tempfile.TemporaryDirectory() as directory:
        print("SQLite (temporary file)")
        await run(f"sqlite+aiosqlite:///{directory}/admin.db", args.rows)


if __name__ == "__main__":
    asyncio.run(main())
