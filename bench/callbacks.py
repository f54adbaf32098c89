"""Callback throughput and latency of the real app, next to a bare aiohttp handler.

    python -m bench.callbacks [--pairs 2000] [--clients 1,16,64] [--rate 300 --seconds 10]
        [--rows 1000000 [--compare-empty]] [--workloads click,payme,click-read,payme-read]
        [--switch-interval default,0.5] [--pending-index both] [--pre-ping both]
        [--databases sqlite,postgresql] [--log-dir DIR]

For each database (SQLite in a temporary file; PostgreSQL too when `DATABASE_URL` points
at one) and each workload, the real app is started in its own process on loopback (with
a fake Bot API, so the notifier runs too) and the workload is sent closed-loop at 1, 16
and 64 concurrent clients, then open-loop at `--rate` requests a second for `--seconds`
(completed req/s, p50/p99, and the backlog left when the offering stopped). The same
client code first runs against a bare aiohttp handler that answers the same JSON without
a database, and every figure is printed with its ratio to that handler's, measured in
the same run (the machine's load changes from minute to minute; ratios travel, absolute
figures do not). Latency is per HTTP request.

Workloads: Click Prepare+Complete and Payme Create+Perform pairs (each credits a fresh
order: the money path, ledger period included), and the read paths: Click's repeated
Prepare of an attempt already prepared, and Payme's CheckPerformTransaction.

`--rows N` stores N paid orders, payments and sent notices before measuring (bulk
inserts on SQLite, COPY on PostgreSQL): production after a few years. The variants
(`--switch-interval`, `--pending-index`, `--pre-ping`) start the app once per setting,
so before and after of each cheap win are measured in one run; `--compare-empty` runs
the plan on an empty database first, then on one holding `--rows`. Error answers (a -7
once a bounded wait ran out) are counted as `failed`, not fatal; `--log-dir` keeps the
app's log to see why.

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
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import asyncpg
from aiohttp import ClientSession, TCPConnector, web
from sqlalchemy import insert, text
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
    requests_per_pair: int = 2  # a "pair" of a read path is its one request
    # Read paths: how many orders the requests go round, each primed once before the
    # measurement (a Click Prepare to repeat); pair workloads use a fresh order per pair.
    read_keys: int = 0
    prime: Callable[[Post, str], Awaitable[None]] | None = None
    short: str = ""  # its --workloads name


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
                    "days": 30,  # orders record the days they grant (the ledger)
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


def _repeat_trans(mti: str) -> int:
    """The click_trans_id of an order's one attempt, so every repeat names the same one."""
    return 3_000_000_000 + int(mti.partition("_")[0]) % 1_000_000_000


async def send_click_prepare_repeat(post: Post, mti: str, _attempt: int) -> None:
    """Click sends Prepare again for an attempt already prepared: answered from the row."""
    prepared = await post("/click/prepare", _click_body(mti, _repeat_trans(mti), None))
    if prepared["error"] != 0:
        raise RuntimeError(f"Prepare (repeat) answered {prepared}")


async def prime_click_prepare(post: Post, mti: str) -> None:
    await send_click_prepare_repeat(post, mti, 0)


CLICK_PREPARE_REPEAT = Workload(
    name="Click Prepare repeat",
    create_rows=create_orders,
    send_pair=send_click_prepare_repeat,
    bare_answers={"/click/prepare": CLICK_PAIRS.bare_answers["/click/prepare"]},
    requests_per_pair=1,
    read_keys=100,
    prime=prime_click_prepare,
    short="click-read",
)


async def send_check_perform(post: Post, mti: str, attempt: int) -> None:
    """Payme asks whether a pending order may be paid: nothing is written."""
    call = {
        "method": "CheckPerformTransaction",
        "params": {"amount": PLUS_PRICE, "account": {"order_id": mti}},
        "id": attempt,
    }
    answer = await post("/payme", json.dumps(call).encode())
    if not answer.get("result", {}).get("allow"):
        raise RuntimeError(f"CheckPerformTransaction answered {answer}")


PAYME_CHECK_PERFORM = Workload(
    name="Payme CheckPerform",
    create_rows=create_orders,
    send_pair=send_check_perform,
    bare_answers={"/payme": {"jsonrpc": "2.0", "id": 1, "result": {"allow": True}}},
    headers=PAYME_PAIRS.headers,
    requests_per_pair=1,
    read_keys=100,
    short="payme-read",
)

WORKLOADS: list[Workload] = [
    replace(CLICK_PAIRS, short="click"),
    replace(PAYME_PAIRS, short="payme"),
    CLICK_PREPARE_REPEAT,
    PAYME_CHECK_PERFORM,
]


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


