"""The notifier against the fake Bot API: outages, 429, unreachable users, pace, instances.

Each test runs real `Notifier`s (real aiogram `Bot`, real HTTP, real database) with a
short backoff so that an outage of a few answers passes in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import TelegramMethod
from sqlalchemy import select

from bot.i18n import create_i18n
from bot.workers.notifier import Backoff, Notifier
from bot.workers.pacing import Pacer
from db import outbox
from db.clock import system_clock, to_datetime
from db.database import Database
from db.schema import users
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import (
    add_user,
    fake_bot,
    queue_payment_notice,
    statuses,
    wait_until_drained,
)

FAST = Backoff(base=0.05, cap=0.2)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.connect(database_url)
    yield database
    await database.close()


class Departures(BaseRequestMiddleware):
    """When each `sendMessage` leaves the bot for its HTTP session (after the pacer)."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}  # chat id -> moment

    async def __call__(
        self, make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
    ) -> Any:
        if method.__api_method__ == "sendMessage":
            self.times[getattr(method, "chat_id", 0)] = time.monotonic()
        return await make_request(bot, method)


@asynccontextmanager
async def running(
    db: Database, telegram: FakeTelegram, rate: float = 30, departures: Departures | None = None
) -> AsyncIterator[Notifier]:
    bot = fake_bot(telegram)
    if departures is not None:
        bot.session.middleware(departures)
    notifier = Notifier(
        db, bot, create_i18n("uz"), system_clock, Pacer(rate), idle_seconds=0.05, backoff=FAST
    )
    task = asyncio.create_task(notifier.run())
    try:
        yield notifier
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bot.session.close()


def amounts(telegram: FakeTelegram, chat_id: int) -> list[str]:
    """The amounts (which notice) the user actually received, in arrival order."""
    return [
        call.text.split(": ", 1)[1].split("\u00a0so'm")[0] for call in telegram.delivered(chat_id)
    ]


async def test_an_outage_then_recovery_delivers_each_notice_once_in_order_per_user(
    db: Database, telegram: FakeTelegram
) -> None:
    chats = (801, 802, 803)
    for chat in chats:
        await add_user(db, chat, "en", system_clock())
    for n in range(1, 4):  # interleaved: 801 #1, 802 #1, 803 #1, 801 #2, ...
        for chat in chats:
            await queue_payment_notice(db, chat, chat * 10 + n, system_clock())
    telegram.outage = 7
    async with running(db, telegram):
        await wait_until_drained(db)
    for chat in chats:
        assert amounts(telegram, chat) == [
            f"{chat * 10 + n:,}".replace(",", "\u00a0") for n in (1, 2, 3)
        ]
    assert len(telegram.of("sendMessage")) == 9 + 7  # every 502 was retried, nothing more
    assert {status for _, status, _ in await statuses(db)} == {"sent"}


async def test_429_is_waited_out_exactly_then_sent(db: Database, telegram: FakeTelegram) -> None:
    await add_user(db, 811, "en", system_clock())
    await queue_payment_notice(db, 811, 1, system_clock())
    telegram.retry_after[811] = 2
    async with running(db, telegram):
        await wait_until_drained(db)
    first, second = telegram.of("sendMessage", 811)
    assert not first.ok and second.ok
    assert second.at - first.at >= 2.0
    assert len(telegram.delivered(811)) == 1


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (lambda fake, chat: fake.blocked.add(chat), "bot was blocked by the user"),
        (lambda fake, chat: fake.deactivated.add(chat), "user is deactivated"),
        (lambda fake, chat: fake.not_found.add(chat), "chat not found"),
    ],
)
async def test_an_unreachable_user_is_marked_and_the_notice_closed_without_retry(
    db: Database,
    telegram: FakeTelegram,
    script: Callable[[FakeTelegram, int], None],
    reason: str,
) -> None:
    await add_user(db, 821, "ru", system_clock())
    await add_user(db, 822, "ru", system_clock())
    await queue_payment_notice(db, 821, 1, system_clock())
    await queue_payment_notice(db, 822, 2, system_clock())
    script(telegram, 821)
    async with running(db, telegram):
        await wait_until_drained(db)
        await asyncio.sleep(0.3)  # more rounds of the worker: no retry may follow
    [(_, status, error), (_, other_status, _)] = await statuses(db)
    assert status == "failed" and reason in error
    assert other_status == "sent"
    assert len(telegram.of("sendMessage", 821)) == 1
    async with db.transaction() as conn:
        reachable = dict((await conn.execute(select(users.c.id, users.c.reachable))).all())
    assert reachable == {821: False, 822: True}


