"""Notifier throughput with 10 000 notices queued, and the webhook's latency meanwhile.

    python -m bench.notifier [--count 10000] [--rate 25] [--latency-ms 50] [--webhook-rps 5]
                             [--database-url URL]

The product runs as it does in production (`python -m web` in its own process, webhook
mode) against a fake Bot API served from this process, which answers every send after
`--latency-ms` (a real round trip to Telegram). The notices are queued before the start,
one per user, so the only limit is the pacer. While they drain, this script sends
webhook updates (`/myplan` from other users, `--webhook-rps` a second, one at a time) and
measures each until the bot's reply reaches Telegram: with `handle_in_background` the webhook
would answer at once, so what is timed is the handler's own work (database, reply).

Printed every few seconds: notices delivered, the rate over the last interval, and the
webhook's p50/p99 so far; at the end the achieved send rate from the fake's timestamps
(first to last delivery) next to the configured one, and the rate of all messages
(notices and replies): replies count against the same limit, so notices fill the rest.
A script a person runs; no test depends on its timings.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, web
from sqlalchemy import insert

from db.clock import system_clock, to_datetime
from db.database import Database
from db.outbox import PAYMENT_RECEIVED
from db.schema import notifications, users
from tests.fake_telegram import FakeTelegram
from web.settings import load_settings

BOT_TOKEN = "123456789:AAE_bench_token_for_the_fake_bot_api_01234"
SECRET = "bench-secret"
ROOT = Path(__file__).resolve().parent.parent
FIRST_USER = 10_000_000  # notices go to FIRST_USER, FIRST_USER + 1, ...
WEBHOOK_USERS = range(1_000, 1_020)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def queue_notices(database_url: str, count: int) -> None:
    """One user and one "payment received" notice each, in bulk, before the product starts."""
    db = await Database.connect(database_url)
    now = to_datetime(system_clock())
    payload = {"tariff": "PLUS", "amount": 1_500_000, "expires_at": now.isoformat()}
    try:
        for start in range(0, count, 1000):
            ids = range(FIRST_USER + start, FIRST_USER + min(start + 1000, count))
            async with db.transaction() as conn:
                await conn.execute(
                    insert(users), [{"id": i, "language": "en", "created_at": now} for i in ids]
                )
                await conn.execute(
                    insert(notifications),
                    [
                        {
                            "user_id": i,
                            "kind": PAYMENT_RECEIVED,
                            "payload": payload,
                            "status": "pending",
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                        for i in ids
                    ],
                )
    finally:
        await db.close()


async def start_product(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"http://127.0.0.1:{port}/health") as response:
                    if response.status == 200:
                        return process
            except OSError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise SystemExit("the product did not start")


async def webhook_load(
    port: int, telegram: FakeTelegram, rps: float, latencies: list[float]
) -> None:
    """`/myplan` updates one at a time, each timed until the bot's reply reached Telegram."""
    update_ids = itertools.count(1)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    url = f"http://127.0.0.1:{port}/webhook/telegram"
    async with ClientSession() as session:
        for user_id in itertools.cycle(WEBHOOK_USERS):
            update_id = next(update_ids)
            update = {
                "update_id": update_id,
                "message": {
                    "message_id": update_id,
                    "date": int(time.time()),
                    "chat": {"id": user_id, "type": "private"},
                    "from": {"id": user_id, "is_bot": False, "first_name": "Bench"},
                    "text": "/myplan",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
                },
            }
            since, started = len(telegram.calls), time.monotonic()
            async with session.post(url, json=update, headers=headers) as response:
                response.raise_for_status()
            await telegram.wait_for(
                "sendMessage", lambda call, u=user_id: call.params["chat_id"] == u, since=since
            )
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, 1 / rps - latencies[-1]))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def main(args: argparse.Namespace) -> None:
    telegram = FakeTelegram()
    telegram.send_latency = args.latency_ms / 1000
    runner = web.AppRunner(telegram.app)
    await runner.setup()
    api_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", api_port).start()
    with tempfile.TemporaryDirectory() as tmp:
        raw_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        # The product's own reading of DATABASE_URL (postgresql:// means asyncpg).
        database_url = load_settings({"BOT_TOKEN": BOT_TOKEN, "DATABASE_URL": raw_url}).database_url
        print(f"queueing {args.count} notices in {database_url.split('://')[0]} ...", flush=True)
        await queue_notices(database_url, args.count)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": f"http://127.0.0.1:{api_port}",
            "BASE_URL": "https://bench.example.test",
            "WEBHOOK_SECRET": SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATABASE_URL": database_url,
            "NOTIFY_RATE_PER_SECOND": str(args.rate),
            "LOG_LEVEL": "WARNING",
        }
        process = await start_product(env, port)
        latencies: list[float] = []
        load = asyncio.create_task(webhook_load(port, telegram, args.webhook_rps, latencies))
        try:
            await report_progress(telegram, args.count, latencies)
        finally:
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
            process.terminate()
            await process.wait()
            await runner.cleanup()
    times = sorted(call.at for call in notices_delivered(telegram))
    achieved = (len(times) - 1) / (times[-1] - times[0])
    replies = [c for c in telegram.delivered() if times[0] <= c.at <= times[-1]]
    total = (len(replies) - 1) / (times[-1] - times[0])
    print(
        f"\n{len(times)} notices in {times[-1] - times[0]:.1f} s: {achieved:.2f} messages/s "
        f"(limit {args.rate:g}/s, Bot API round trip {args.latency_ms} ms)\n"
        f"all messages meanwhile (notices and replies to the webhook's updates): {total:.2f}/s\n"
        f"webhook /myplan until the reply, {len(latencies)} updates meanwhile: "
        f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )


def notices_delivered(telegram: FakeTelegram) -> list:
    return [call for call in telegram.delivered() if call.params["chat_id"] not in WEBHOOK_USERS]


async def report_progress(telegram: FakeTelegram, count: int, latencies: list[float]) -> None:
    started, last_count, last_time = time.monotonic(), 0, time.monotonic()
    while last_count < count:
        await asyncio.sleep(5)
        done, now = len(notices_delivered(telegram)), time.monotonic()
        print(
            f"{now - started:6.0f} s  {done:6d}/{count} delivered  "
            f"{(done - last_count) / (now - last_time):5.1f}/s  "
            f"webhook p50 {percentile(latencies, 0.5) * 1000:.0f} ms "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms ({len(latencies)})",
            flush=True,
        )
        last_count, last_time = done, now


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=25.0, help="NOTIFY_RATE_PER_SECOND")
    parser.add_argument("--latency-ms", type=int, default=50, help="fake Bot API round trip")
    parser.add_argument("--webhook-rps", type=float, default=5.0, help="updates per second")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    asyncio.run(main(parser.parse_args()))
