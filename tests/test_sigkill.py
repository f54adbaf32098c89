"""SIGKILL right after a payment commits, then a restart: exactly one "payment received"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from db.clock import system_clock
from db.database import Database
from tests.conftest import BOT_TOKEN, telegram_url
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import add_user, pay, wait_until_drained
from tests.test_process import free_port, product_env, start_product
from web.settings import load_settings

USER = 4701


@pytest.mark.slow
async def test_a_payment_committed_just_before_sigkill_is_announced_once_after_restart(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    database_url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    env = product_env(
        BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_URL=telegram_url(telegram),
        BASE_URL="https://bot.example.test",
        HOST="127.0.0.1",
        PORT=str(port),
        DATABASE_URL=database_url,
    )
    tariffs = load_settings(env).tariffs
    process = await start_product(env, port)
    db = await Database.connect(database_url)
    try:
        await add_user(db, USER, "en", system_clock())
        # The payment commits (in this process, on the product's database file), and the
        # product is killed before its notifier's next poll could deliver it.
        await pay(db, USER, tariffs["PLUS"], tariffs, system_clock())
        process.kill()
        await process.wait()
        assert telegram.delivered(USER) == []

        process = await start_product(env, port)
        await telegram.wait_for("sendMessage", lambda call: call.params["chat_id"] == USER)
        await wait_until_drained(db)
        await asyncio.sleep(1.5)  # more rounds of the restarted notifier: nothing more comes
        [message] = telegram.delivered(USER)
        assert message.text.startswith("✅ Payment received: 15 000 so'm.")
    finally:
        await db.close()
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
