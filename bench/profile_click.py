"""Where a Click Prepare+Complete pair's time goes, under load, on SQLite or PostgreSQL.

    python -m bench.profile_click [--pairs 1000] [--clients 64]
        [--database-url postgresql://…] [--cprofile 40 [--sort cumulative]]

The real app runs in its own process (as in `bench.callbacks`), instrumented with
counters that cost next to nothing, switched on only while the pairs are sent:

- the event loop: time spent waiting in `select()` (idle) against the wall time;
- the database: every statement the in-loop SQLite connections run (BEGIN and COMMIT
  included) with the time spent inside `sqlite3`, or every round trip to PostgreSQL
  through asyncpg with the time spent awaiting it; counted a pair, by kind (the SQL's
  first word) and by the project's function that ran it;
- with `--cprofile N`: cProfile of the event loop's thread (it slows that thread, so its
  percentages are of a slower run; the counters above come from the same run), the N
  functions with the most own time, or the most time below them (`--sort cumulative`).

With `--database-url` the pairs run in a scratch database on that server, created and
dropped. A script a person runs; no test depends on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import glob
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

import asyncpg.connection
import asyncpg.prepared_stmt
from aiohttp import ClientSession, TCPConnector, web

from bench.callbacks import (
    WORKLOADS,
    _free_port,
    _timed_post,
    _wait_for_port,
    app_with_fake_telegram,
    create_orders,
    scratch_postgres,
)
from db import sqlite_inloop
from db.database import Database

CLICK = WORKLOADS[0]


@dataclass
class Counters:
    """What the server process measured between the parent's start and stop."""

    wall: float = 0.0
    cpu: float = 0.0  # the app process's own CPU time (user + system)
    loop_idle: float = 0.0
    driver: float = 0.0  # SQLite: inside sqlite3; PostgreSQL: awaiting the server
    statements: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, caller)
    profile: str = ""


# Frames of these files are the machinery between a caller and the driver.
_PLUMBING = ("/db/prepared.py", "/db/database.py", "/db/sqlite_inloop.py", "/contextlib.py")


def _caller() -> str:
    """The first frame of the project's own code above the database plumbing."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_ROOT) and not name.endswith(_PLUMBING):
            return f"{name[len(_ROOT) + 1 :]}:{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Instruments:
    """The counters, installed once in the server process and reset on start."""

    def __init__(self) -> None:
        self.on = False
        self.counters = Counters()
        self.started = 0.0
        self.cpu_started = 0.0

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
        # Every statement of the in-loop SQLite connections (db/sqlite_inloop.py), and
        # every round trip to PostgreSQL through asyncpg (statements, BEGIN, COMMIT).
        self._count(sqlite_inloop.InLoopConnection, "run")
        self._count(sqlite_inloop.InLoopCursor, "execute")
        self._count(asyncpg.connection.Connection, "execute")
        self._count(asyncpg.connection.Connection, "fetch")
        self._count(asyncpg.prepared_stmt.PreparedStatement, "fetch")
        self._count(asyncpg.prepared_stmt.PreparedStatement, "executemany")

    def _count(self, cls: type, method: str) -> None:
        original = getattr(cls, method)
        instruments = self

        async def counted(this: Any, *args: Any, **kwargs: Any) -> Any:
            if not instruments.on:
                return await original(this, *args, **kwargs)
            if isinstance(this, asyncpg.prepared_stmt.PreparedStatement):
                sql = this.get_query()
            else:
                sql = args[0] if args and isinstance(args[0], str) else "?"
            kind = sql.split(None, 1)[0].rstrip(";").upper()
            instruments.counters.statements[(kind, _caller())] += 1
            began = time.perf_counter()
            try:
                return await original(this, *args, **kwargs)
            finally:
                instruments.counters.driver += time.perf_counter() - began

        setattr(cls, method, counted)

    def start(self) -> None:
        self.counters = Counters()
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        self.on = True

    def stop(self) -> Counters:
        self.on = False
        self.counters.wall = time.perf_counter() - self.started
        self.counters.cpu = time.process_time() - self.cpu_started
        return self.counters


@dataclass(frozen=True)
class Plan:
    """What one run profiles (the command line)."""

    pairs: int
    clients: int
    top: int  # cProfile's N functions, 0: off
    sort: str  # cProfile's order: tottime (own time) or cumulative


async def _serve(database_url: str, port: int, plan: Plan, events: tuple[Event, Event]) -> Counters:
    instruments = Instruments()
    instruments.install(asyncio.get_running_loop())
    # The callback log goes nowhere: a file append is not what this profile is about.
    app = await app_with_fake_telegram(database_url, {})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    start, stop = events
    await asyncio.to_thread(start.wait)
    profiler = cProfile.Profile() if plan.top else None
    instruments.start()
    if profiler:
        profiler.enable()
    await asyncio.to_thread(stop.wait)
    if profiler:
        profiler.disable()
    counters = instruments.stop()
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(plan.sort).print_stats(plan.top)
        counters.profile = text.getvalue()
    await runner.cleanup()
    return counters


def _serve_process(
    database_url: str, port: int, plan: Plan, events: tuple[Event, Event], results: Any
) -> None:
    logging.basicConfig(level=logging.WARNING)
    results.put(asyncio.run(_serve(database_url, port, plan, events)))


async def profile(database_url: str, plan: Plan) -> None:
    context = multiprocessing.get_context("spawn")
    events = (context.Event(), context.Event())
    results = context.Queue()
    database = await Database.connect(database_url)
    try:
        keys = await create_orders(database, plan.pairs + plan.clients * 4)
    finally:
        await database.close()
    port = _free_port()
    process = context.Process(
        target=_serve_process, args=(database_url, port, plan, events, results), daemon=True
    )
    process.start()
    try:
        await _wait_for_port(port)
        latencies: list[float] = []
        connector = TCPConnector(limit=plan.clients)
        async with ClientSession(f"http://127.0.0.1:{port}", connector=connector) as session:
            post = _timed_post(session, CLICK, latencies)
            warm, keys = keys[: plan.clients * 4], keys[plan.clients * 4 :]
            await _closed_loop(post, warm, plan.clients, 2_000_000_000)
            latencies.clear()
            events[0].set()
            began, server_began = time.perf_counter(), _postgres_cpu()
            await _closed_loop(post, keys, plan.clients, 2_100_000_000)
            elapsed, server_cpu = time.perf_counter() - began, _postgres_cpu() - server_began
            events[1].set()
        counters: Counters = await asyncio.to_thread(results.get, True, 60)
    finally:
        process.join(10)
        if process.is_alive():
            process.terminate()
    _report(database_url, plan, elapsed, latencies, counters, server_cpu)


def _postgres_cpu() -> float:
    """CPU seconds used so far by this machine's PostgreSQL server processes (user +
    system, from /proc): the database's share of the cores, when it runs here."""
    ticks = 0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError):
            with open(stat) as file:
                fields = file.read().rsplit(")", 1)
            if fields[0].endswith("(postgres"):
                ticks += sum(int(value) for value in fields[1].split()[11:13])
    return ticks / os.sysconf("SC_CLK_TCK")


