"""The admins' daily digest: chosen in /notices, it replaces the per-payment notices of that
admin only, never the alerts about money at risk; it arrives once at the hour with the
figures of the database, survives a missed hour, a second instance and a restart, and
"At once" brings the notices back (with what the pending digest held so far)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from bot.workers.scheduler import Scheduler
from db import digest
from db.clock import to_ms
from db.database import Database
from db.schema import admin_settings, notifications, orders, payments, users
from tests.admin.click_payments import pay
from tests.admin.helpers import (
    ADMIN,
    BASE,
    add_payment,
    add_user,
    assert_valid_html,
    button,
    plain,
    press_on,
    screen,
)
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import wait_until_drained
from tests.providers.click.helpers import ClickCaller
from web.keys import DATABASE, SCHEDULER, SETTINGS
from web.settings import Settings

AT_ONCE_ADMIN = 900002


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(ADMIN_IDS=f"{ADMIN},{AT_ONCE_ADMIN}")


def texts(telegram: FakeTelegram, admin: int, start: str) -> list[str]:
    return [plain(c.text) for c in telegram.delivered(admin) if plain(c.text).startswith(start)]


async def english_admin(client) -> None:
    """The digest admin chose English (the other reads the default, Uzbek)."""
    async with client.server.app[DATABASE].transaction() as conn:
        await conn.execute(insert(users).values(id=ADMIN, language="en", created_at=BASE))


async def choose(tg: Telegram, telegram: FakeTelegram, label: str) -> str:
    await tg.message(ADMIN, "/notices")
    await press_on(tg, screen(telegram), button(screen(telegram), label))
    return plain(screen(telegram).text)


async def settle(client) -> None:
    await wait_until_drained(client.server.app[DATABASE])
    await asyncio.sleep(0.2)


async def digests_after_polls(client, telegram: FakeTelegram, clock: FakeClock) -> int:
    """Poll at the clock's moment as the app's scheduler and a second instance's would
    (the app's own loop may poll too); how many digests the admin has received so far."""
    db = client.server.app[DATABASE]
    other = Scheduler(db, clock, (), admin_ids=client.server.app[SETTINGS].admin_ids)
    for scheduler in (client.server.app[SCHEDULER], other, client.server.app[SCHEDULER]):
        await scheduler.run_digests()
    await settle(client)
    return len(texts(telegram, ADMIN, "📋"))


async def span_sums(client, since_ms: int, until_ms: int) -> dict[str, tuple[int, int]]:
    """Direct sums over the payments table: received per tariff, and refunds."""
    async with client.server.app[DATABASE].read() as conn:
        rows = (
            await conn.execute(
                select(payments, orders.c.tariff).join(orders, orders.c.id == payments.c.order_id)
            )
        ).all()
    sums: dict[str, tuple[int, int]] = {}
    for row in rows:
        if row.perform_time is not None and since_ms <= row.perform_time < until_ms:
            for key in ("all", row.tariff, row.provider):
                count, amount = sums.get(key, (0, 0))
                sums[key] = (count + 1, amount + row.amount)
    return sums


def som(tiyin: int) -> str:
    return f"{tiyin // 100:,}".replace(",", "\u00a0") + "\u00a0so'm"


async def test_the_digest_replaces_notices_keeps_alerts_and_arrives_once_at_the_hour(
    client, tg: Telegram, telegram: FakeTelegram, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)  # 10.11.2026 12:00 Tashkent
    await english_admin(client)
    text = await choose(tg, telegram, "09:00")
    assert text.startswith("Payment notices: one digest a day at 09:00 (Tashkent time).")
    assert "✓ 09:00" in [b["text"] for b in screen(telegram).buttons]
    click = ClickCaller(client)
    await pay(click, 3001)
    clock.advance(hours=1)
    await pay(click, 3002, "PRO")
    await pay(click, 3003, times=2)  # one order paid twice: money at risk
    await settle(client)
    assert texts(telegram, ADMIN, "💰") == []  # the digest admin: no notice one by one
    assert len(texts(telegram, AT_ONCE_ADMIN, "💰")) == 4  # the other admin: each at once
    assert len(texts(telegram, ADMIN, "⚠️ Order")) == 1  # the double payment: at once
    assert len(texts(telegram, AT_ONCE_ADMIN, "⚠️ ")) == 1

    clock.now = to_ms(BASE + timedelta(hours=20, minutes=59))  # 11.11 08:59: not yet
    assert await digests_after_polls(client, telegram, clock) == 0
    clock.advance(seconds=120)  # 09:01
    assert await digests_after_polls(client, telegram, clock) == 1
    clock.advance(hours=3)  # later polls, a second instance: nothing again
    assert await digests_after_polls(client, telegram, clock) == 1
    (digest,) = texts(telegram, ADMIN, "📋")
    assert texts(telegram, AT_ONCE_ADMIN, "📋") == []
    lines = digest.splitlines()
    until = to_ms(BASE + timedelta(hours=21))
    sums = await span_sums(client, to_ms(BASE), until)
    assert lines[0] == "📋 Payments digest: 10.11.2026 12:00 – 11.11.2026 09:00 (Tashkent time)"
    assert lines[1] == f"💰 Received: {sums['all'][0]} · {som(sums['all'][1])}"
    assert lines[2:5] == [
        f"• PLUS: {sums['PLUS'][0]} · {som(sums['PLUS'][1])}",
        f"• PRO: {sums['PRO'][0]} · {som(sums['PRO'][1])}",
        f"• Click: {sums['click'][0]} · {som(sums['click'][1])}",
    ]
    assert sums["all"] == (4, 3 * 1_500_000 + 3_900_000)
    assert lines[5] == "↩️ Refunded: 0 · 0\u00a0so'm"
    events = [line for line in lines if " 💰 " in line]
    assert len(events) == 4 and events[0].startswith("10.11 12:00 💰 15\u00a0000\u00a0so'm · PLUS")
    assert "User3002 (3002)" in events[1]

    # The process was down at the next two hours: one digest covers what was missed.
    clock.now = to_ms(BASE + timedelta(days=1, hours=3))  # 11.11 15:00
    await pay(click, 3004, "PRO")
    clock.now = to_ms(BASE + timedelta(days=3, hours=1))  # 13.11 13:00
    assert await digests_after_polls(client, telegram, clock) == 2
    digests = texts(telegram, ADMIN, "📋")
    assert len(digests) == 2
    assert digests[1].splitlines()[:2] == [
        "📋 Payments digest: 11.11.2026 09:00 – 13.11.2026 09:00 (Tashkent time)",
        "💰 Received: 1 · 39\u00a0000\u00a0so'm",
    ]
    assert texts(telegram, ADMIN, "💰") == []


async def test_back_to_at_once_sends_what_the_digest_held_and_then_each_payment(
    client, tg: Telegram, telegram: FakeTelegram, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)
    await english_admin(client)
    await choose(tg, telegram, "20:00")
    click = ClickCaller(client)
    await pay(click, 3101)
    await settle(client)
    assert texts(telegram, ADMIN, "💰") == []
    clock.advance(hours=1)
    edits = len(telegram.of("editMessageText", ADMIN))
    text = await choose(tg, telegram, "✓ 20:00")  # the same hour again: the span runs on,
    assert len(telegram.of("editMessageText", ADMIN)) == edits  # and no edit Telegram refuses
    assert text.startswith("Payment notices: one digest a day at 20:00 (Tashkent time).")
    text = await choose(tg, telegram, "At once")
    assert text.startswith("Payment notices: each payment and refund at once.")
    await settle(client)
    (held,) = texts(telegram, ADMIN, "📋")  # what the digest held so far, not lost
    assert "💰 Received: 1 · 15\u00a0000\u00a0so'm" in held.splitlines()
    await pay(click, 3102)
    await settle(client)
    assert len(texts(telegram, ADMIN, "💰 Payment received")) == 1
    clock.now = to_ms(BASE + timedelta(hours=9))  # 20:00 passes: no digest any more
    assert await digests_after_polls(client, telegram, clock) == 1
    async with client.server.app[DATABASE].read() as conn:
        hour = await conn.scalar(
            select(admin_settings.c.digest_hour).where(admin_settings.c.admin_id == ADMIN)
        )
    assert hour is None
    await choose(tg, telegram, "20:00")  # a digest span with nothing in it…
    clock.advance(hours=1)
    await choose(tg, telegram, "At once")  # …is not sent when it ends
    await settle(client)
    assert len(texts(telegram, ADMIN, "📋")) == 1


async def test_a_long_day_lists_the_first_payments_and_counts_the_rest_in_the_admins_language(
    client, tg: Telegram, telegram: FakeTelegram, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)
    async with client.server.app[DATABASE].transaction() as conn:
        await conn.execute(insert(users).values(id=ADMIN, language="ru", created_at=BASE))
    await choose(tg, telegram, "09:00")
    await add_user(client, 3201, "<Ali & Co>", None)
    for minute in range(17):
        await add_payment(client, 3201, created=BASE + timedelta(minutes=minute))
    await add_payment(client, 3201, created=BASE + timedelta(hours=1), test=True)
    clock.now = to_ms(BASE + timedelta(days=1))
    assert await digests_after_polls(client, telegram, clock) == 1
    (call,) = [c for c in telegram.delivered(ADMIN) if c.text.startswith("<b>📋")]
    assert_valid_html(call.text)
    assert "&lt;Ali &amp; Co&gt;" in call.text
    lines = plain(call.text).splitlines()
    assert lines[0] == "📋 Сводка платежей: 10.11.2026 12:00 – 11.11.2026 09:00 (по Ташкенту)"
    assert lines[1] == "💰 Получено: 17 · 255\u00a0000\u00a0сум"
    assert "🧪 1 тестовый платёж, не учтён" in lines
    assert len([line for line in lines if " 💰 " in line]) == 15
    assert lines[-1] == "…и ещё 2"


async def test_two_instances_polling_at_once_queue_each_digest_once(
    database_url: str, clock: FakeClock
) -> None:
    """Six concurrent polls of two instances (two connection pools) at each moment: one
    digest per admin and hour, and the outbox holds exactly those."""
    first, second = await Database.connect(database_url), await Database.connect(database_url)
    try:
        admins = (ADMIN, AT_ONCE_ADMIN)
        clock.now = to_ms(BASE)
        async with first.transaction() as conn:
            for admin, hour in zip(admins, (9, 13), strict=True):
                await digest.set_mode(conn, admin, hour, clock())
        schedulers = [Scheduler(db, clock, (), admin_ids=admins) for db in (first, second)]
        queued = []
        for hours in (0.5, 1.5, 20.5, 22, 44.5):  # 12:30, 13:30, 08:30 and 10:00 (11.11), 08:30
            clock.now = to_ms(BASE + timedelta(hours=hours))
            results = await asyncio.gather(*(s.run_digests() for s in schedulers * 3))
            queued.append(sum(results))
        assert queued == [0, 1, 0, 1, 1]  # 13:00 for one admin, 09:00 and 13:00 the next day
        async with first.read() as conn:
            keys = sorted((await conn.execute(select(notifications.c.dedupe_key))).scalars())
        assert keys == [
            f"admin_alert:payment_digest:2026-11-10T13:{AT_ONCE_ADMIN}",
            f"admin_alert:payment_digest:2026-11-11T09:{ADMIN}",
            f"admin_alert:payment_digest:2026-11-11T13:{AT_ONCE_ADMIN}",
        ]
    finally:
        await first.close()
        await second.close()
