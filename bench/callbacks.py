"""Callback throughput and latency of the real app, next to a bare aiohttp handler.

    python -m bench.callbacks [--pairs 2000] [--clients 1,16,64]

For each database (SQLite in a temporary file always; PostgreSQL too when
`DATABASE_URL` points at one) and each workload, the real app is started in its own
process on loopback (with a fake Bot API, so the notifier runs too) and the workload's
pairs are sent at 1, 16 and 64 concurrent clients. The same client code then runs
against a bare aiohttp handler that answers the same JSON without a database, and the
ratio of requests per second is printed. Latency is per HTTP request.

A workload is one `Workload` in `WORKLOADS`: how to create the rows one pair needs,
how to send one pair, and what the bare handler answers on each path. Payme's
Create+Perform pairs are the second entry.

This is a script a person runs; no test depends on its timings.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import socket
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
from aiohttp import ClientSession, TCPConnector, web
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from db.clock import system_clock, to_datetime
from db.database import Database
from db.schema import orders, users
from tests.fake_telegram import FakeTelegram
from web.app import create_app
from web.settings import load_settings

BOT_TOKEN = "123456789:AAE_bench_token_for_the_fake_bot_api_01234"
CLICK_ENV = {
    "CLICK_SERVICE_ID": "28420",
    "CLICK_MERCHANT_ID": "20000",
    "CLICK_SECRET_KEY": "s3cr3tK3y",
}
PAYME_ENV = {"PAYME_MERCHANT_ID": "587f72c72cac0d162c722ae2", "PAYME_KEY": "TEST_KEY_example"}
PLUS_PRICE = 1_500_000
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

Post = Callable[[str, bytes], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Workload:
    """One kind of callback pair: its rows, its requests and the bare handler's answers."""

    name: str
    create_rows: Callable[[Database, int], Awaitable[list[str]]]  # -> one key per pair
    send_pair: Callable[[Post, str, int], Awaitable[None]]  # (post, key, attempt id)
    bare_answers: Mapping[str, dict[str, Any]]
    headers: Mapping[str, str] = field(default_factory=lambda: dict(FORM))


async def create_orders(database: Database, count: int) -> list[str]:
    """`count` users with one pending PLUS order each; returns their merchant_trans_ids."""
    now = to_datetime(system_clock())
    base = 10_000_000 + int(time.time() * 1000) % 1_000_000 * 1000
    ids = [base + number for number in range(count)]
    async with database.transaction() as conn:
        await conn.execute(
            insert(users), [{"id": uid, "language": "en", "created_at": now} for uid in ids]
        )
        await conn.execute(
            insert(orders),
            [
                {
                    "merchant_trans_id": f"{uid}_PLUS_1730034567",
                    "user_id": uid,
                    "tariff": "PLUS",
                    "amount": PLUS_PRICE,
                    "status": "pending",
                    "created_at": now,
                }
                for uid in ids
            ],
        )
    return [f"{uid}_PLUS_1730034567" for uid in ids]


def _click_body(mti: str, trans: int, prepare_id: str | None) -> bytes:
    secret, service, sign_time, amount = "s3cr3tK3y", "28420", "2024-10-27 18:02:18", "15000.00"
    action = "0" if prepare_id is None else "1"
    signed = [str(trans), service, secret, mti, prepare_id or "", amount, action, sign_time]
    fields = {
        "click_trans_id": str(trans),
        "service_id": service,
        "click_paydoc_id": str(trans + 1),
        "merchant_trans_id": mti,
        "amount": amount,
        "action": action,
        "error": "0",
        "error_note": "Success",
        "sign_time": sign_time,
        "sign_string": hashlib.md5("".join(signed).encode()).hexdigest(),
    }
    if prepare_id is not None:
        fields["merchant_prepare_id"] = prepare_id
    return urlencode(fields).encode()