@dataclass(frozen=True)
class Variant:
    """How the app's process is set up for one measurement: the cheap wins, each on or off
    in the same run, so before and after share the machine's load of the moment."""

    switch_interval_ms: float | None = None  # None: the interpreter's default (5 ms)
    pending_index: bool = True  # the partial index on pending notices (migration 0008)
    pre_ping: bool | None = None  # None: what db/database.py does

    @property
    def label(self) -> str:
        parts = []
        if self.switch_interval_ms is not None:
            parts.append(f"switch {self.switch_interval_ms:g} ms")
        if not self.pending_index:
            parts.append("no pending index")
        if self.pre_ping is not None:
            parts.append("pre-ping" if self.pre_ping else "no pre-ping")
        return ", ".join(parts) or "as shipped"


async def _serve(
    kind: str, database_url: str, port: int, workload_index: int, log_file: str, variant: Variant
) -> None:
    if kind == "bare":
        app = bare_app(WORKLOADS[workload_index].bare_answers)
    else:
        if variant.switch_interval_ms is not None:
            sys.setswitchinterval(variant.switch_interval_ms / 1000)
        if variant.pre_ping is not None:
            _force_pre_ping(variant.pre_ping)
        app = await app_with_fake_telegram(database_url, {"CALLBACK_LOG_FILE": log_file})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def app_with_fake_telegram(database_url: str, env: Mapping[str, str]) -> web.Application:
    """The real app on `database_url`, with a fake Bot API served on loopback by this
    process (so the notifier runs too); `env`: settings beside the bench's own."""
    telegram = FakeTelegram()
    telegram_runner = web.AppRunner(telegram.app)
    await telegram_runner.setup()
    telegram_port = _free_port()
    await web.TCPSite(telegram_runner, "127.0.0.1", telegram_port).start()
    settings = {
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": f"http://127.0.0.1:{telegram_port}",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        **CLICK_ENV,
        **PAYME_ENV,
        **env,
    }
    return create_app(load_settings(settings))


def _force_pre_ping(enabled: bool) -> None:
    """This bench process only: build PostgreSQL engines with or without the pool's
    per-checkout ping, whatever db/database.py chooses, to measure both in one run."""
    import db.database as database_module

    original = database_module.create_async_engine

    def create(url: Any, **options: Any) -> Any:
        if "pool_pre_ping" in options:
            options["pool_pre_ping"] = enabled
        return original(url, **options)

    database_module.create_async_engine = create  # type: ignore[assignment]


def _serve_process(
    kind: str, database_url: str, port: int, workload_index: int, log_file: str, variant: Variant
) -> None:
    # The app's error logs (say, a -7 under overload) go to a file, not the figures.
    errors = os.open(f"{log_file}.{kind}.stderr", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(errors, 2)
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(kind, database_url, port, workload_index, log_file, variant))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def server(
    kind: str,
    database_url: str,
    workload_index: int,
    log_file: str,
    variant: Variant = Variant(),
) -> Any:
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_process,
        args=(kind, database_url, port, workload_index, log_file, variant),
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
    backlog: int = 0  # open loop: pairs still unanswered when the offering stopped
    drain_s: float = 0.0  # open loop: how long they took to finish after it stopped
    failed: int = 0  # pairs answered with an error (say, -7 once a bounded wait ran out)


def _stats(
    latencies: list[float], elapsed: float, backlog: int = 0, drain: float = 0, failed: int = 0
) -> Stats:
    latencies.sort()
    return Stats(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        backlog=backlog,
        drain_s=drain,
        failed=failed,
    )


def _timed_post(session: ClientSession, workload: Workload, latencies: list[float]) -> Post:
    async def post(path: str, body: bytes) -> dict[str, Any]:
        started = time.perf_counter()
        async with session.post(path, data=body, headers=workload.headers) as response:
            answer = await response.json(content_type=None)
        latencies.append(time.perf_counter() - started)
        return answer  # type: ignore[no-any-return]

    return post


async def run_level(
    base_url: str, workload: Workload, keys: Sequence[str], clients: int, first_trans: int
) -> Stats:
    """Closed loop: `clients` pairs in flight, the next sent as one is answered."""
    latencies: list[float] = []
    failures: list[str] = []
    queue = list(enumerate(keys))
    queue.reverse()
    async with ClientSession(base_url, connector=TCPConnector(limit=clients)) as session:
        post = _timed_post(session, workload, latencies)

        async def client() -> None:
            while queue:
                number, key = queue.pop()
                try:
                    await workload.send_pair(post, key, first_trans + number)
                except RuntimeError as error:  # an error answer: counted, not fatal
                    failures.append(str(error))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return _stats(latencies, elapsed, failed=len(failures))


