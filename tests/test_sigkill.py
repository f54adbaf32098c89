"""SIGKILL of `python -m web` around a payment's commit, then a restart: exactly one message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import select

from db.clock import system_clock
from db.database import Database
from db.schema import notifications
from tests.conftest import BOT_TOKEN, CLICK_ENV, telegram_url
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import add_user, pay, wait_until_drained
from tests.providers.click.helpers import complete_fields, make_order, prepare_fields
from tests.test_process import free_port, product_env, start_product
from web.settings import load_settings

USER = 4701
PAID = "✅ Payment received. Thank you!\n\nOrder: #"


@pytest.fixture
def env(telegram: FakeTelegram, tmp_path: Path) -> dict[str, str]:
    port = free_port()
    return product_env(
        BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=telegram_url(telegram),
        BASE_URL="https://bot.example.test",
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        **CLICK_ENV,
    )


@pytest.fixture
async def db(env: dict[str, str]) -> AsyncIterator[Database]:
    """The product's database file, opened from the test (as another process would)."""
    database = await Database.connect(env["DATABASE_URL"])
    yield database
    await database.close()


async def kill(process: asyncio.subprocess.Process) -> None:
    process.kill()  # SIGKILL: no shutdown hook runs
    await process.wait()


async def restart_and_expect_one_message(
    env: dict[str, str], db: Database, telegram: FakeTelegram
) -> None:
    process = await start_product(env, int(env["PORT"]))
    try:
        await telegram.wait_for(
            "sendMessage", lambda call: call.ok and call.params["chat_id"] == USER
        )
        await wait_until_drained(db)
        await asyncio.sleep(1.5)  # more rounds of the restarted notifier: nothing more comes
        [message] = telegram.delivered(USER)
        assert message.text.startswith(PAID)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


@pytest.mark.slow
async def test_a_payment_committed_just_before_sigkill_is_announced_once_after_restart(
    env: dict[str, str], db: Database, telegram: FakeTelegram
) -> None:
    tariffs = load_settings(env).tariffs
    process = await start_product(env, int(env["PORT"]))
    await add_user(db, USER, "en", system_clock())
    # The payment commits on the product's database file, and the product is killed
    # before its notifier's next poll could see it.
    await pay(db, USER, tariffs["PLUS"], tariffs, system_clock())
    await kill(process)
    assert telegram.delivered(USER) == []
    await restart_and_expect_one_message(env, db, telegram)


@pytest.mark.slow
async def test_a_click_payment_made_while_telegram_is_down_survives_sigkill(
    env: dict[str, str], db: Database, telegram: FakeTelegram
) -> None:
    order = await make_order(db, USER)
    telegram.outage = 1_000_000  # every send fails until the restart
    process = await start_product(env, int(env["PORT"]))
    base = f"http://127.0.0.1:{env['PORT']}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as session:
        prepare = prepare_fields(order.merchant_trans_id, 771001)
        async with session.post(
            base + "/click/prepare", data=urlencode(prepare), headers=headers
        ) as r:
            prepared = await r.json()
        assert prepared["error"] == 0
        complete = complete_fields(order.merchant_trans_id, 771001, prepared["merchant_prepare_id"])
        async with session.post(
            base + "/click/complete", data=urlencode(complete), headers=headers
        ) as r:
            assert (await r.json())["error"] == 0
    # The notifier tried at once (the commit woke it), Telegram answered 502, and the
    # notice went back to the queue (a kill before that would leave it to its lease).
    await telegram.wait_for("sendMessage", lambda call: call.params["chat_id"] == USER)
    for _ in range(100):
        async with db.transaction() as conn:
            if await conn.scalar(select(notifications.c.attempts)):
                break
        await asyncio.sleep(0.05)
    await kill(process)
    telegram.outage = 0
    await restart_and_expect_one_message(env, db, telegram)
