"""The buyer's card (/user by id or @name, 👤 Buyer on a payment's card) and gift days:
the preview, Confirm pressed twice granting once, the buyer told in their language, the
gift in the timeline and the card but never in revenue or exports, taking it back, and a
reason full of `<&` escaped everywhere."""

from __future__ import annotations

import asyncio
import io
import re

import openpyxl
from sqlalchemy import func, select, update

from db import ledger
from db.clock import to_datetime, to_ms
from db.schema import gifts, notifications, periods, users
from tests.admin.helpers import (
    ADMIN,
    add_user,
    assert_valid_html,
    button,
    plain,
    press_on,
    screen,
    shown_ids,
)
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from web.keys import DATABASE

POINTER = (
    "I did not understand that. Send /tariffs to choose a plan or /help for help.\n"
    "Questions about a payment: /paysupport"
)
DAY = ledger.DAY_MS


def gift_id(call) -> int:
    return int(button(call, "✅ Confirm").split(":")[1])


async def ask_gift(tg: Telegram, telegram: FakeTelegram, command: str):
    await tg.message(ADMIN, command)
    return screen(telegram)


async def test_user_by_id_and_by_username_in_any_case(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    await tg.message(ADMIN, "/user 1001")
    by_id = screen(telegram)
    assert_valid_html(by_id.text)
    assert '<a href="tg://user?id=1001">Ali</a>' in by_id.text
    text = plain(by_id.text)
    assert "ID: 1001 · @Ali_Khan" in text and "Language: —" in text
    assert "Plan: none" in text and "No periods." in text
    assert "Payments: 3" in text
    assert shown_ids(by_id) == [shop["a1"], shop["a2"], shop["a3"]]
    for spelling in ("@ali_KHAN", "ALI_KHAN"):
        await tg.message(ADMIN, f"/user {spelling}")
        assert screen(telegram).text == by_id.text
    # a number under the card opens that payment's card
    await press_on(tg, by_id, button(by_id, "2"))
    assert plain(screen(telegram).text).startswith(f"Payment #{shop['a2']}")


async def test_unknown_user_and_non_admins(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    await tg.message(ADMIN, "/user @nobody<&>")
    assert screen(telegram).text == "No buyer with the id or username “@nobody&lt;&amp;&gt;”."
    for who in ("424242", "99999999999999999999999"):
        await tg.message(ADMIN, f"/user {who}")
        assert plain(screen(telegram).text) == f"No buyer with the id or username “{who}”."
    await tg.message(ADMIN, "/user")
    assert screen(telegram).text == "Usage: /user 123456 or /user @username"
    for command in ("/user 1001", "/gift 1001 PLUS 7 thanks"):
        await tg.message(1002, command)
        assert telegram.of("sendMessage", 1002)[-1].text == POINTER
    before = len(telegram.calls)
    for data in ("ab:1001:0:0:0", "ag:1:1", "at:1:1:0:0:0"):
        await tg.press(1002, data)
    assert {c.method for c in telegram.calls[before:]} == {"answerCallbackQuery"}


async def test_buyer_button_on_a_payment_card_and_back(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    await tg.message(ADMIN, "/payments payme")
    page = screen(telegram)
    await press_on(tg, page, button(page, "1"))
    card = screen(telegram)
    await press_on(tg, card, button(card, "👤 Buyer"))
    buyer = screen(telegram)
    assert plain(buyer.text).startswith("🔎 payme\n👤 Алиса\nID: 1002 · @alisa")
    await press_on(tg, buyer, button(buyer, "◀ Back"))
    assert screen(telegram).text == card.text
    await press_on(tg, screen(telegram), button(screen(telegram), "◀ Back to the list"))
    assert screen(telegram).text == page.text


async def test_gift_is_previewed_granted_once_and_the_buyer_is_told(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], client, clock: FakeClock
) -> None:
    db = client.server.app[DATABASE]
    async with db.transaction() as conn:
        await conn.execute(update(users).where(users.c.id == 1002).values(language="ru"))
    preview = await ask_gift(tg, telegram, "/gift @ALISA plus 21 loyal buyer")
    assert plain(preview.text).splitlines()[:3] == [
        "🎁 Gift to Алиса: 21 days of PLUS",
        "Reason: loyal buyer",
        "Their plan with the gift: PLUS until 01.12.2026 13:00 (Tashkent time)",
    ]
    async with db.read() as conn:  # nothing granted before Confirm
        assert await conn.scalar(select(func.count()).select_from(periods)) == 0
    confirm = button(preview, "✅ Confirm")
    await asyncio.gather(press_on(tg, preview, confirm), press_on(tg, preview, confirm))
    await press_on(tg, preview, confirm)
    answers = [c.params.get("text") for c in telegram.of("answerCallbackQuery")]
    assert answers.count("This gift was already granted or cancelled.") == 2
    async with db.read() as conn:
        rows = (await conn.execute(select(periods))).all()
        gift = (await conn.execute(select(gifts))).one()
        notices = await conn.scalar(
            select(func.count()).select_from(notifications).where(notifications.c.user_id == 1002)
        )
    assert [(r.kind, r.payment_id, r.duration_ms) for r in rows] == [("gift", None, 21 * DAY)]
    assert gift.status == "granted" and gift.granted_by == ADMIN and notices == 1
    told = await telegram.wait_for("sendMessage", lambda c: c.params.get("chat_id") == 1002)
    assert plain(told.text).splitlines() == [
        "🎁 Вам подарен 21 день PLUS.",
        "Ваш тариф: PLUS до 01.12.2026 13:00 (по ташкентскому времени).",
    ]
    granted = screen(telegram)
    assert plain(granted.text).startswith("🎁 Gift granted to Алиса: 21 days of PLUS")
    await press_on(tg, granted, button(granted, "👤 Buyer"))
    text = plain(screen(telegram).text)
    assert "Plan: PLUS until 01.12.2026 13:00 (Tashkent time)" in text
    assert (
        "• PLUS · 10.11.2026 13:00 – 01.12.2026 13:00 · gift by admin 900001: loyal buyer" in text
    )


async def test_cancel_grants_nothing(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], client
) -> None:
    preview = await ask_gift(tg, telegram, "/gift 1001 PRO 3 sorry")
    await press_on(tg, preview, button(preview, "Cancel"))
    assert screen(telegram).text == "Gift cancelled; nothing was changed."
    await press_on(tg, preview, button(preview, "✅ Confirm"))
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == (
        "This gift was already granted or cancelled."
    )
    async with client.server.app[DATABASE].read() as conn:
        assert await conn.scalar(select(func.count()).select_from(periods)) == 0


async def test_bad_gift_commands_get_the_usage(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    for command in ("/gift", "/gift 1001 PLUS 7", "/gift 1001 GOLD 7 x", "/gift 1001 PLUS 0 x"):
        await tg.message(ADMIN, command)
        assert plain(screen(telegram).text).startswith(
            "Usage: /gift ID TARIFF DAYS REASON\nID: the buyer's id"
        )
    await tg.message(ADMIN, "/gift @ghost PLUS 7 x")
    assert plain(screen(telegram).text) == "No buyer with the id or username “@ghost”."


def kept_figures(text: str) -> list[str]:
    """/stats lines about money (everything before the active subscribers, which a gift
    rightly changes)."""
    lines = plain(text).splitlines()
    return lines[: next(i for i, line in enumerate(lines) if line.startswith("Active subscribers"))]


async def test_gift_is_in_the_timeline_but_not_in_revenue_nor_exports(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], client
) -> None:
    await tg.message(ADMIN, "/stats 7")
    stats_before = telegram.of("sendMessage", ADMIN)[-1].text
    await tg.message(ADMIN, "/export")
    export_before = (await telegram.wait_for("sendDocument")).params
    preview = await ask_gift(tg, telegram, "/gift 1001 PRO 10 outage")
    await press_on(tg, preview, button(preview, "✅ Confirm"))
    await tg.message(ADMIN, "/stats 7")
    stats_after = telegram.of("sendMessage", ADMIN)[-1].text
    assert kept_figures(stats_after) == kept_figures(stats_before)
    assert "PRO: 1" in plain(stats_after)  # the buyer is an active subscriber now
    await tg.message(ADMIN, "/export")
    export_after = telegram.of("sendDocument")[-1].params
    assert export_after["caption"] == export_before["caption"]

    def rows(document) -> list[tuple]:
        book = openpyxl.load_workbook(io.BytesIO(document["document"]["data"]))
        return list(book.active.iter_rows(values_only=True))

    assert rows(export_after) == rows(export_before)
    await tg.message(ADMIN, "/payments 1001")
    assert plain(screen(telegram).text).startswith("🔎 1001\nFound: 3 ·")
    await tg.message(ADMIN, "/user 1001")
    text = plain(screen(telegram).text)
    assert "Plan: PRO until 20.11.2026 13:00 (Tashkent time)" in text
    assert "gift by admin 900001: outage" in text and "Payments: 3" in text


async def test_take_back_removes_the_gift_and_moves_a_later_period_earlier(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], client, clock: FakeClock
) -> None:
    db = client.server.app[DATABASE]
    preview = await ask_gift(tg, telegram, "/gift 1001 PLUS 10 goodwill")
    await press_on(tg, preview, button(preview, "✅ Confirm"))
    async with db.transaction() as conn:  # a payment after the gift queues behind it
        await ledger.add_period(conn, 1001, shop["a1"], "PLUS", 30 * DAY, clock.now)
    clock.advance(days=2)
    await tg.message(ADMIN, "/user 1001")
    card = screen(telegram)
    assert "Plan: PLUS until 20.12.2026 13:00 (Tashkent time)" in plain(card.text)
    take = f"↩️ Take back gift #{gift_id(preview)}: 10 days of PLUS"
    await press_on(tg, card, button(card, take))
    question = screen(telegram)
    assert "Its unused days are removed now" in plain(question.text)
    await press_on(tg, question, button(question, "Cancel"))
    assert screen(telegram).text == card.text
    await press_on(tg, card, button(card, take))
    yes = button(screen(telegram), "Yes, take it back")
    await press_on(tg, screen(telegram), yes)
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == (
        "Gift taken back; its unused days were removed."
    )
    after = screen(telegram)
    text = plain(after.text)
    # 2 days of the gift were used; the payment's 30 days now start at once.
    assert "Plan: PLUS until 12.12.2026 13:00 (Tashkent time)" in text
    assert "goodwill · taken back" in text
    assert not any(b["text"].startswith("↩️") for b in after.buttons)
    await press_on(tg, question, yes)  # a second press takes nothing more
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == (
        "This gift was already taken back."
    )
    async with db.read() as conn:
        user = (await conn.execute(select(users).where(users.c.id == 1001))).one()
        timeline = await ledger.user_timeline(conn, 1001)
        kinds = list(
            await conn.scalars(
                select(notifications.c.kind)
                .where(notifications.c.user_id == 1001)
                .order_by(notifications.c.id)
            )
        )
    assert user.tariff == "PLUS" and timeline.end == clock.now + 30 * DAY
    assert to_ms(user.tariff_expires_at) == clock.now + 30 * DAY
    assert kinds == ["gift_received", "gift_taken_back"]
    told = await telegram.wait_for(
        "sendMessage", lambda c: c.params.get("chat_id") == 1001 and "↩️" in c.text
    )  # the buyer chose no language: the default, Uzbek
    first, plan = plain(told.text).splitlines()
    assert first == "↩️ 10 kunlik PLUS sovgʻasi qaytarib olindi."
    assert plan.startswith("Tarifingiz: PLUS") and "12.12.2026 13:00" in plan


