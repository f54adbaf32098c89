"""User-supplied values (names, usernames, admin queries) reach people escaped.

The fake Bot API parses every HTML text as Telegram does and answers 400 "can't parse
entities" otherwise, so an unescaped `<` or `&` shows up here as an undelivered message.
Expected texts are built with aiogram's own `html.quote`, the helper the code must use.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import aiohttp
import pytest
from aiogram import html
from sqlalchemy import insert

from db.clock import to_ms
from db.schema import orders, payments
from tests.conftest import FakeClock, Telegram, message, telegram_url
from tests.fake_telegram import Call, FakeTelegram, HtmlError, check_html
from web.keys import DATABASE

ADMIN = 900001
BUYER = 4242
NAME = "<b>Ali & Vali</b> 🐱 &amp; <script>"
LAST_NAME = "O'Brien <3 & co"
BASE = datetime(2026, 11, 10, 7, 0, tzinfo=UTC)


def visible(call: Call) -> str:
    """What the person sees: tags dropped, entities decoded (as Telegram renders it)."""
    return unescape(re.sub(r"<[^>]+>", "", call.text))


async def write(tg: Telegram, user_id: int, text: str, **sender: str) -> None:
    update = message(user_id, text)
    update["from"] = {**update["from"], **sender}
    assert await tg.send({"message": update}) == 200


async def buyer_with_a_payment(tg: Telegram, client, clock: FakeClock, username: str) -> int:
    """The buyer writes to the bot (their name is saved from Telegram), then has a payment."""
    clock.now = to_ms(BASE + timedelta(hours=1))
    await write(tg, BUYER, "/start", first_name=NAME, last_name=LAST_NAME, username=username)
    async with client.server.app[DATABASE].transaction() as conn:
        order_id = (
            await conn.execute(
                insert(orders).values(
                    merchant_trans_id=f"{BUYER}_PLUS_{int(BASE.timestamp())}", user_id=BUYER,
                    tariff="PLUS", amount=1_500_000, status="paid", created_at=BASE,
                ).returning(orders.c.id)
            )
        ).scalar_one()  # fmt: skip
        return (
            await conn.execute(
                insert(payments).values(
                    provider="click", provider_id="7001", order_id=order_id, amount=1_500_000,
                    state="paid", click_paydoc_id=990001, create_time=to_ms(BASE),
                    perform_time=to_ms(BASE) + 1000, granted_days=30,
                ).returning(payments.c.id)
            )
        ).scalar_one()  # fmt: skip


def test_the_fake_refuses_what_telegram_refuses() -> None:
    """The guard itself: if it let these through, every test below would prove nothing."""
    for text in ("a < b", "<b>bold", "</b>", "<b><i>x</b></i>", "<br>", "&nbsp;", "AT&T"):
        with pytest.raises(HtmlError):
            check_html(text)
    for text in ("a &lt; b &amp; c", "<b>x</b> 🐱", '<a href="https://x?a=1&amp;b=2">l</a>'):
        check_html(text)


async def test_a_malformed_text_gets_telegrams_400(telegram: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{telegram_url(telegram)}/bot1:x/sendMessage",
            json={"chat_id": 1, "text": "<b>x", "parse_mode": "HTML"},
        )
        answer = await response.json()
    assert response.status == 400
    assert answer["description"].startswith("Bad Request: can't parse entities: ")
    assert not telegram.of("sendMessage")[-1].ok


async def test_a_name_full_of_html_reaches_the_admin_escaped(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    await buyer_with_a_payment(tg, client, clock, "ali_vali")
    full_name = f"{NAME} {LAST_NAME}"
    await tg.message(ADMIN, "/payments")
    page = telegram.of("sendMessage", ADMIN)[-1]
    assert page.ok, page
    assert f"{html.quote(full_name)} @ali_vali ({BUYER})" in page.text
    assert f"{full_name} @ali_vali ({BUYER})" in visible(page)
    await tg.press(ADMIN, page.buttons[0]["callback_data"])
    details = telegram.of("editMessageText", ADMIN)[-1]
    assert details.ok, details
    assert f"Buyer: {full_name} @ali_vali ({BUYER})" in visible(details)
    # The buyer's own journey with that name is delivered too.
    for text in ("/tariffs", "/myplan", "/help", "<b>hello & bye"):
        await write(tg, BUYER, text, first_name=NAME, last_name=LAST_NAME)
    assert all(call.ok for call in telegram.of("sendMessage", BUYER))


async def test_a_username_full_of_html_reaches_the_admin_escaped(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    """Telegram allows only [A-Za-z0-9_] in usernames, but the row is ours to trust less."""
    await buyer_with_a_payment(tg, client, clock, "a<b>&c")
    await tg.message(ADMIN, "/payments")
    page = telegram.of("sendMessage", ADMIN)[-1]
    assert page.ok and "@a<b>&c" in visible(page)


async def test_an_admin_query_full_of_html_comes_back_escaped(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    query = "<b>&" * 20 + "🐱"  # longer than any id: echoed whole in the answer's header
    await tg.message(ADMIN, f"/payments {query}")
    answer = telegram.of("sendMessage", ADMIN)[-1]
    assert answer.ok, answer
    assert visible(answer).startswith(f"🔎 {query}\nNo payments found.")


async def test_short_queries_full_of_html_are_answered(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    for query in ("<b>", "a&b", "🐱<", "@<i>", "2026-11-01..<"):
        await tg.message(ADMIN, f"/payments {query}")
        answer = telegram.of("sendMessage", ADMIN)[-1]
        assert answer.ok, answer
        assert visible(answer).startswith(f"🔎 {query}\nNo payments found.")