async def run_open(
    base_url: str, workload: Workload, keys: Sequence[str], rate: float, first_trans: int
) -> Stats:
    """Open loop: a pair starts every `requests_per_pair / rate` seconds whether or not
    the earlier ones were answered, as callbacks arrive in production. A server slower
    than the offered rate shows as a backlog at the end and a long drain, not as a
    politely lower rate (which is all a closed loop can show)."""
    latencies: list[float] = []
    interval = workload.requests_per_pair / rate
    tasks: list[asyncio.Task[None]] = []
    failures: list[str] = []
    async with ClientSession(base_url, connector=TCPConnector(limit=0)) as session:
        post = _timed_post(session, workload, latencies)

        async def pair(key: str, attempt: int) -> None:
            try:
                await workload.send_pair(post, key, attempt)
            except RuntimeError as error:  # an answer, but an error: counted, not fatal
                failures.append(str(error))

        started = time.perf_counter()
        for number, key in enumerate(keys):
            delay = started + number * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(pair(key, first_trans + number)))
        offered_until = time.perf_counter()
        backlog = sum(not task.done() for task in tasks)
        await asyncio.gather(*tasks)
        finished = time.perf_counter()
    elapsed = finished - started
    return _stats(latencies, elapsed, backlog, finished - offered_until, len(failures))


@dataclass(frozen=True)
class Plan:
    """What one run measures (the command line)."""

    pairs: int
    levels: Sequence[int]
    rate: float  # 0: no open loop
    seconds: float
    rows: int
    workloads: Sequence[int]  # indexes into WORKLOADS
    variants: Sequence[Variant]

    def open_pairs(self, workload: Workload) -> int:
        return int(self.rate * self.seconds / workload.requests_per_pair) if self.rate else 0


def _line(label: str, workload: Workload, mode: str, stats: Stats, base: Stats) -> str:
    ratio = stats.requests_per_second / base.requests_per_second
    extra = f" failed {stats.failed}"
    if mode.startswith("open"):
        extra = f" backlog {stats.backlog:>4} drain {stats.drain_s:>5.2f} s" + extra
    return (
        f"{label:<44} {workload.name:<22} {mode:<13} {stats.requests_per_second:>7.0f} req/s  "
        f"p50 {stats.p50_ms:>7.2f} ms  p99 {stats.p99_ms:>7.2f} ms{extra}  | bare "
        f"{base.requests_per_second:>6.0f} req/s p50 {base.p50_ms:>5.2f} p99 {base.p99_ms:>6.2f}"
        f"  | ratio {ratio:>5.2f}x"
    )


