"""/broadcast on SQLite and PostgreSQL through the real webhook and the fake Bot API:
who it reaches, the preview, refusals, Send twice, Cancel before and during the sending,
blocked users, the pace of 500 messages and a payment notice that overtakes them."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from bot.commands import admin_menu, command_menu
from db import broadcasts as broadcasts_db
from db import outbox
from db.clock import to_datetime
from db.database import Database
from db.schema import broadcasts, notifications, users
from db.states import NoticeStatus
from db.users import upsert_user
from tests.admin.helpers import ADMIN, assert_valid_html, button, plain, press_on, screen
from tests.conftest import FakeClock, Telegram, message
from tests.fake_telegram import Call, FakeTelegram
from tests.processes import max_in_window
from tests.send_stamps import SendStamps
from web.keys import DATABASE, I18N
from web.settings import Settings

RATE = 30  # NOTIFY_RATE_PER_SECOND here: the highest the settings allow
STATUS_MESSAGE = 4242  # the message id the admin's taps come from


@pytest.fixture
async def stamps(telegram: FakeTelegram) -> AsyncIterator[SendStamps]:
    """Arrival times of every sendMessage, stamped by a process of its own."""
    proxy = await SendStamps.start(telegram)
    yield proxy
    await proxy.stop()


class LiveClock(FakeClock):
    """The app's clock at the real time: the status message's edits are seconds apart."""

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000


@pytest.fixture
def clock() -> FakeClock:
    return LiveClock()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], stamps: SendStamps) -> Settings:
    return make_settings(TELEGRAM_API_URL=stamps.url, NOTIFY_RATE_PER_SECOND=str(RATE))


def now_of(clock: FakeClock) -> datetime:
    return to_datetime(clock())


async def seed(
    client: Any,
    first_id: int,
    count: int,
    *,
    expires_at: datetime | None = None,
    tariff: str | None = None,
    language: str | None = "en",
    reachable: bool = True,
) -> list[int]:
    ids = list(range(first_id, first_id + count))
    rows = [
        {
            "id": user_id,
            "first_name": f"User{user_id}",
            "language": language,
            "tariff": tariff,
            "tariff_expires_at": expires_at,
            "reachable": reachable,
            "created_at": expires_at or datetime(2026, 1, 1).astimezone(),
        }
        for user_id in ids
    ]
    async with client.server.app[DATABASE].transaction() as conn:
        await conn.execute(insert(users), rows)
    return ids


async def seed_shop(client: Any, clock: FakeClock) -> None:
    """10 PLUS and 5 PRO plans running, 4 ended 3 days ago, 3 ended 20 days ago, 6 users
    who never paid, and 2 PLUS buyers who blocked the bot."""
    now = now_of(clock)
    await seed(client, 1000, 10, expires_at=now + timedelta(days=10), tariff="PLUS")
    await seed(client, 2000, 5, expires_at=now + timedelta(days=1), tariff="PRO")
    await seed(client, 3000, 4, expires_at=now - timedelta(days=3), tariff="PLUS")
    await seed(client, 4000, 3, expires_at=now - timedelta(days=20), tariff="PRO")
    await seed(client, 5000, 6)
    await seed(client, 6000, 2, expires_at=now + timedelta(days=5), tariff="PLUS", reachable=False)


def admin_messages(telegram: FakeTelegram, since: int = 0) -> list[Call]:
    return [
        call
        for call in telegram.calls[since:]
        if call.method == "sendMessage" and call.params.get("chat_id") == ADMIN
    ]


def to_others(telegram: FakeTelegram) -> list[Call]:
    return [c for c in telegram.of("sendMessage") if c.params.get("chat_id") != ADMIN]


def status_edits(telegram: FakeTelegram) -> list[Call]:
    return [
        c
        for c in telegram.of("editMessageText", ADMIN)
        if c.params.get("message_id") == STATUS_MESSAGE
    ]


async def draft(tg: Telegram, telegram: FakeTelegram, text: str) -> Call:
    """Send /broadcast; the last message the admin got (the summary with its buttons)."""
    since = len(telegram.calls)
    await tg.message(ADMIN, text)
    return admin_messages(telegram, since)[-1]


async def press(tg: Telegram, call: Call, label: str) -> None:
    await press_on(tg, call, button(call, label), message_id=STATUS_MESSAGE)


async def count_rows(client: Any, *where: Any) -> int:
    async with client.server.app[DATABASE].read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(notifications).where(*where)))


async def wait_until(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)


async def test_each_audience_counts_the_seeded_users_and_the_preview_is_the_message(
    client, tg: Telegram, telegram: FakeTelegram, clock: FakeClock
) -> None:
    await seed_shop(client, clock)
    expected = {
        "all": 29,  # everyone reachable, the admin included (they wrote to the bot)
        "active": 15,
        "expired 7": 4,
        "expired 30": 7,
        "plus": 10,
        "PRO": 5,
    }
    for audience, count in expected.items():
        since = len(telegram.calls)
        summary = await draft(tg, telegram, f"/broadcast {audience}\n<b>Sale</b> &amp; news")
        preview, last = admin_messages(telegram, since)
        assert last is summary
        assert preview.text == "<b>Sale</b> &amp; news"  # exactly what a recipient gets
        assert preview.buttons == []
        lines = plain(summary.text).splitlines()
        assert lines[1].startswith(f"{count} recipients (en {count - (audience == 'all')}")
        assert_valid_html(summary.text)
        assert [b["text"] for b in summary.buttons] == ["✅ Send", "Cancel"]
        blocked = 2 if audience in ("all", "active", "plus") else 0
        assert ("2 more blocked the bot and are left out." in lines) == bool(blocked)
    assert plain(summary.text).splitlines()[0].startswith("📣 Broadcast #6 to users with an")
    assert await count_rows(client) == 0  # drafts queue nothing


async def test_malformed_html_and_unknown_audiences_are_refused_in_one_line(
    client, tg: Telegram, telegram: FakeTelegram
) -> None:
    refusals = {
        "/broadcast all\n<b>Sale": "Not saved, <b> is never closed.",
        "/broadcast all\n<b>Sale</i>": "Not saved, </i> closes no open <i>.",
        "/broadcast all\n1 < 2": "Not saved, a stray <: write &lt; for <, &gt; for > and "
        "&amp; for &.",
        "/broadcast all\nTom & Jerry": "Not saved, a stray &: write &lt; for <, &gt; for > "
        "and &amp; for &.",
        "/broadcast all\n<div>x</div>": "Not saved, Telegram has no <div> tag.",
        "/broadcast all\n<span>x</span>": 'Not saved, <span> needs class="tg-spoiler".',
        "/broadcast all\nuz: Salom\nru: <i>Привет": "Not saved, ru: <i> is never closed.",
        "/broadcast all\n" + "x" * 4097: "Not saved, the text is longer than 4096 characters.",
    }
    for text, refusal in refusals.items():
        reply = await draft(tg, telegram, text)
        assert_valid_html(reply.text)
        assert plain(reply.text) == refusal
        assert reply.buttons == []
    unreadable = ["/broadcast", "/broadcast all", "/broadcast all\n ", "/broadcast everyone\nhi"]
    for text in [*unreadable, "/broadcast expired\nhi", "/broadcast expired 0\nhi"]:
        reply = await draft(tg, telegram, text)
        assert plain(reply.text).startswith("Usage: /broadcast all | active | expired N")
    link = '<a href="https://x.uz/?a=1&amp;b=2">x</a> 1 &lt; 2'
    ok = await draft(tg, telegram, f"/broadcast all\n{link}")
    assert [b["text"] for b in ok.buttons] == ["✅ Send", "Cancel"]
    async with client.server.app[DATABASE].read() as conn:
        assert await conn.scalar(select(func.count()).select_from(broadcasts)) == 1
    # Anyone else gets what any unknown command gets, and nothing is stored.
    await tg.message(5555, "/broadcast all\nhi")
    assert "Broadcast" not in telegram.of("sendMessage", 5555)[-1].text


async def test_cancel_before_send_sends_nothing(
    client, tg: Telegram, telegram: FakeTelegram, clock: FakeClock
) -> None:
    await seed_shop(client, clock)
    summary = await draft(tg, telegram, "/broadcast all\nHello")
    await press(tg, summary, "Cancel")
    cancelled = screen(telegram)
    assert plain(cancelled.text).splitlines()[0] == "⛔ Broadcast #1: cancelled"
    assert cancelled.buttons == []
    await press(tg, summary, "✅ Send")  # the old preview's button, tapped late
    answer = telegram.of("answerCallbackQuery")[-1]
    assert answer.params["text"] == "This broadcast was sent or cancelled already."
    await asyncio.sleep(1.5)  # the notifier's polls
    assert to_others(telegram) == []
    assert await count_rows(client) == 0


async def test_per_language_texts_reach_their_readers_and_double_send_queues_once(
    client, tg: Telegram, telegram: FakeTelegram, clock: FakeClock
) -> None:
    """Send tapped twice queues once; a user who blocked the bot since is counted as failed
    and marked; the status message ends as finished with the counts."""
    now = now_of(clock)
    later = now + timedelta(days=3)
    uz = await seed(client, 1000, 2, expires_at=later, tariff="PLUS", language="uz")
    ru = await seed(client, 2000, 2, expires_at=later, tariff="PLUS", language="ru")
    en = await seed(client, 3000, 1, expires_at=later, tariff="PLUS", language="en")
    unset = await seed(client, 4000, 1, expires_at=later, tariff="PLUS", language=None)
    telegram.blocked.add(ru[1])
    since = len(telegram.calls)
    summary = await draft(
        tg, telegram, "/broadcast active\nuz: <b>Salom</b>\n\nru: Привет\nen: Hello <i>you</i>"
    )
    assert [c.text for c in admin_messages(telegram, since)[:-1]] == [
        "<b>Salom</b>",
        "Привет",
        "Hello <i>you</i>",
    ]
    assert plain(summary.text).splitlines()[1:] == [
        "6 recipients (en 1 · ru 2 · uz 3)",  # no language chosen yet: the default, uz
        "Above: the message exactly as it arrives (uz, ru, en).",
    ]
    await press(tg, summary, "✅ Send")
    await press(tg, summary, "✅ Send")  # a double tap
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == (
        "This broadcast was sent or cancelled already."
    )
    sending = screen(telegram)
    assert plain(sending.text).splitlines() == [
        "📣 Broadcast #1: sending",
        "users with an active plan",
        "Sent: 0 · failed: 0 · left: 6",
    ]
    assert [b["text"] for b in sending.buttons] == ["Cancel"]
    await telegram.wait_for(
        "editMessageText", lambda c: "finished" in c.text and c.params.get("chat_id") == ADMIN
    )
    got = {c.params["chat_id"]: c.text for c in to_others(telegram) if c.ok}
    assert got == {
        uz[0]: "<b>Salom</b>",
        uz[1]: "<b>Salom</b>",
        ru[0]: "Привет",
        en[0]: "Hello <i>you</i>",
        unset[0]: "<b>Salom</b>",
    }
    assert len(to_others(telegram)) == 6  # each once, the blocked user's attempt included
    final = status_edits(telegram)[-1]
    assert plain(final.text).splitlines() == [
        "✅ Broadcast #1: finished",
        "users with an active plan",
        "Sent: 5 · failed: 1 · left: 0",
    ]
    assert final.buttons == []
    async with client.server.app[DATABASE].read() as conn:
        assert await conn.scalar(select(users.c.reachable).where(users.c.id == ru[1])) is False
        assert await conn.scalar(select(broadcasts.c.recipients)) == 6
    await asyncio.sleep(1.5)
    assert len(to_others(telegram)) == 6  # the failed one is not retried


async def test_500_messages_go_at_the_rate_with_the_status_edited_every_few_seconds(
    client, tg: Telegram, telegram: FakeTelegram, clock: FakeClock, stamps: SendStamps
) -> None:
    recipients = await seed(client, 100_000, 500)
    summary = await draft(tg, telegram, "/broadcast all\nNews")
    assert plain(summary.text).splitlines()[1].startswith("501 recipients")  # and the admin
    started = len(stamps.times)
    await press(tg, summary, "✅ Send")
    await telegram.wait_for(
        "editMessageText", lambda c: "finished" in c.text and c.params.get("chat_id") == ADMIN,
        within=501 / RATE + 30,
    )  # fmt: skip
    sends = [c.params["chat_id"] for c in telegram.delivered() if c.text == "News"]
    assert sorted(sends) == sorted([*recipients, ADMIN, ADMIN])  # the admin's preview too
    times = stamps.times[started:]
    assert len(times) == 501
    assert max_in_window(times) <= RATE + 1  # +1 for where the window's edge falls
    assert times[-1] - times[0] >= 500 / RATE - 1  # paced, not sent in a burst
    edits = status_edits(telegram)
    progress = [c for c in edits if "sending" in c.text]
    assert len(progress) >= 3
    shown = [(round(c.at, 2), plain(c.text).splitlines()[2]) for c in progress]
    assert all(b.at - a.at >= 2.5 for a, b in itertools.pairwise(progress)), shown
    sent = [int(plain(c.text).splitlines()[2].split()[1]) for c in progress]
    assert sent == sorted(sent) and 0 < sent[-1] < 501
    assert plain(edits[-1].text).splitlines()[2] == "Sent: 501 · failed: 0 · left: 0"


async def test_cancelled_half_way_nothing_more_is_sent_and_payment_notices_go_first(
    client, tg: Telegram, telegram: FakeTelegram, clock: FakeClock, stamps: SendStamps
) -> None:
    await seed(client, 100_000, 500)
    buyer = (await seed(client, 900, 1))[0]
    summary = await draft(tg, telegram, "/broadcast all\nNews")
    await press(tg, summary, "✅ Send")
    await wait_until(lambda: len([c for c in telegram.delivered() if c.text == "News"]) >= 100, 30)
    # A payment notice queued now overtakes the 400 broadcast rows still waiting.
    db = client.server.app[DATABASE]
    queued_at = time.monotonic()
    async with db.transaction() as conn:
        payload = {"tariff": "PLUS", "amount": 1_500_000, "expires_at": None}
        await outbox.enqueue(conn, buyer, outbox.PAYMENT_RECEIVED, payload, now_of(clock))
    payment = await telegram.wait_for(
        "sendMessage", lambda c: c.params.get("chat_id") == buyer and "Payment" in c.text
    )
    assert payment.at - queued_at < 3.5  # two seconds of claimed sends at most ahead of it
    await wait_until(lambda: len([c for c in telegram.delivered() if c.text == "News"]) >= 250, 30)
    await press(tg, summary, "Cancel")
    cancelled_at = time.monotonic()
    sent_by_then = len(stamps.times)
    await asyncio.sleep(3)
    late = [moment for moment in stamps.times if moment > cancelled_at + 0.3]
    assert late == []  # at most a send already on the wire at the cancel
    assert len(stamps.times) - sent_by_then <= 1
    news = [c for c in telegram.delivered() if c.text == "News"]
    assert 250 <= len(news) < 400
    rows = await count_rows(client, notifications.c.broadcast_id.is_not(None))
    sent = await count_rows(client, notifications.c.status == NoticeStatus.SENT)
    left = await count_rows(client, notifications.c.status == NoticeStatus.CANCELLED)
    assert rows == 502
    assert sent == (len(news) - 1) + 1  # the admin's preview is no row; the payment is
    assert left == 502 - (len(news) - 1)
    final = screen(telegram)
    assert plain(final.text).splitlines()[0] == "⛔ Broadcast #1: cancelled"
    await asyncio.sleep(3.5)  # a progress edit must not overwrite the cancelled status
    assert "cancelled" in plain(status_edits(telegram)[-1].text)


async def test_help_and_the_admin_menu_list_broadcast_for_admins_only(
    client, tg: Telegram, telegram: FakeTelegram
) -> None:
    await tg.message(ADMIN, "/help", language="ru")
    help_text = telegram.of("sendMessage", ADMIN)[-1].text
    assert "\n/broadcast — сообщение всем или части пользователей" in help_text
    await tg.message(5555, "/help")
    assert "/broadcast" not in telegram.of("sendMessage", 5555)[-1].text
    i18n = client.server.app[I18N]
    with i18n.context(), i18n.use_locale("uz"):
        menu = {command.command: command.description for command in admin_menu()}
        buyer = {command.command for command in command_menu()}
    assert menu["broadcast"] == "Barcha yoki ayrim foydalanuvchilarga xabar"
    assert "broadcast" not in buyer


async def test_an_audience_of_nobody_finishes_at_once(
    client, tg: Telegram, telegram: FakeTelegram
) -> None:
    summary = await draft(tg, telegram, "/broadcast pro\nHi")
    assert plain(summary.text).splitlines()[1] == "0 recipients"
    await press(tg, summary, "✅ Send")
    done = screen(telegram)
    assert plain(done.text).splitlines() == [
        "✅ Broadcast #1: finished",
        "users with an active PRO plan",
        "Sent: 0 · failed: 0 · left: 0",
    ]
    assert done.buttons == []


async def test_formatting_from_the_telegram_app_becomes_the_same_html(
    client, tg: Telegram, telegram: FakeTelegram
) -> None:
    """Bold set with the app's button arrives as an entity: the preview keeps it, and a
    `<` typed next to it is text, not a tag."""
    text = "/broadcast all\nBig sale 1<2 https://x.uz"
    update = message(ADMIN, text)
    update["entities"] += [
        {"type": "bold", "offset": 15, "length": 3},
        {"type": "url", "offset": 29, "length": 12},
    ]
    await tg.send({"message": update})
    preview = admin_messages(telegram)[-2]
    assert preview.text == "<b>Big</b> sale 1&lt;2 https://x.uz"
    # Without formatting, typed tags are the HTML (an auto-detected link changes nothing).
    update = message(ADMIN, "/broadcast all\n<i>Hi</i> https://x.uz")
    update["entities"].append({"type": "url", "offset": 26, "length": 12})
    await tg.send({"message": update})
    assert admin_messages(telegram)[-2].text == "<i>Hi</i> https://x.uz"


async def test_queueing_goes_in_chunks_and_the_loop_serves_others_between_them(
    database_url: str,
) -> None:
    """Every recipient is queued once across chunk boundaries, and between chunks the event
    loop runs other work: on SQLite a statement holds the loop, so one INSERT over a big
    audience used to stop every request of the process."""
    now = to_datetime(1_780_000_000_000)
    db = await Database.connect(database_url)
    try:
        async with db.transaction() as conn:
            for user_id in range(1, 26):
                await upsert_user(conn, user_id, f"User{user_id}", None, now)
            target = broadcasts_db.Target(broadcasts_db.Audience.ALL)
            broadcast_id = await broadcasts_db.create_draft(conn, ADMIN, target, {"en": "x"}, now)
        turns = 0

        async def other_work() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        async with db.transaction() as conn:
            before = turns
            queued = await outbox.enqueue_each(
                conn, select(users.c.id), outbox.BROADCAST, {}, now, broadcast_id, chunk=10
            )
            during = turns - before
        other.cancel()
        async with db.read() as conn:
            rows = (await conn.scalars(select(notifications.c.user_id))).all()
        assert queued == 25
        assert sorted(rows) == list(range(1, 26))
        assert during >= 2  # after the first chunk of 10 and after the second
    finally:
        await db.close()
