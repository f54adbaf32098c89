"""Several `python -m web` instances on one database, started as an operator starts them.

Each instance is a real process with its own port; its output is read as it comes (a
full pipe would stall a chatty process) and kept for assertions. `Instance.is_sender`
tells which one holds the sender lock, from its own log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.conftest import BOT_TOKEN, CLICK_ENV, PAYME_ENV, telegram_url
from tests.fake_telegram import FakeTelegram
from tests.test_process import free_port, product_env, start_product

SENDER_LINE = "this instance sends the bot's messages now"
STANDBY_LINE = "lost the sender lock"


@dataclass
class Instance:
    env: dict[str, str]
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.env["PORT"])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def is_sender(self) -> bool:
        """Holds the sender lock now, by its own log (taken, and not lost since)."""
        taken = [i for i, line in enumerate(self.lines) if SENDER_LINE in line]
        lost = [i for i, line in enumerate(self.lines) if STANDBY_LINE in line]
        return bool(taken) and (not lost or lost[-1] < taken[-1])

    async def terminate(self, within: float = 30) -> int:
        """SIGTERM, then wait for the exit (and the last of the output)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), within)
        await self._finish_reading()
        return self.process.returncode or 0

    async def kill(self) -> None:
        """SIGKILL: no shutdown hook runs."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._finish_reading()

    async def _finish_reading(self) -> None:
        if self.reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.reader, 5)


def instance_env(telegram: FakeTelegram | str, database_url: str, **extra: str) -> dict[str, str]:
    """One instance's environment: webhook mode, Click and Payme on, a port of its own;
    `telegram` is the fake Bot API or the URL of a proxy in front of it."""
    return product_env(
        BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=telegram if isinstance(telegram, str) else telegram_url(telegram),
        BASE_URL="https://bot.example.test",
        HOST="127.0.0.1",
        PORT=str(free_port()),
        DATABASE_URL=database_url,
        **CLICK_ENV,
        **PAYME_ENV,
        **extra,
    )


async def start_instance(env: dict[str, str]) -> Instance:
    process = await start_product(env, int(env["PORT"]))
    instance = Instance(env, process)
    instance.reader = asyncio.create_task(_read_lines(process, instance.lines))
    return instance


async def start_instances(envs: Sequence[dict[str, str]]) -> list[Instance]:
    """All started at once (racing for the migrations and the sender lock)."""
    results = await asyncio.gather(*(start_instance(env) for env in envs), return_exceptions=True)
    started = [r for r in results if isinstance(r, Instance)]
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        for instance in started:
            await instance.kill()
        raise failed[0]
    return started


async def stop_all(instances: Sequence[Instance]) -> None:
    await asyncio.gather(*(instance.kill() for instance in instances), return_exceptions=True)


async def wait_for_sender(instances: Sequence[Instance], within: float = 30) -> Instance:
    """The instance that holds the sender lock, once one says so."""
    for _ in range(int(within * 10)):
        senders = [instance for instance in instances if instance.is_sender]
        if senders:
            return senders[0]
        await asyncio.sleep(0.1)
    raise AssertionError("no instance took the sender lock:\n" + instances[0].output)


def max_in_window(times: Sequence[float], seconds: float = 1.0) -> int:
    """The most timestamps that fall in any half-open window [t, t + seconds)."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


async def _read_lines(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert process.stdout is not None
    async for raw in process.stdout:
        lines.append(raw.decode(errors="replace").rstrip())
