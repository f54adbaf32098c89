"""Where a Click Prepare+Complete pair's time goes, on SQLite, under load.

    python -m bench.profile_click [--pairs 1000] [--clients 64] [--switch-interval MS]
        [--cprofile 25]

The real app runs in its own process (as in `bench.callbacks`), instrumented with
counters that cost next to nothing, switched on only while the pairs are sent:

- the event loop: time spent waiting in `select()` (idle) against the wall time;
- aiosqlite's thread: every hand-off from the loop to it (one queued call: `execute`,
  `fetchone`, `commit`...), counted by kind, and the time the thread spends running
  them (SQLite plus the driver), against the wall time;
- with `--cprofile N`: cProfile of the event loop's thread (it slows that thread, so its
  percentages are of a slower run; the counters above come from the same run), the N
  functions with the most own time.

py-spy is not installed here; these counters answer the question the issue asks (who is
busy) without a sampler. A script a person runs; no test depends on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import logging
import multiprocessing
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

from aiohttp import ClientSession, TCPConnector, web

from bench.callbacks import (
    BOT_TOKEN,
    CLICK_ENV,
    PAYME_ENV,
    WORKLOADS,
    _free_port,
    _timed_post,
    _wait_for_port,
    create_orders,
)
from db.database import Database
from tests.fake_telegram import FakeTelegram
from web.app import create_app
from web.settings import load_settings

CLICK = WORKLOADS[0]


@dataclass
class Counters:
    """What the server process measured between the parent's start and stop."""

    wall: float = 0.0
    loop_idle: float = 0.0
    thread_busy: float = 0.0
    handoffs: Counter[str] = field(default_factory=Counter)
    profile: str = ""


class Instruments:
    """The counters, installed once in the server process and reset on start."""

    def __init__(self) -> None:
        self.on = False
        self.counters = Counters()
        self.started = 0.0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        selector = loop._selector  # type: ignore[attr-defined]
        select = selector.select

        def timed_select(timeout: float | None = None) -> Any:
            began = time.perf_counter()
            try:
                return select(timeout)
            finally:
                if self.on:
                    self.counters.loop_idle += time.perf_counter() - began

        selector.select = timed_select

        import aiosqlite.core

        execute = aiosqlite.core.Connection._execute
        instruments = self

        async def counted(connection: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            if not instruments.on:
                return await execute(connection, fn, *args, **kwargs)
            instruments.counters.handoffs[getattr(fn, "__name__", repr(fn))] += 1

            def timed() -> Any:
                began = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    instruments.counters.thread_busy += time.perf_counter() - began

            return await execute(connection, timed)

        aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]

    def start(self) -> None:
        self.counters = Counters()
        self.started = time.perf_counter()
        self.on = True

    def stop(self) -> Counters:
        self.on = False
        self.counters.wall = time.perf_counter() - self.started
        return self.counters


async def _serve(
    database_url: str, port: int, switch_ms: float | None, top: int, events: tuple[Event, Event]
) -> Counters:
    if switch_ms is not None:
        sys.setswitchinterval(switch_ms / 1000)
    instruments = Instruments()
    instruments.install(asyncio.get_running_loop())
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
        **CLICK_ENV,
        **PAYME_ENV,
    }
    runner = web.AppRunner(create_app(load_settings(env)), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    start, stop = events
    await asyncio.to_thread(start.wait)
    profiler = cProfile.Profile() if top else None
    instruments.start()
    if profiler:
        profiler.enable()
    await asyncio.to_thread(stop.wait)
    if profiler:
        profiler.disable()
    counters = instruments.stop()
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
        counters.profile = text.getvalue()
    await runner.cleanup()
    return counters


def _serve_process(
    database_url: str,
    port: int,
    switch_ms: float | None,
    top: int,
    events: tuple[Event, Event],
    results: Any,
) -> None:
    logging.basicConfig(level=logging.WARNING)
    results.put(asyncio.run(_serve(database_url, port, switch_ms, top, events)))


async def profile(pairs: int, clients: int, switch_ms: float | None, top: int) -> None:
    context = multiprocessing.get_context("spawn")
    events = (context.Event(), context.Event())
    results = context.Queue()
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{directory}/profile.db"
        database = await Database.connect(url)
        try:
            keys = await create_orders(database, pairs + clients * 4)
        finally:
            await database.close()
        port = _free_port()
        process = context.Process(
            target=_serve_process, args=(url, port, switch_ms, top, events, results), daemon=True
        )
        process.start()
        try:
            await _wait_for_port(port)
            base_url = f"http://127.0.0.1:{port}"
            latencies: list[float] = []
            async with ClientSession(base_url, connector=TCPConnector(limit=clients)) as session:
                post = _timed_post(session, CLICK, latencies)
                warm, keys = keys[: clients * 4], keys[clients * 4 :]
                await _closed_loop(post, warm, clients, 2_000_000_000)
                latencies.clear()
                events[0].set()
                began = time.perf_counter()
                await _closed_loop(post, keys, clients, 2_100_000_000)
                elapsed = time.perf_counter() - began
                events[1].set()
            counters: Counters = await asyncio.to_thread(results.get, True, 60)
        finally:
            process.join(10)
            if process.is_alive():
                process.terminate()
    _report(pairs, clients, switch_ms, elapsed, latencies, counters)


async def _closed_loop(post: Any, keys: list[str], clients: int, first_trans: int) -> None:
    queue = list(enumerate(keys))
    queue.reverse()

    async def client() -> None:
        while queue:
            number, key = queue.pop()
            await CLICK.send_pair(post, key, first_trans + number)

    await asyncio.gather(*(client() for _ in range(clients)))


def _report(
    pairs: int,
    clients: int,
    switch_ms: float | None,
    elapsed: float,
    latencies: list[float],
    counters: Counters,
) -> None:
    latencies.sort()
    switch = "default (5 ms)" if switch_ms is None else f"{switch_ms:g} ms"
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    total = sum(counters.handoffs.values())
    print(f"Click Prepare+Complete on SQLite: {pairs} pairs, {clients} clients, switch {switch}")
    print(f"load average now: {load}")
    print(
        f"client: {2 * pairs / elapsed:.0f} req/s, {pairs / elapsed:.0f} pairs/s, "
        f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms"
    )
    wall = counters.wall
    print(f"server wall time measured: {wall:.2f} s")
    print(f"event loop idle in select(): {counters.loop_idle / wall:.0%} of the wall time")
    print(
        f"aiosqlite thread running calls: {counters.thread_busy / wall:.0%} of the wall time "
        f"({counters.thread_busy / pairs * 1000:.2f} ms a pair)"
    )
    print(f"hand-offs loop -> aiosqlite thread: {total / pairs:.1f} a pair; by kind:")
    for name, count in counters.handoffs.most_common():
        print(f"    {name:<24} {count / pairs:>6.2f} a pair")
    if counters.profile:
        print("cProfile of the event loop's thread (own time):")
        print(counters.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--switch-interval", type=float, default=None, help="ms")
    parser.add_argument("--cprofile", type=int, default=0, help="top N functions (0: off)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(profile(args.pairs, args.clients, args.switch_interval, args.cprofile))


if __name__ == "__main__":
    main()