async def _bare(
    database_url: str, index: int, workload: Workload, plan: Plan, log_file: str
) -> dict[str, Stats]:
    """The ceiling, measured with the same client and the same levels as the app."""
    figures: dict[str, Stats] = {}
    async with server("bare", database_url, index, log_file) as base_url:
        fake = ["10000000_PLUS_1730034567"] * plan.pairs
        await run_level(
            base_url, workload, fake[: plan.pairs // 10 + 1], max(plan.levels, default=1), 1
        )
        for clients in plan.levels:
            figures[f"{clients} clients"] = await run_level(base_url, workload, fake, clients, 1)
        if plan.rate:
            opened = ["10000000_PLUS_1730034567"] * plan.open_pairs(workload)
            figures["open"] = await run_open(base_url, workload, opened, plan.rate, 1)
    return figures


async def _prepare_variant(database_url: str, variant: Variant) -> None:
    """Put the partial index in the state the variant wants (the bench's database only)."""
    database = await Database.connect(database_url, migrate=False)
    try:
        async with database.transaction() as conn:
            if variant.pending_index:
                await conn.execute(
                    text(
                        "CREATE INDEX IF NOT EXISTS ix_notifications_pending"
                        " ON notifications (id) WHERE status = 'pending'"
                    )
                )
            else:
                await conn.execute(text("DROP INDEX IF EXISTS ix_notifications_pending"))
    finally:
        await database.close()


async def bench_database(label: str, database_url: str, plan: Plan, log_file: str) -> None:
    database = await Database.connect(database_url)  # migrated before anything is stored
    await database.close()
    if plan.rows:
        seconds = await seed_history(database_url, plan.rows)
        print(
            f"{label}: stored {plan.rows:,} paid orders, payments, sent notices in {seconds:.0f} s"
        )
    for index in plan.workloads:
        workload = WORKLOADS[index]
        bare = await _bare(database_url, index, workload, plan, log_file)
        for variant in plan.variants:
            await _prepare_variant(database_url, variant)
            title = f"{label} ({variant.label})"
            async with server("app", database_url, index, log_file, variant) as base_url:
                await _bench_app(title, base_url, database_url, workload, plan, bare)


async def _bench_app(
    title: str,
    base_url: str,
    database_url: str,
    workload: Workload,
    plan: Plan,
    bare: Mapping[str, Stats],
) -> None:
    database = await Database.connect(database_url, migrate=False)
    try:
        if workload.read_keys:
            keys = await workload.create_rows(database, workload.read_keys)
        else:
            count = plan.pairs * (len(plan.levels) + 1) + plan.open_pairs(workload)
            keys = await workload.create_rows(database, count)
    finally:
        await database.close()
    if workload.prime is not None:
        async with ClientSession(base_url) as session:
            post = _timed_post(session, workload, [])
            for key in keys:
                await workload.prime(post, key)

    def take(count: int) -> list[str]:
        """The next `count` keys: fresh orders for pairs, the same few round for reads."""
        nonlocal keys
        if workload.read_keys:
            return [keys[number % len(keys)] for number in range(count)]
        chunk, keys = keys[:count], keys[count:]
        return chunk

    trans = 1_000_000_000 + int(time.time()) % 1_000_000 * 1000
    warm = plan.pairs // 10 + 1 if workload.read_keys or not plan.levels else plan.pairs
    await run_level(base_url, workload, take(warm), max(plan.levels, default=8), trans)
    trans += warm
    for clients in plan.levels:
        stats = await run_level(base_url, workload, take(plan.pairs), clients, trans)
        trans += plan.pairs
        mode = f"{clients} clients"
        print(_line(title, workload, mode, stats, bare[mode]), flush=True)
    if plan.rate:
        stats = await run_open(
            base_url, workload, take(plan.open_pairs(workload)), plan.rate, trans
        )
        mode = f"open {plan.rate:g}/s"
        print(_line(title, workload, mode, stats, bare["open"]), flush=True)


def _variants(args: argparse.Namespace) -> list[Variant]:
    switches: list[float | None] = [
        None if value == "default" else float(value) for value in args.switch_interval.split(",")
    ]
    indexes = {"with": [True], "without": [False], "both": [False, True]}[args.pending_index]
    pings: list[bool | None] = {
        "engine": [None], "on": [True], "off": [False], "both": [True, False]
    }[args.pre_ping]  # fmt: skip
    return [
        Variant(switch, index, ping) for index in indexes for ping in pings for switch in switches
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000, help="pairs per concurrency level")
    parser.add_argument("--clients", default="1,16,64", help="concurrency levels ('' for none)")
    parser.add_argument("--rate", type=float, default=0, help="open loop: offered requests/s")
    parser.add_argument("--seconds", type=float, default=10, help="open loop: how long")
    parser.add_argument("--rows", type=int, default=0, help="history stored first (1000000)")
    names = ",".join(workload.short for workload in WORKLOADS)
    parser.add_argument("--workloads", default=names, help=f"some of {names}")
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="PostgreSQL needs DATABASE_URL"
    )
    parser.add_argument("--switch-interval", default="default", help="ms, e.g. default,0.5")
    parser.add_argument("--pending-index", choices=["with", "without", "both"], default="with")
    parser.add_argument("--pre-ping", choices=["engine", "on", "off", "both"], default="engine")
    parser.add_argument("--log-dir", default="", help="keep the app's logs here")
    parser.add_argument(
        "--compare-empty", action="store_true", help="with --rows: an empty database first"
    )
    args = parser.parse_args()
    chosen = args.workloads.split(",")
    plan = Plan(
        pairs=args.pairs,
        levels=[int(level) for level in args.clients.split(",") if level],
        rate=args.rate,
        seconds=args.seconds,
        rows=args.rows,
        workloads=[index for index, w in enumerate(WORKLOADS) if w.short in chosen],
        variants=_variants(args),
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    databases = args.databases.split(",")
    # --compare-empty: the same plan on an empty database, then on one holding --rows,
    # each in its own database, so the two differ by the history alone.
    plans = [replace(plan, rows=0), plan] if args.compare_empty and plan.rows else [plan]
    with tempfile.TemporaryDirectory() as directory:
        log_file = f"{args.log_dir or directory}/callbacks.log"
        for number, each in enumerate(plans):
            rows = f", {each.rows:,} rows" if each.rows else ""
            if "sqlite" in databases:
                sqlite_url = f"sqlite+aiosqlite:///{directory}/bench{number}.db"
                await bench_database(f"SQLite{rows}", sqlite_url, each, log_file)
            database_url = os.environ.get("DATABASE_URL", "")
            if "postgresql" in databases and database_url.startswith(("postgres", "postgresql")):
                async with scratch_postgres(database_url) as url:
                    await bench_database(f"PostgreSQL{rows}", url, each, log_file)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


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
