"""Several `python -m web` instances on one database: one bot, one send rate.

Real processes against the fake Bot API, which records when each message arrives; the
test queues notices on the shared database as payments in any instance would.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from db.clock import system_clock
from db.database import Database
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import add_user, queue_payment_notice
from tests.processes import (
    instance_env,
    max_in_window,
    start_instances,
    stop_all,
    wait_for_sender,
)

RATE = 20
NOTICES = 120


async def queue_stream(db: Database, chats: range, per_batch: int = 10) -> None:
    """A stream, not one batch: notices keep coming while the instances send (offered at
    about 2.5 times the rate, so the sender is always busy)."""
    for start in range(0, len(chats), per_batch):
        for chat in chats[start : start + per_batch]:
            await add_user(db, chat, "en", system_clock())
            await queue_payment_notice(db, chat, chat, system_clock())
        await asyncio.sleep(0.2)


async def wait_delivered(telegram: FakeTelegram, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while len(telegram.delivered()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(telegram.delivered())} of {count} delivered")
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 3])
async def test_instances_started_together_share_one_send_rate(
    database_url: str, telegram: FakeTelegram, count: int
) -> None:
    envs = [
        instance_env(telegram, database_url, NOTIFY_RATE_PER_SECOND=str(RATE)) for _ in range(count)
    ]
    instances = await start_instances(envs)  # together, on an empty database
    db = Database.from_url(database_url)
    try:
        await wait_for_sender(instances)
        chats = range(5000, 5000 + NOTICES)
        await queue_stream(db, chats)
        await wait_delivered(telegram, NOTICES, within=NOTICES / RATE + 60)
        await asyncio.sleep(2)  # more rounds of every instance: nothing more may come
        sends = telegram.of("sendMessage")
        assert sorted(call.params["chat_id"] for call in sends) == list(chats)  # each once
        # The bot's total, every instance together: at most RATE in any one-second
        # window (+1 for where the window's edge falls, as for one instance).
        assert max_in_window([call.at for call in sends]) <= RATE + 1
        assert [instance.is_sender for instance in instances].count(True) == 1
    finally:
        await db.close()
        await stop_all(instances)
