"""Idle memory and start time of `python -m web`, next to the floor measured in the same run.

    python -m bench.process [--rounds 3] [--database-url URL]

The floor is the least any aiogram bot on aiohttp costs: a process that imports aiogram
and aiohttp and serves a bare `/health` and webhook route. The product is `python -m web`
on a fresh SQLite file (or `--database-url`), with a fake Bot API on loopback so the
token check and the webhook registration succeed. For each round, each process is
spawned, timed until `/health` answers 200, left idle for two seconds, and its resident
memory read from /proc. The second start of the product runs on the database the first
one migrated, so the "restart" line includes checking migrations on an existing database.

Figures are medians over the rounds; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "123456789:AAE_bench_token_for_the_fake_bot_api_01234"
FLOOR = """
import aiogram, aiohttp
from aiohttp import web
async def ok(request):
    return web.json_response({"status": "ok"})
app = web.Application()
app.router.add_get("/health", ok)
app.router.add_post("/webhook/telegram", ok)
web.run_app(app, host="127.0.0.1", port=int(__import__("os").environ["PORT"]), print=None)
"""


@dataclass
class Figure:
    start_s: float
    rss_mib: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def measure(argv: list[str], env: dict[str, str], port: int) -> Figure:
    """Spawn `argv`, wait for /health 200, idle 2 s, read RSS, stop it with SIGTERM."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                if process.returncode is not None:
                    error = (await process.stderr.read()).decode()  # type: ignore[union-attr]
                    raise SystemExit(f"{argv[-1]} exited during start: {error.strip()}")
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.02)
        start_s = time.perf_counter() - started
        await asyncio.sleep(2)
        return Figure(start_s, rss_mib(process.pid))
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def run(rounds: int, database_url: str | None) -> None:
    fake = FakeTelegram()
    runner = web.AppRunner(fake.app)
    await runner.setup()
    fake_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", fake_port).start()
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    floor, first, restart = [], [], []
    try:
        for number in range(1, rounds + 1):
            port = free_port()
            floor.append(
                await measure([sys.executable, "-c", FLOOR], {**base, "PORT": str(port)}, port)
            )
            with tempfile.TemporaryDirectory() as scratch:
                env = {
                    **base,
                    "BOT_TOKEN": BOT_TOKEN,
                    "TELEGRAM_API_URL": f"http://127.0.0.1:{fake_port}",
                    "BASE_URL": "https://bench.example.test",
                    "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{scratch}/bot.db",
                    "HOST": "127.0.0.1",
                    "PORT": str(port),
                    "LOG_LEVEL": "WARNING",
                }
                first.append(await measure([sys.executable, "-m", "web"], env, port))
                restart.append(await measure([sys.executable, "-m", "web"], env, port))
            print(f"round {number}/{rounds} done", file=sys.stderr, flush=True)
    finally:
        await runner.cleanup()

    def line(name: str, figures: list[Figure]) -> None:
        start = statistics.median(f.start_s for f in figures)
        rss = statistics.median(f.rss_mib for f in figures)
        floor_start = statistics.median(f.start_s for f in floor)
        floor_rss = statistics.median(f.rss_mib for f in floor)
        print(
            f"| {name} | {start:.2f} | {start / floor_start:.2f}× ({start - floor_start:+.2f} s)"
            f" | {rss:.0f} | {rss / floor_rss:.2f}× ({rss - floor_rss:+.0f} MiB) |"
        )

    print("| process | spawn to healthy, s | vs floor | idle RSS, MiB | vs floor |")
    print("|---|---|---|---|---|")
    line("floor: aiogram + aiohttp, bare routes", floor)
    line("python -m web, fresh database", first)
    line("python -m web, restart on that database", restart)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="PostgreSQL (or SQLite) URL; default a temp SQLite")
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.database_url))


if __name__ == "__main__":
    main()
