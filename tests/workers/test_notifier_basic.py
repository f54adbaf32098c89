"""The outbox worker delivers a notice written directly, in the user's language."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import select

from db import outbox
from db.clock import to_datetime
from db.schema import notifications, users
from db.users import set_language, upsert_user
from tests.conftest import FakeClock
from tests.fake_telegram import FakeTelegram
from web.keys import DATABASE


async def write_notice(client, clock: FakeClock, user_id: int, language: str) -> None:
    now = to_datetime(clock())
    async with client.app[DATABASE].transaction() as conn:
        await upsert_user(conn, user_id, "Ali", None, now)
        await set_language(conn, user_id, language)
        payload = {
            "tariff": "PLUS",
            "amount": 1_500_000,
            "expires_at": datetime(2099, 3, 1, 7, 0, tzinfo=UTC).isoformat(),
        }
        await outbox.enqueue(conn, user_id, outbox.PAYMENT_RECEIVED, payload, now)


async def notice_rows(client) -> list:
    async with client.app[DATABASE].transaction() as conn:
        return list((await conn.execute(select(notifications))).all())


async def test_a_queued_notice_is_sent_once_in_the_users_language(
    client, clock: FakeClock, telegram: FakeTelegram
) -> None:
    await write_notice(client, clock, 555, "ru")
    call = await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == 555)
    assert call.text == (
        "✅ Платёж получен: 15 000 сум.\n"
        "Ваш тариф PLUS действует до 01.03.2099 12:00 (по ташкентскому времени). Спасибо!"
    )
    assert call.buttons[0]["callback_data"] == "menu:myplan"
    for _ in range(50):
        [row] = await notice_rows(client)
        if row.status == "sent":
            break
        await asyncio.sleep(0.1)
    assert row.status == "sent" and row.sent_at is not None
    await asyncio.sleep(1.5)  # another idle round of the worker sends nothing more
    assert len(telegram.of("sendMessage", 555)) == 1


async def test_a_blocked_user_is_marked_and_the_notice_closed(
    client, clock: FakeClock, telegram: FakeTelegram
) -> None:
    telegram.blocked.add(556)
    await write_notice(client, clock, 556, "uz")
    await telegram.wait_for("sendMessage", lambda c: c.params["chat_id"] == 556)
    for _ in range(50):
        [row] = await notice_rows(client)
        if row.status != "pending":
            break
        await asyncio.sleep(0.1)
    assert row.status == "failed" and "blocked" in row.error
    async with client.app[DATABASE].transaction() as conn:
        reachable = await conn.scalar(select(users.c.reachable).where(users.c.id == 556))
    assert reachable is False
    await asyncio.sleep(1.5)
    assert len(telegram.of("sendMessage", 556)) == 1
