"""Start and stop whatever Telegram does: the product started as a user starts it.

Telegram unreachable: the routes answer payments, one line says so, SIGTERM ends it in
seconds. A token Telegram rejects, a busy port: one line, the right exit status.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import BOT_TOKEN, CLICK_ENV, telegram_url
from tests.fake_telegram import FakeTelegram
from tests.providers.click.helpers import prepare_fields
from tests.test_process import ROOT, free_port, product_env, start_product


async def stop_and_read(process: asyncio.subprocess.Process) -> tuple[float, str]:
    """SIGTERM, then how long the process took to exit and everything it printed."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output = (await asyncio.wait_for(process.stdout.read(), 30)).decode()  # type: ignore[union-attr]
    await asyncio.wait_for(process.wait(), 30)
    return time.monotonic() - started, output


@pytest.mark.slow
async def test_telegram_unreachable_the_payments_are_served_and_sigterm_stops_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = product_env(
        BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        BASE_URL="https://bot.example.test",
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        **CLICK_ENV,
    )
    process = await start_product(env, port)
    try:
        async with aiohttp.ClientSession() as session:
            body = prepare_fields("123456_PLUS_1730034567", 1)  # a well-signed Prepare
            async with session.post(f"http://127.0.0.1:{port}/click/prepare", data=body) as r:
                assert r.status == 200 and (await r.json())["error"] == -5
    finally:
        seconds, output = await stop_and_read(process)
    assert process.returncode == 0
    assert seconds < 10
    assert output.count("Telegram unreachable") == 1, output
    assert "Traceback" not in output and BOT_TOKEN.split(":")[1] not in output


async def test_a_token_telegram_rejects_stops_the_start_with_one_line(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    telegram.unauthorized = True
    env = product_env(
        BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=telegram_url(telegram),
        PORT=str(free_port()),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert stderr.decode().strip().splitlines() == [
        "configuration error: BOT_TOKEN: Telegram rejects this token; copy it again from @BotFather"
    ]


async def test_a_busy_port_stops_the_start_with_one_line(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = product_env(
            BOT_TOKEN=BOT_TOKEN,
            TELEGRAM_API_URL=telegram_url(telegram),
            HOST="127.0.0.1",
            PORT=str(port),
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "web", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert stderr.decode().strip().splitlines() == [
        f"start-up error: PORT: {port} is already in use"
    ]