async def test_a_reason_full_of_markup_is_escaped_everywhere(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    reason = "<b>bonus</b> & <a href='x'>more</a> <&>"
    preview = await ask_gift(tg, telegram, f"/gift 1003 PLUS 5 {reason}")
    assert preview.ok
    assert_valid_html(preview.text)
    assert f"Reason: {reason}" in plain(preview.text)
    await press_on(tg, preview, button(preview, "✅ Confirm"))
    granted = screen(telegram)
    assert granted.ok and f"Reason: {reason}" in plain(granted.text)
    await tg.message(ADMIN, "/user 1003")
    card = screen(telegram)
    assert card.ok
    assert_valid_html(card.text)
    assert f"gift by admin 900001: {reason}" in plain(card.text)
    take = next(b for b in card.buttons if b["text"].startswith("↩️"))
    await press_on(tg, card, take["callback_data"])
    question = screen(telegram)
    assert question.ok and re.search(r"reason: <b>bonus</b> & ", plain(question.text))


async def test_a_plan_from_before_the_ledger_is_shown_and_the_preview_is_what_is_granted(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], client, clock: FakeClock
) -> None:
    db = client.server.app[DATABASE]
    async with db.transaction() as conn:  # a plan in the cache only, no periods
        await conn.execute(
            update(users)
            .where(users.c.id == 1003)
            .values(tariff="PRO", tariff_expires_at=to_datetime(clock.now + 5 * DAY))
        )
    await tg.message(ADMIN, "/user 1003")
    text = plain(screen(telegram).text)
    assert "Plan: PRO until 15.11.2026 13:00 (Tashkent time)" in text
    assert "opening (plan from before the ledger)" in text
    preview = await ask_gift(tg, telegram, "/gift 1003 PLUS 7 welcome")
    expected = "PRO until 15.11.2026 13:00, then PLUS until 22.11.2026 13:00 (Tashkent time)"
    assert f"Their plan with the gift: {expected}" in plain(preview.text)
    await press_on(tg, preview, button(preview, "✅ Confirm"))
    assert f"Plan: {expected}" in plain(screen(telegram).text)
    async with db.read() as conn:
        kinds = sorted(await conn.scalars(select(periods.c.kind)))
    assert kinds == ["gift", "opening"]


