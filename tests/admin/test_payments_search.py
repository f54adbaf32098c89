"""/payments as a merchant relies on it: totals of all matches, keyset pages, every search
form in the three languages, and queries full of HTML and emoji (real webhook, fake Bot API,
SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from db.clock import to_ms
from db.orders import order_code
from db.schema import payments
from tests.admin.helpers import (
    ADMIN,
    BASE,
    add_payment,
    add_user,
    assert_valid_html,
    button,
    days_ago,
    plain,
    press_on,
    screen,
    shown_ids,
)
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from web.keys import DATABASE

HEADER = re.compile(r"Found: (\d+) · paid ([\d\s]+)\sso'm · refunded ([\d\s]+)\sso'm")


def figures(text: str) -> tuple[int, int, int]:
    match = HEADER.search(plain(text))
    assert match, text
    count, paid, refunded = match.groups()
    return int(count), int(re.sub(r"\D", "", paid)) * 100, int(re.sub(r"\D", "", refunded)) * 100


SEARCHES = [
    ("paid", "a1 b2 b3 c1 c2 c3"),
    ("оплачен", "a1 b2 b3 c1 c2 c3"),
    ("toʻlangan", "a1 b2 b3 c1 c2 c3"),
    ("to'langan", "a1 b2 b3 c1 c2 c3"),
    ("refunded", "a2"),
    ("возвращён", "a2"),
    ("qaytarilgan", "a2"),
    ("cancelled", "a3"),
    ("отменён", "a3"),
    ("bekor qilingan", "a3"),
    ("pending", "b1"),
    ("ожидает", "b1"),
    ("kutilmoqda", "b1"),
    ("payme", "a2 b1 b3 c2"),
    ("Payme", "a2 b1 b3 c2"),
    ("today", "a1 b1 b3"),
    ("сегодня", "a1 b1 b3"),
    ("bugun", "a1 b1 b3"),
    ("yesterday", "a2 c1 c2"),
    ("вчера", "a2 c1 c2"),
    ("kecha", "a2 c1 c2"),
    ("week", "a1 a2 b1 b3 c1 c2"),
    ("неделя", "a1 a2 b1 b3 c1 c2"),
    ("hafta", "a1 a2 b1 b3 c1 c2"),
    ("month", "a1 a2 a3 b1 b2 b3 c1 c2"),
    ("месяц", "a1 a2 a3 b1 b2 b3 c1 c2"),
    ("oy", "a1 a2 a3 b1 b2 b3 c1 c2"),
    ("@ali_khan", "a1 a2 a3"),
    ("@ALI_KHAN", "a1 a2 a3"),
    ("ALI", "a1 a2 a3"),
    ("али", "b1 b2 b3"),
    ("АЛИСА", "b1 b2 b3"),
    ("gʻulom", "c1 c2 c3"),
    ("15000", "a1 a3 b1 b3 c1 c2 c3"),
    ("15 000", "a1 a3 b1 b3 c1 c2 c3"),
    ("15 000 soʻm", "a1 a3 b1 b3 c1 c2 c3"),
    ("15 000 soʻm", "a1 a3 b1 b3 c1 c2 c3"),  # pasted from the bot's own text
    ("39000 сум", "a2 b2"),
    ("test", "b3"),
    ("тест", "b3"),
    ("double", "c1 c2"),
    ("click paid week", "a1 c1"),
    ("pro 39 000 month paid", "b2"),
    ("nothing-like-this", ""),
]


@pytest.mark.parametrize(("query", "expected"), SEARCHES)
async def test_every_search_form_in_each_language(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], query: str, expected: str
) -> None:
    await tg.message(ADMIN, f"/payments {query}")
    call = screen(telegram)
    assert_valid_html(call.text)
    assert call.text.startswith(f"🔎 {' '.join(query.split())}")  # any space echoed as one
    ids = [shop[name] for name in expected.split()]
    assert sorted(shown_ids(call)) == sorted(ids)
    if not ids:
        assert "No payments found." in call.text


async def test_newest_first_and_test_payments_marked_and_not_counted(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    await tg.message(ADMIN, "/payments")
    call = screen(telegram)
    order = ["a1", "b1", "b3", "a2", "c2", "c1", "b2", "a3", "c3"]
    assert shown_ids(call) == [shop[n] for n in order]
    rows = plain(call.text).splitlines()
    assert rows[0] == "Found: 8 · paid 99 000 so'm · refunded 39 000 so'm"
    assert rows[1] == "Test payments not counted: 1"
    assert rows[5].endswith("· Payme · paid 🧪 TEST")
    await tg.message(ADMIN, "/payments test")
    assert figures(screen(telegram).text) == (1, 1_500_000, 0)
    assert "Test payments only." in screen(telegram).text


@pytest.mark.parametrize("query", ["", "paid", "click", "PLUS month", "week", "15 000"])
async def test_totals_equal_a_direct_sum_over_all_matches(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock, query: str
) -> None:
    """60 payments (six pages): the header sums every match, not the page on screen."""
    clock.now = to_ms(BASE)
    await add_user(client, 1001, "Ali", "ali")
    for n in range(60):
        await add_payment(
            client, 1001, created=days_ago(n / 3),
            provider=("click", "payme")[n % 2], tariff=("PLUS", "PRO")[n % 3 == 0],
            amount=(1_500_000, 3_900_000)[n % 3 == 0],
            state=("paid", "refunded", "pending", "paid", "cancelled")[n % 5],
            test=n % 11 == 0,
        )  # fmt: skip
    await tg.message(ADMIN, f"/payments {query}".strip())
    seen: list[int] = []
    while True:
        call = screen(telegram)
        seen += shown_ids(call)
        if not any(b["text"] == "▶" for b in call.buttons):
            break
        await press_on(tg, call, button(call, "▶"))
    assert len(seen) == len(set(seen)) > 0
    async with client.server.app[DATABASE].read() as conn:
        rows = (
            await conn.execute(
                select(payments.c.state, payments.c.amount).where(
                    payments.c.id.in_(seen), payments.c.test.is_(False)
                )
            )
        ).all()
        tests = await conn.scalar(
            select(func.count()).where(payments.c.id.in_(seen), payments.c.test.is_(True))
        )
    expected = (
        len(rows),
        sum(amount for state, amount in rows if state == "paid"),
        sum(amount for state, amount in rows if state == "refunded"),
    )
    assert figures(call.text) == expected
    assert tests and f"Test payments not counted: {tests}" in plain(call.text)


async def test_paging_while_payments_arrive_never_repeats_or_skips(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)
    await add_user(client, 1001, "Ali", "ali")
    first = [await add_payment(client, 1001, created=days_ago(n / 10)) for n in range(35)]
    await tg.message(ADMIN, "/payments")
    seen = shown_ids(screen(telegram))
    arrived: list[int] = []
    for step in range(3):
        for _ in range(4):  # four payments arrive between two presses
            clock.advance(seconds=1)
            arrived.append(await add_payment(client, 1001, created=BASE + timedelta(minutes=step)))
        await press_on(tg, screen(telegram), button(screen(telegram), "▶"))
        seen += shown_ids(screen(telegram))
    assert seen == first  # newest first, each exactly once, none of the newcomers
    assert figures(screen(telegram).text)[0] == 35 + 12
    # Back up from the last page: the pages come back the same, then the newcomers.
    back: list[int] = []
    while any(b["text"] == "◀" for b in screen(telegram).buttons):
        await press_on(tg, screen(telegram), button(screen(telegram), "◀"))
        back = shown_ids(screen(telegram)) + back
    assert back == sorted(arrived, reverse=True) + first[:30]


async def test_a_long_query_full_of_html_and_emoji(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)
    name = "Zoë <b>&co 🙂🙂 " + "x" * 70
    await add_user(client, 1004, name, "zoe")
    ids = [await add_payment(client, 1004, created=days_ago(n)) for n in range(12)]
    query = "<b>&co 🙂🙂 " + "x" * 70 + " paid"
    assert len(query) > 64
    await tg.message(ADMIN, f"/payments {query}")
    call = screen(telegram)
    assert_valid_html(call.text)
    assert plain(call.text).splitlines()[0] == f"🔎 {query}"
    assert "Zoë &lt;b&gt;&amp;co 🙂🙂" in call.text
    assert shown_ids(call) == ids[:10]
    await press_on(tg, call, button(call, "▶"))
    assert shown_ids(screen(telegram)) == ids[10:]
    assert_valid_html(screen(telegram).text)
    await tg.message(ADMIN, "/payments <&> 🙂 " + "y" * 80)
    nothing = screen(telegram)
    assert_valid_html(nothing.text)
    assert nothing.text.startswith("🔎 &lt;&amp;&gt; 🙂 yyy")
    assert "No payments found." in nothing.text


async def test_the_order_number_a_buyer_quotes_finds_its_payments(
    tg: Telegram, telegram: FakeTelegram, client, shop: dict[str, int]
) -> None:
    """`#A7K2Q` from the buyer's receipt, as typed or in lower case; without the "#" the
    same letters are a part of a name, never an order."""
    async with client.app[DATABASE].read() as conn:
        order_id = await conn.scalar(select(payments.c.order_id).where(payments.c.id == shop["b2"]))
    same_order = {shop["b2"]}
    async with client.app[DATABASE].read() as conn:
        rows = await conn.execute(select(payments.c.id).where(payments.c.order_id == order_id))
        same_order |= {row.id for row in rows}
    code = order_code(order_id)
    for query in (f"#{code}", f"#{code.lower()}"):
        await tg.message(ADMIN, f"/payments {query}")
        assert sorted(shown_ids(screen(telegram))) == sorted(same_order)
    await tg.message(ADMIN, f"/payments {code}")
    assert shown_ids(screen(telegram)) == []