async def _closed_loop(post: Any, keys: list[str], clients: int, first_trans: int) -> None:
    queue = list(enumerate(keys))
    queue.reverse()

    async def client() -> None:
        while queue:
            number, key = queue.pop()
            await CLICK.send_pair(post, key, first_trans + number)

    await asyncio.gather(*(client() for _ in range(clients)))


def _report(
    database_url: str,
    plan: Plan,
    elapsed: float,
    latencies: list[float],
    counters: Counters,
    server_cpu: float,
) -> None:
    latencies.sort()
    pairs, wall = plan.pairs, counters.wall
    sqlite = database_url.startswith("sqlite")
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"Click Prepare+Complete on {'SQLite' if sqlite else 'PostgreSQL'}: "
        f"{pairs} pairs, {plan.clients} clients; load average now: {load}"
    )
    print(
        f"client: {2 * pairs / elapsed:.0f} req/s, {pairs / elapsed:.0f} pairs/s, "
        f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms"
    )
    print(
        f"app process: {wall / pairs * 1000:.2f} ms of wall time and "
        f"{counters.cpu / pairs * 1000:.2f} ms of CPU a pair; event loop idle in select(): "
        f"{counters.loop_idle / wall:.0%} of the wall time"
    )
    by_kind: Counter[str] = Counter()
    for (kind, _caller_name), count in counters.statements.items():
        by_kind[kind] += count
    total = sum(by_kind.values())
    trips = "statements" if sqlite else "round trips"
    if sqlite:
        print(f"inside sqlite3: {counters.driver / pairs * 1000:.2f} ms a pair")
    else:
        print(
            f"PostgreSQL server processes: {server_cpu / pairs * 1000:.2f} ms of CPU a pair; "
            f"a round trip awaited {counters.driver / max(total, 1) * 1000:.2f} ms on average"
        )
    print(f"{trips}: {total / pairs:.1f} a pair; by kind:")
    for kind, count in by_kind.most_common():
        print(f"    {kind:<12} {count / pairs:>6.2f} a pair")
    print(f"{trips} by caller (a pair):")
    for (kind, caller), count in sorted(counters.statements.items(), key=lambda item: item[0][1]):
        print(f"    {count / pairs:>6.2f}  {kind:<12} {caller}")
    if counters.profile:
        print(f"cProfile of the event loop's thread (by {plan.sort}):")
        print(counters.profile)


async def _run(database_url: str, plan: Plan) -> None:
    if database_url.startswith(("postgres", "postgresql")):
        async with scratch_postgres(database_url) as url:
            await profile(url, plan)
        return
    with tempfile.TemporaryDirectory() as directory:
        await profile(f"sqlite+aiosqlite:///{directory}/profile.db", plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (default SQLite)")
    parser.add_argument("--cprofile", type=int, default=0, help="top N functions (0: off)")
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    args = parser.parse_args()
    plan = Plan(args.pairs, args.clients, args.cprofile, args.sort)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args.database_url, plan))


if __name__ == "__main__":
    main()
