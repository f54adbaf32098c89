"""The pacer: replies push notices back; a pause holds every sender back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiogram import Bot
from aiogram.methods import SendMessage, TelegramMethod

from bot.workers.pacing import Pacer, ReplyPacing
from tests.conftest import BOT_TOKEN


async def test_replies_take_slots_and_queued_notices_give_way() -> None:
    pacer = Pacer(10)  # one slot every 0.1 s
    for chat in range(5):
        pacer.reserve(chat)  # five replies went out at once: half a second of the budget
    started = time.monotonic()
    await pacer.wait_turn(99)
    assert time.monotonic() - started >= 0.45


async def test_a_pause_holds_everyone_and_the_caller_keeps_the_first_slot() -> None:
    pacer = Pacer(10)
    pacer.pause(0.5)
    started = time.monotonic()
    await asyncio.gather(pacer.wait_turn(1), pacer.wait_turn(2))
    # Both waited out the pause, and the slot right after it stayed free for the caller.
    assert time.monotonic() - started >= 0.5 + 0.2 - 0.02


async def test_the_bots_replies_count_against_the_limit_through_the_session() -> None:
    pacer = Pacer(10)
    middleware = ReplyPacing(pacer)
    bot = Bot(BOT_TOKEN)

    async def telegram(_bot: Bot, _method: TelegramMethod[Any]) -> str:
        return "ok"

    try:
        for chat in range(5):  # five replies: half a second of the budget
            await middleware(telegram, bot, SendMessage(chat_id=chat, text="hi"))
        started = time.monotonic()
        await pacer.wait_turn(51)
        assert time.monotonic() - started >= 0.45
    finally:
        await bot.session.close()
