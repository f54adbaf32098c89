"""The product started the way a user starts it: `python -m web` with environment variables."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import BOT_TOKEN, message, telegram_url
from tests.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
SECRET = "process-test-secret"


# Ports for the processes tests start come from below the kernel's ephemeral range
# (ip_local_port_range, 32768-60999 by default), which bind(0) and outgoing connections
# draw from: a port found free here is not handed to another test's server (under
# pytest-xdist, another worker's) before the started process binds it. Each xdist worker
# walks its own block, from a random start (a parallel run elsewhere on the machine).
_PORT_BLOCKS = range(20000, 30000, 1000)
_next_port: int | None = None


def free_port() -> int:
    global _next_port
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    block = _PORT_BLOCKS[int(worker or 0) % len(_PORT_BLOCKS)]
    if _next_port is None:
        _next_port = random.randrange(1000)
    for _ in range(1000):
        port = block + _next_port % 1000
        _next_port += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (or closing): the next one
            return port
    raise OSError(f"no free port in {block}-{block + 999}")


def product_env(**extra: str) -> dict[str, str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {**keep, "PYTHONUNBUFFERED": "1", **extra}


async def start_product(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    """`python -m web` started and answering /health (the caller stops or kills it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(1200):  # generous: several instances may start on 2 busy cores
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if process.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the product did not answer /health within 120 s")
        if process.returncode is not None:
            output = (await process.stdout.read()).decode()  # type: ignore[union-attr]
            raise AssertionError(f"the product exited early:\n{output}")
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return process


@asynccontextmanager
async def running_product(env: dict[str, str], port: int) -> AsyncIterator[str]:
    process = await start_product(env, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)


@pytest.mark.slow
async def test_webhook_mode_serves_health_and_answers_start(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    env = product_env(
        BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=telegram_url(telegram),
        BASE_URL="https://bot.example.test",
        WEBHOOK_SECRET=SECRET,
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
    )
    async with running_product(env, port) as base, aiohttp.ClientSession() as session:
        async with session.get(base + "/health") as response:
            assert (await response.json())["database"] == "ok"
        update = {"update_id": 1, "message": message(4242, "/start", "en")}
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with session.post(base + "/webhook/telegram", json=update, headers=headers) as r:
            assert r.status == 200
        call = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == 4242)
        assert call.text == "Welcome! Please choose your language:"
        # Registration runs beside the server (payments are answered while Telegram is
        # away), so the webhook may be set after the first update is served.
        webhook = await telegram.wait_for("setWebhook")
    assert webhook.params["url"] == "https://bot.example.test/webhook/telegram"
    assert (tmp_path / "bot.db").exists()


@pytest.mark.slow
async def test_polling_mode_serves_http_and_the_bot_in_one_process(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    telegram.updates.append({"update_id": 7, "message": message(4343, "/help", "en")})
    env = product_env(
        BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=telegram_url(telegram),
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
    )
    async with running_product(env, port):
        call = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == 4343)
        assert "/tariffs" in call.text
    assert telegram.of("setWebhook") == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "configuration error: BOT_TOKEN: required but not set"),
        ({"BOT_TOKEN": BOT_TOKEN, "PORT": "http"}, "configuration error: PORT: must be a whole"),
        (
            {"BOT_TOKEN": BOT_TOKEN, "CLICK_SERVICE_ID": "1"},
            "configuration error: CLICK_MERCHANT_ID: required when CLICK_SERVICE_ID is set",
        ),
    ],
)
async def test_a_bad_setting_stops_the_start_with_one_line(
    env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    env = {**product_env(), "PYTHONPATH": str(ROOT), **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    # Generous: the start imports aiogram (8 s on this VM when quiet), and the suite's
    # four workers share two cores (a CI run saw 30 s pass).
    stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected)
    assert "Traceback" not in stderr.decode() and stdout == b""


async def test_an_unreachable_database_stops_the_start_with_one_line(tmp_path: Path) -> None:
    env = {
        **product_env(),
        "BOT_TOKEN": BOT_TOKEN,
        "BASE_URL": "https://bot.example.test",
        "PORT": str(free_port()),
        "DATABASE_URL": "postgresql://nobody:hunter2@127.0.0.1:9/none",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    text = stderr.decode()
    assert text.startswith("start-up error: DATABASE_URL: cannot open the database:")
    assert "Traceback" not in text and "hunter2" not in text