async def test_one_message_per_second_per_chat(db: Database, telegram: FakeTelegram) -> None:
    await add_user(db, 831, "en", system_clock())
    for n in range(3):
        await queue_payment_notice(db, 831, n + 1, system_clock())
    async with running(db, telegram):
        await wait_until_drained(db)
    calls = telegram.delivered(831)
    assert len(calls) == 3
    assert all(later.at - earlier.at >= 0.95 for earlier, later in itertools.pairwise(calls))


async def test_the_total_rate_never_exceeds_the_setting(
    db: Database, telegram: FakeTelegram
) -> None:
    chats = range(840, 880)
    for chat in chats:
        await add_user(db, chat, "en", system_clock())
        await queue_payment_notice(db, chat, 1, system_clock())
    departures = Departures()
    async with running(db, telegram, rate=20, departures=departures):
        await wait_until_drained(db)
    assert len(telegram.delivered()) == 40
    # Any one-second window holds at most 20 sends (+1 for where the window's edge falls).
    # Counted when each send leaves the bot, after the pacer: the fake Bot API shares this
    # process's event loop, so under load its arrival stamps bunch by however late the
    # loop got to reading them, which says nothing of the pace (the arrival check with
    # real processes is in tests/test_instances.py).
    times = sorted(departures.times.values())
    assert len(times) == 40
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 21


async def test_two_instances_take_each_notice_exactly_once(
    database_url: str, telegram: FakeTelegram
) -> None:
    first, second = await Database.connect(database_url), await Database.connect(database_url)
    try:
        chats = range(900, 960)
        for chat in chats:
            await add_user(first, chat, "en", system_clock())
            await queue_payment_notice(first, chat, 1, system_clock())
        async with running(first, telegram), running(second, telegram):
            await wait_until_drained(first)
        assert sorted(call.params["chat_id"] for call in telegram.of("sendMessage")) == list(chats)
    finally:
        await first.close()
        await second.close()


async def test_a_notice_whose_lease_ran_out_while_waiting_is_not_sent(
    db: Database, telegram: FakeTelegram
) -> None:
    await add_user(db, 851, "en", system_clock())
    await queue_payment_notice(db, 851, 1, system_clock())
    bot = fake_bot(telegram)
    notifier = Notifier(db, bot, create_i18n("uz"), system_clock, Pacer(30))
    try:
        async with db.transaction() as conn:
            [notice] = await outbox.claim_due(conn, to_datetime(system_clock()), 10, notifier.lease)
        await notifier.deliver(notice, lease_ends=time.monotonic() - 1)
    finally:
        await bot.session.close()
    assert telegram.of("sendMessage") == []
    assert [status for _, status, _ in await statuses(db)] == ["pending"]


async def test_stop_lets_a_send_on_the_wire_finish_and_drops_the_waiting_ones(
    db: Database, telegram: FakeTelegram
) -> None:
    """Shutdown: a notice Telegram is answering is marked sent (never re-queued to be sent
    again by another instance); a notice still waiting its turn is left queued, unsent."""
    await add_user(db, 891, "en", system_clock())
    for n in (1, 2):  # the second waits a second for its chat's turn
        await queue_payment_notice(db, 891, n, system_clock())
    telegram.send_latency = 1.0
    async with running(db, telegram) as notifier:
        await telegram.wait_for("sendMessage")  # the first is on the wire
        await notifier.stop(grace_seconds=5)
        assert len(telegram.of("sendMessage", 891)) == 1
        assert [status for _, status, _ in await statuses(db)] == ["sent", "pending"]


async def test_a_cancel_that_meets_a_wakeup_still_stops_the_notifier(
    db: Database, telegram: FakeTelegram
) -> None:
    """The notifier is cancelled in the same loop turn as something wakes it (a commit, a
    finished send). It must stop: a lost cancel keeps it running, and the shutdown or test
    awaiting it hangs. (`asyncio.wait_for` on Python 3.11 returns the wakeup instead of
    raising the cancel, gh-86296; two full suite runs hung on it.)"""
    bot = fake_bot(telegram)
    notifier = Notifier(
        db, bot, create_i18n("uz"), system_clock, Pacer(30), idle_seconds=60, backoff=FAST
    )
    task = asyncio.create_task(notifier.run())
    try:
        for _ in range(100):  # the lock is taken at once; then it waits (hand-over, idle)
            if notifier._holding:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        notifier._wakeup.set()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert task in done, "the notifier ran on after its cancel"
        assert task.cancelled()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bot.session.close()