async def send_click_pair(post: Post, mti: str, trans: int) -> None:
    prepared = await post("/click/prepare", _click_body(mti, trans, None))
    if prepared["error"] != 0:
        raise RuntimeError(f"Prepare answered {prepared}")
    completed = await post(
        "/click/complete", _click_body(mti, trans, str(prepared["merchant_prepare_id"]))
    )
    if completed["error"] != 0:
        raise RuntimeError(f"Complete answered {completed}")


CLICK_PAIRS = Workload(
    name="Click Prepare+Complete",
    create_rows=create_orders,
    send_pair=send_click_pair,
    bare_answers={
        "/click/prepare": {
            "click_trans_id": 2854711398,
            "merchant_trans_id": "10000000_PLUS_1730034567",
            "merchant_prepare_id": 17,
            "error": 0,
            "error_note": "Success",
        },
        "/click/complete": {
            "click_trans_id": 2854711398,
            "merchant_trans_id": "10000000_PLUS_1730034567",
            "merchant_confirm_id": 17,
            "error": 0,
            "error_note": "Success",
        },
    },
)


async def send_payme_pair(post: Post, mti: str, trans: int) -> None:
    """CreateTransaction then PerformTransaction, as Payme sends them."""
    payme_id = f"{trans:024x}"
    create = {
        "method": "CreateTransaction",
        "params": {
            "id": payme_id,
            "time": system_clock(),
            "amount": PLUS_PRICE,
            "account": {"order_id": mti},
        },
        "id": trans,
    }
    created = await post("/payme", json.dumps(create).encode())
    if "result" not in created:
        raise RuntimeError(f"CreateTransaction answered {created}")
    perform = {"method": "PerformTransaction", "params": {"id": payme_id}, "id": trans}
    performed = await post("/payme", json.dumps(perform).encode())
    if "result" not in performed:
        raise RuntimeError(f"PerformTransaction answered {performed}")


PAYME_PAIRS = Workload(
    name="Payme Create+Perform",
    create_rows=create_orders,
    send_pair=send_payme_pair,
    bare_answers={
        "/payme": {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {"create_time": 1730034600123, "transaction": "17", "state": 1},
        },
    },
    headers={
        "Content-Type": "text/json; charset=UTF-8",
        "Authorization": "Basic " + base64.b64encode(b"Paycom:TEST_KEY_example").decode(),
    },
)

WORKLOADS: list[Workload] = [CLICK_PAIRS, PAYME_PAIRS]


# --- stored history (--rows) -----------------------------------------------------------

SEED_USERS = 10_000
SEED_FIRST_USER = 7_000_000_000_000  # far above any id the workloads create
SEED_BATCH = 50_000
SEED_START_MS = 1_735_689_600_000  # 2025-01-01


def _seed_rows(count: int) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]]:
    """Row `n` of the history: a paid order, its Click or Payme payment, its sent notice."""
    for n in range(1, count + 1):
        user = SEED_FIRST_USER + n % SEED_USERS
        moment_ms = SEED_START_MS + n * 30_000
        moment = datetime.fromtimestamp(moment_ms / 1000, UTC)
        click = n % 2 == 1
        yield (
            (n, f"{user}_PLUS_{moment_ms // 1000}", user, "PLUS", PLUS_PRICE, 30, "paid",
             moment, moment),
            (n, "click" if click else "payme", str(8_000_000_000 + n) if click else f"{n:024x}",
             n, PLUS_PRICE, "paid", moment_ms, moment_ms + 1_000, 30),
            (n, user, "payment_received", json.dumps({"tariff": "PLUS", "days": 30}),
             "sent", 1, moment, moment, moment),
        )  # fmt: skip


ORDER_COLUMNS = ("id", "merchant_trans_id", "user_id", "tariff", "amount", "days", "status",
                 "created_at", "paid_at")  # fmt: skip
PAYMENT_COLUMNS = ("id", "provider", "provider_id", "order_id", "amount", "state",
                   "create_time", "perform_time", "granted_days")  # fmt: skip
