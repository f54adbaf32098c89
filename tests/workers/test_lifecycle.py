"""The subscription lifecycle in travelled time: reminders, expiry, renewal, instances.

The app's clock is a `FakeClock`; nothing sleeps for days. Each step runs the scheduler
at the travelled moment (as the in-process loop would) and lets the notifier deliver.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.workers.scheduler import JOB, Scheduler
from db import lifecycle
from db.clock import to_datetime
from db.database import Database
from db.schema import jobs, notifications
from db.users import set_reachable, set_tariff
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import add_user, pay, wait_until_drained
from web.keys import DATABASE, SCHEDULER
from web.settings import Settings

USER = 701


async def run_scheduler_now(db: Database, scheduler: Scheduler, clock: FakeClock) -> None:
    """Until a run at the clock's moment has completed (here, or in the background loop)."""
    now = to_datetime(clock())
    for _ in range(200):
        await scheduler.run_due()
        async with db.transaction() as conn:
            last = await conn.scalar(select(jobs.c.last_run_at).where(jobs.c.name == JOB))
        if last is not None and last >= now:
            await wait_until_drained(db)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the lifecycle job did not run")


def received(telegram: FakeTelegram, fragment: str) -> int:
    return sum(fragment in call.text for call in telegram.delivered(USER))


async def test_reminders_and_expiry_come_once_per_period_and_again_after_renewal(
    client: TestClient, clock: FakeClock, telegram: FakeTelegram, tg: Telegram, settings: Settings
) -> None:
    db, scheduler = client.app[DATABASE], client.app[SCHEDULER]
    plus = settings.tariffs["PLUS"]
    await add_user(db, USER, "ru", clock())
    await pay(db, USER, plus, settings.tariffs, clock())
    await wait_until_drained(db)
    assert received(telegram, "Платёж получен") == 1

    async def at(**travel: float) -> None:
        clock.advance(**travel)
        await run_scheduler_now(db, scheduler, clock)

    await at(days=26, hours=23)  # 3 days and 1 hour before the expiry
    assert received(telegram, "Осталось дней") == 0
    await at(hours=2)
    assert received(telegram, "Осталось дней: 3") == 1
    [reminder] = [call for call in telegram.delivered(USER) if "Осталось дней: 3" in call.text]
    assert reminder.text.startswith("⏰ Ваш тариф PLUS заканчивается ")
    assert reminder.buttons == [{"text": "🔄 Продлить PLUS", "callback_data": "buy:PLUS"}]
    await at(hours=1)
    async with db.transaction() as conn:  # a repeated scan of the whole period queues nothing
        since = to_datetime(clock()) - timedelta(days=40)
        assert await lifecycle.queue_reminders(conn, since, to_datetime(clock()), (3, 1)) == 0
    await at(days=2)
    assert received(telegram, "Осталось дней: 1") == 1
    await at(days=1)  # 2 hours past the expiry
    assert received(telegram, "⌛") == 1
    [expired] = [call for call in telegram.delivered(USER) if "⌛" in call.text]
    assert expired.buttons == [{"text": "🔄 Продлить PLUS", "callback_data": "buy:PLUS"}]
    await tg.message(USER, "/myplan", language="ru")
    assert "истёк" in telegram.delivered(USER)[-1].text
    await at(days=1)
    await at(days=3)
    assert (received(telegram, "Осталось дней"), received(telegram, "⌛")) == (2, 1)

    # The renew button starts a new order for the same tariff, with the pay links.
    await tg.press(USER, expired.buttons[0]["callback_data"], language="ru")
    order = telegram.delivered(USER)[-1]
    assert order.text.startswith("🧾 Заказ #")
    assert "\nPLUS: " in order.text
    assert [button["text"] for button in order.buttons] == [
        "Оплатить через Click",
        "Оплатить через Payme",
        "⬅️ Все тарифы",
    ]

    await pay(db, USER, plus, settings.tariffs, clock())  # a new period of 30 days from now
    await at(days=27, hours=1)
    assert received(telegram, "Осталось дней: 3") == 2
    await at(days=2)
    await at(days=1)
    assert (received(telegram, "Осталось дней: 1"), received(telegram, "⌛")) == (2, 2)


async def test_two_instances_run_each_due_job_once_and_skip_unreachable_users(
    database_url: str, clock: FakeClock
) -> None:
    first, second = await Database.connect(database_url), await Database.connect(database_url)
    try:
        schedulers = [Scheduler(first, clock, (3, 1)), Scheduler(second, clock, (3, 1))]
        expiry = to_datetime(clock()) + timedelta(days=10)
        for user_id in range(1000, 1020):
            await add_user(first, user_id, "uz", clock())
            async with first.transaction() as conn:
                await set_tariff(conn, user_id, "PRO", expiry)
        async with first.transaction() as conn:
            await set_reachable(conn, 1019, False)
        runs = []
        for travel in (0, 7.01, 7.02, 9.01, 9.5, 10.01, 11):
            clock.advance(days=travel - (runs[-1][0] if runs else 0))
            # Six callers at the same moment: three polls of each instance, concurrently.
            results = await asyncio.gather(*(s.run_due() for s in schedulers * 3))
            runs.append((travel, [r for r in results if r is not None]))
        assert [len(ran) for _, ran in runs] == [1] * 7  # exactly one runner per due moment
        assert [ran[0] for _, ran in runs] == [0, 19, 0, 19, 0, 19, 0]
        async with first.transaction() as conn:
            keys = list((await conn.execute(select(notifications.c.dedupe_key))).scalars())
        # Per reachable user: the 3-day and 1-day reminders and the expiry notice, once each.
        assert sorted(key.rsplit(":", 1)[0] for key in keys) == sorted(
            f"{kind}:{user_id}"
            for user_id in range(1000, 1019)
            for kind in ("expired", "reminder:1", "reminder:3")
        )
    finally:
        await first.close()
        await second.close()
