"""What one transaction and one statement of the money path cost, by the way they run.

    python -m bench.statements [--rounds 2000]
    DATABASE_URL=postgresql://… python -m bench.statements --databases postgresql

A point read of an order (the first statement of every payment), five times in one
transaction, run each way the code base can run it:

- `built per call`: a Core statement built at each call, through `conn.execute` (how
  the money path ran before db/prepared.py);
- `prebuilt`: the same statement built once, through `conn.execute`;
- `Prepared`: db/prepared.py, the driver called directly with SQLAlchemy's processors;
- `driver`: the bare driver call with its SQL written by hand, the baseline.

Each figure is microseconds per transaction (the mean over `--rounds`), and its ratio to
the driver's in the same run. The empty transaction and the empty read are
`Database.transaction()` and `Database.read()` with nothing inside. A script a person
runs; no test depends on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.callbacks import create_orders, scratch_postgres
from db.database import Database
from db.prepared import Prepared
from db.schema import orders
from db.sqlite_inloop import driver_of

STATEMENTS = 5  # point reads per transaction
PREBUILT = select(orders).where(orders.c.merchant_trans_id == bindparam("mti"))
PREPARED = Prepared(PREBUILT)
BY_HAND = {
    "sqlite": "SELECT * FROM orders WHERE merchant_trans_id = ?",
    "postgresql": "SELECT * FROM orders WHERE merchant_trans_id = $1",
}


async def _mean_us(body: Callable[[], Awaitable[None]], rounds: int) -> float:
    for _ in range(rounds // 10):  # warm: caches, the pool, the planner
        await body()
    started = time.perf_counter()
    for _ in range(rounds):
        await body()
    return (time.perf_counter() - started) / rounds * 1e6


async def measure(label: str, database: Database, rounds: int) -> None:
    (mti,) = await create_orders(database, 1)

    async def empty() -> None:
        async with database.transaction():
            pass

    async def empty_read() -> None:
        async with database.read():
            pass

    async def built_per_call() -> None:
        async with database.transaction() as conn:
            for _ in range(STATEMENTS):
                await get_order_built(conn, mti)

    async def prebuilt() -> None:
        async with database.transaction() as conn:
            for _ in range(STATEMENTS):
                (await conn.execute(PREBUILT, {"mti": mti})).one()

    async def prepared() -> None:
        async with database.transaction() as conn:
            for _ in range(STATEMENTS):
                await PREPARED.one(conn, mti=mti)

    async def driver() -> None:
        async with database.transaction() as conn:
            if database.is_sqlite:
                raw = driver_of(conn)
                assert raw is not None
                for _ in range(STATEMENTS):
                    (await raw.run(BY_HAND["sqlite"], (mti,))).fetchone()
            else:
                await conn.exec_driver_sql("SELECT 1")  # the adapter's BEGIN, as Prepared does
                asyncpg = (await conn.get_raw_connection()).driver_connection
                assert asyncpg is not None
                for _ in range(STATEMENTS):
                    await asyncpg.fetchrow(BY_HAND["postgresql"], mti)

    figures = {
        "empty transaction": await _mean_us(empty, rounds),
        "empty read": await _mean_us(empty_read, rounds),
        f"{STATEMENTS} reads, built per call": await _mean_us(built_per_call, rounds),
        f"{STATEMENTS} reads, prebuilt": await _mean_us(prebuilt, rounds),
        f"{STATEMENTS} reads, Prepared": await _mean_us(prepared, rounds),
        f"{STATEMENTS} reads, driver": await _mean_us(driver, rounds),
    }
    base = figures[f"{STATEMENTS} reads, driver"]
    for name, micros in figures.items():
        print(f"{label:11} {name:32} {micros:8.0f} µs   {micros / base:5.2f}× the driver's")


async def get_order_built(conn: AsyncConnection, mti: str) -> None:
    """The order read as the money path wrote it before db/prepared.py."""
    (await conn.execute(select(orders).where(orders.c.merchant_trans_id == mti))).one()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    chosen = args.databases.split(",")
    if "sqlite" in chosen:
        with tempfile.TemporaryDirectory() as directory:
            database = await Database.connect(f"sqlite+aiosqlite:///{directory}/statements.db")
            try:
                await measure("SQLite", database, args.rounds)
            finally:
                await database.close()
    server = os.environ.get("DATABASE_URL", "")
    if "postgresql" in chosen and server.startswith(("postgres", "postgresql")):
        async with scratch_postgres(server) as url:
            database = await Database.connect(url)
            try:
                await measure("PostgreSQL", database, args.rounds)
            finally:
                await database.close()


if __name__ == "__main__":
    asyncio.run(main())
