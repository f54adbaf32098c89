"""The sender lock on PostgreSQL: a holder whose session ends stops sending at once.

Two real `Notifier`s on one PostgreSQL database. The holder's lock session is ended
from outside (`pg_terminate_backend`, as a broken connection or a restarted server
would); its re-check notices, it stops, the standby takes over after the hand-over
window, and the bot's rate holds throughout: no window of one second with both.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from bot.i18n import create_i18n
from bot.workers.notifier import Notifier
from bot.workers.pacing import Pacer
from db.clock import system_clock
from db.database import Database
from db.send_rate import SENDER_LOCK_ID
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import add_user, fake_bot, queue_payment_notice, wait_until_drained
from tests.workers.test_notifier import FAST, Departures

RATE = 20


@pytest.fixture
async def pg_url(database_url: str) -> AsyncIterator[str]:
    """PostgreSQL only: an SQLite file's lock is a `flock` that nothing takes away from a
    living process (tests/test_instances.py covers it with real processes)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; SQLite's flock cannot be lost")
    assert os.environ.get("TEST_DATABASE_URL")
    yield database_url


async def test_a_holder_that_loses_its_lock_session_stops_and_the_standby_takes_over(
    pg_url: str, telegram: FakeTelegram
) -> None:
    databases = [await Database.connect(pg_url), await Database.connect(pg_url)]
    bots = [fake_bot(telegram), fake_bot(telegram)]
    departures = Departures()
    for bot in bots:
        bot.session.middleware(departures)
    notifiers = [
        Notifier(db, bot, create_i18n("en"), system_clock, Pacer(RATE), backoff=FAST)
        for db, bot in zip(databases, bots, strict=True)
    ]
    tasks: list[asyncio.Task[None]] = []
    try:
        chats = range(3000, 3080)
        for chat in chats:
            await add_user(databases[0], chat, "en", system_clock())
            await queue_payment_notice(databases[0], chat, 1, system_clock())
        first, second = notifiers
        tasks.append(asyncio.create_task(first.run()))
        # The first one took the lock and sends.
        await telegram.wait_for("sendMessage", lambda call: call.ok, within=30)
        tasks.append(asyncio.create_task(second.run()))
        await asyncio.sleep(1.5)  # the second one tried the lock and stands by
        assert first._holding and not second._holding
        async with databases[1].transaction() as conn:
            ended = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND objid = :objid AND granted"
                    # Advisory locks are per database; other tests' databases hold theirs.
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ),
                {"objid": SENDER_LOCK_ID % 2**32},
            )
        assert ended == 1
        lost_at = time.monotonic()
        for _ in range(100):
            if not first._holding:
                break
            await asyncio.sleep(0.05)
        # Noticed within the re-check interval plus its timeout.
        assert time.monotonic() - lost_at < 2.5
        await wait_until_drained(databases[0], within=60)  # the dropped ones after the lease
        await asyncio.sleep(1)
        assert second._holding
        assert sorted(call.params["chat_id"] for call in telegram.of("sendMessage")) == list(chats)
        times = sorted(departures.times.values())
        assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= RATE
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bot in bots:
            await bot.session.close()
        for db in databases:
            await db.close()