NOTICE_COLUMNS = ("id", "user_id", "kind", "payload", "status", "attempts", "next_attempt_at",
                  "created_at", "sent_at")  # fmt: skip
SEEDED = (
    ("orders", ORDER_COLUMNS),
    ("payments", PAYMENT_COLUMNS),
    ("notifications", NOTICE_COLUMNS),
)


async def seed_history(database_url: str, count: int) -> float:
    """Store `count` paid orders, payments and sent notices (on a migrated, empty database)
    the fastest way each database takes them; returns the seconds it took.

    Bulk statements, not the app's code: a million rows through the money path would take
    hours, and only their presence matters here (indexes, the planner, the page cache)."""
    started = time.perf_counter()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        await asyncio.to_thread(_seed_sqlite, str(url.database), count)
    else:
        await _seed_postgres(url.set(drivername="postgresql").render_as_string(False), count)
    return time.perf_counter() - started


def _sqlite_value(value: Any) -> Any:
    # What SQLAlchemy stores for a UTC datetime on SQLite: naive ISO text.
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _seed_sqlite(path: str, count: int) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        now = to_datetime(system_clock()).replace(tzinfo=None).isoformat(" ", "microseconds")
        connection.executemany(
            "INSERT INTO users (id, language, created_at) VALUES (?, 'en', ?)",
            ((SEED_FIRST_USER + n, now) for n in range(SEED_USERS)),
        )
        rows = _seed_rows(count)
        while batch := list(itertools.islice(rows, SEED_BATCH)):
            for index, (table, columns) in enumerate(SEEDED):
                marks = ", ".join("?" * len(columns))
                connection.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    (tuple(map(_sqlite_value, row[index])) for row in batch),
                )
        connection.execute("COMMIT")
        connection.execute("ANALYZE")  # what a long-lived database has (PRAGMA optimize)
    finally:
        connection.close()


async def _seed_postgres(dsn: str, count: int) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        now = to_datetime(system_clock())
        async with connection.transaction():
            await connection.copy_records_to_table(
                "users",
                records=[(SEED_FIRST_USER + n, "en", now) for n in range(SEED_USERS)],
                columns=("id", "language", "created_at"),
            )
            rows = _seed_rows(count)
            while batch := list(itertools.islice(rows, SEED_BATCH)):
                for index, (table, columns) in enumerate(SEEDED):
                    await connection.copy_records_to_table(
                        table, records=[row[index] for row in batch], columns=columns
                    )
            for table, _ in SEEDED:
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count})"
                )
        await connection.execute("ANALYZE")  # what autovacuum does soon after a bulk load
    finally:
        await connection.close()


# --- servers (each in its own process, like production) ---------------------------------


def bare_app(answers: Mapping[str, dict[str, Any]]) -> web.Application:
    """Reads the body and answers fixed JSON: the ceiling any callback route can reach."""

    def route(answer: dict[str, Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.json_response(answer)

        return handler

    app = web.Application()
    for path, answer in answers.items():
        app.router.add_post(path, route(answer))
    return app


async def _serve(
    kind: str, database_url: str, port: int, workload_index: int, log_file: str
) -> None:
    if kind == "bare":
        app = bare_app(WORKLOADS[workload_index].bare_answers)
    else:
        telegram = FakeTelegram()
        telegram_runner = web.AppRunner(telegram.app)
        await telegram_runner.setup()
        telegram_port = _free_port()
        await web.TCPSite(telegram_runner, "127.0.0.1", telegram_port).start()
        env = {
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": f"http://127.0.0.1:{telegram_port}",
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            "CALLBACK_LOG_FILE": log_file,  # the callback log's file append is measured too
            **CLICK_ENV,
            **PAYME_ENV,
        }
        app = create_app(load_settings(env))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def _serve_process(
    kind: str, database_url: str, port: int, workload_index: int, log_file: str
) -> None:
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(kind, database_url, port, workload_index, log_file))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def server(kind: str, database_url: str, workload_index: int, log_file: str) -> Any:
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_process,
        args=(kind, database_url, port, workload_index, log_file),
        daemon=True,
    )
    process.start()
    try:
        await _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(10)