async def test_a_long_ledger_shows_the_newest_periods_and_counts_the_rest(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], client, clock: FakeClock
) -> None:
    async with client.server.app[DATABASE].transaction() as conn:
        for day in range(12):
            await ledger.add_gift(conn, 1002, "PLUS", DAY, clock.now + day)
    await tg.message(ADMIN, "/user 1002")
    lines = plain(screen(telegram).text).splitlines()
    start = lines.index("Periods")
    assert lines[start + 1] == "Earlier periods not shown: 2"
    shown = [line for line in lines if line.startswith("• PLUS")]
    assert len(shown) == 10 and all(line.endswith(" · gift") for line in shown)
    assert "Plan: PLUS until 22.11.2026 13:00 (Tashkent time)" in lines


async def test_a_plan_made_only_of_a_gift_taken_back_says_so(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    """Taking back the only gift ends the plan then; /myplan names the gift, not a refund."""
    await add_user(client, 5005, "Gulnora", None)
    preview = await ask_gift(tg, telegram, "/gift 5005 PLUS 3 promo")
    await press_on(tg, preview, button(preview, "✅ Confirm"))
    clock.advance(days=1)
    await tg.message(ADMIN, "/user 5005")
    card = screen(telegram)
    await press_on(tg, card, button(card, f"↩️ Take back gift #{gift_id(preview)}: 3 days of PLUS"))
    await press_on(tg, screen(telegram), button(screen(telegram), "Yes, take it back"))
    await tg.message(5005, "/myplan", language="en")
    answer = telegram.of("sendMessage", 5005)[-1].text
    assert answer.startswith("Your plan ended on ")
    assert answer.endswith("(Tashkent time): its gift days were taken back.")