async def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"server on port {port} did not start")


# --- the client -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


async def run_level(
    base_url: str, workload: Workload, keys: Sequence[str], clients: int, first_trans: int
) -> Stats:
    """Send one pair per key with `clients` pairs in flight; latency per request."""
    latencies: list[float] = []
    queue = list(enumerate(keys))
    queue.reverse()
    async with ClientSession(base_url, connector=TCPConnector(limit=clients)) as session:

        async def post(path: str, body: bytes) -> dict[str, Any]:
            started = time.perf_counter()
            async with session.post(path, data=body, headers=workload.headers) as response:
                answer = await response.json()
            latencies.append(time.perf_counter() - started)
            return answer  # type: ignore[no-any-return]

        async def client() -> None:
            while queue:
                number, key = queue.pop()
                await workload.send_pair(post, key, first_trans + number)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Stats(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
    )


async def bench_database(
    label: str, database_url: str, pairs: int, levels: Sequence[int], log_file: str
) -> None:
    for index, workload in enumerate(WORKLOADS):
        bare: dict[int, Stats] = {}
        async with server("bare", database_url, index, log_file) as base_url:
            fake_keys = ["10000000_PLUS_1730034567"] * pairs
            await run_level(base_url, workload, fake_keys[: pairs // 10], max(levels), 1)  # warm-up
            for clients in levels:
                bare[clients] = await run_level(base_url, workload, fake_keys, clients, 1)
        async with server("app", database_url, index, log_file) as base_url:
            database = await Database.connect(database_url, migrate=False)
            try:
                keys = await workload.create_rows(database, pairs * (len(levels) + 1))
            finally:
                await database.close()
            trans = 1_000_000_000 + int(time.time()) % 1_000_000 * 1000
            await run_level(base_url, workload, keys[:pairs], max(levels), trans)  # warm-up
            for number, clients in enumerate(levels, start=1):
                chunk = keys[number * pairs : (number + 1) * pairs]
                stats = await run_level(base_url, workload, chunk, clients, trans + number * pairs)
                base = bare[clients]
                print(
                    f"{label:<10} {workload.name:<24} {clients:>3} clients  "
                    f"{stats.requests_per_second:>7.0f} req/s  p50 {stats.p50_ms:>6.2f} ms  "
                    f"p99 {stats.p99_ms:>6.2f} ms  | bare {base.requests_per_second:>7.0f} req/s  "
                    f"p50 {base.p50_ms:>5.2f} ms  p99 {base.p99_ms:>5.2f} ms  "
                    f"| ratio {stats.requests_per_second / base.requests_per_second:>4.0%}",
                    flush=True,
                )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000, help="pairs per concurrency level")
    parser.add_argument("--clients", default="1,16,64", help="concurrency levels")
    args = parser.parse_args()
    levels = [int(level) for level in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        log_file = f"{directory}/callbacks.log"
        sqlite_url = f"sqlite+aiosqlite:///{directory}/bench.db"
        await bench_database("SQLite", sqlite_url, args.pairs, levels, log_file)
        database_url = os.environ.get("DATABASE_URL", "")
        if database_url.startswith(("postgres://", "postgresql")):
            async with scratch_postgres(database_url) as url:
                await bench_database("PostgreSQL", url, args.pairs, levels, log_file)


@contextlib.asynccontextmanager
async def scratch_postgres(server_url: str) -> Any:
    """A new database on the server `DATABASE_URL` names, dropped afterwards.

    The bench writes thousands of users and orders; they must not land in a real one.
    """
    url = make_url(load_settings({"BOT_TOKEN": BOT_TOKEN, "DATABASE_URL": server_url}).database_url)
    name = f"bench_{os.getpid()}"
    admin = await asyncpg.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
