"""/payments as a merchant relies on it: totals of all matches, keyset pages, every search
form in the three languages, and queries full of HTML and emoji (real webhook, fake Bot API,
SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from bot.admin.search import parse_query
from db import admin_queries
from db.admin_queries import Filters, Totals
from db.clock import to_ms
from db.orders import order_code
from db.payments import update_payment
from db.schema import orders_paid_twice, payments, users
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
from tests.providers.click.helpers import ClickCaller, make_order
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


# The header's figures come from per-day sums and `double` from a list of orders, both
# kept by triggers (migration 0013_search_speed). Whatever writes the payments, they must
# stay equal to the payments themselves.
SUMMED_QUERIES = [
    "",
    "paid",
    "refunded click",
    "pro pending",
    "payme cancelled",
    "week",
    "month paid",
    "15 000",
    "39 000 сум pro",
    "test",
    "test paid",
    "2026-11-01..2026-11-09 click",
]


async def direct_figures(conn: Any, filters: Filters) -> Totals:
    """The header's figures added up in Python over every matching payment."""
    lines = await admin_queries.search(conn, filters, 100_000)
    counted = [line for line in lines if filters.test or not line.test]
    return Totals(
        len(counted),
        sum(line.amount for line in counted if line.state == "paid"),
        sum(line.amount for line in counted if line.state == "refunded"),
        0 if filters.test else sum(line.test for line in lines),
    )


async def check_every_header(conn: Any, queries: list[str]) -> None:
    for query in queries:
        filters = parse_query(query, ("click", "payme"), BASE.date())
        assert admin_queries._summed_days(await admin_queries.resolve(conn, filters))
        assert await admin_queries.totals(conn, filters) == await direct_figures(conn, filters), (
            query
        )


async def paid_twice(conn: Any) -> set[int]:
    """Orders with more than one paid payment, counted from the payments."""
    query = (
        select(payments.c.order_id)
        .where(payments.c.state == "paid")
        .group_by(payments.c.order_id)
        .having(func.count() > 1)
    )
    return set((await conn.execute(query)).scalars())


async def test_header_sums_stay_exact_through_inserts_updates_and_deletes(
    client, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)
    await add_user(client, 1001, "Ali", "ali")
    ids = []
    for n in range(40):
        ids.append(
            await add_payment(
                client, 1001, created=days_ago(n / 2),
                provider=("click", "payme")[n % 2], tariff=("PLUS", "PRO")[n % 3 == 0],
                amount=(1_500_000, 3_900_000)[n % 3 == 0],
                state=("paid", "refunded", "pending", "paid", "cancelled")[n % 5],
                test=n % 7 == 0,
            )
        )  # fmt: skip
    database = client.server.app[DATABASE]
    async with database.read() as conn:
        await check_every_header(conn, SUMMED_QUERIES)
        assert set((await conn.execute(select(orders_paid_twice.c.order_id))).scalars()) == set()
    async with database.transaction() as conn:
        for payment_id in ids[::4]:  # pending and paid ones become refunded or cancelled
            await update_payment(conn, payment_id, state="refunded")
        for payment_id in ids[1::6]:
            await update_payment(conn, payment_id, state="cancelled", test=True)
        await update_payment(conn, ids[5], create_time=to_ms(days_ago(30)), provider="payme")
        await conn.execute(delete(payments).where(payments.c.id.in_(ids[2::9])))
        first_order = await conn.scalar(select(payments.c.order_id).where(payments.c.id == ids[3]))
    # A second paid payment of an order: `double` finds both, the sums count both.
    second = await add_payment(client, 1001, created=days_ago(0.01), order_id=first_order)
    async with database.read() as conn:
        await check_every_header(conn, SUMMED_QUERIES)
        assert set((await conn.execute(select(orders_paid_twice.c.order_id))).scalars()) == {
            first_order
        }
    # Moved to another order (a PRO one: its tariff in the sums changes), then refunded.
    async with database.read() as conn:
        other = await conn.scalar(select(payments.c.order_id).where(payments.c.id == ids[12]))
    changes: list[dict[str, Any]] = [{"order_id": other}, {"state": "refunded"}]
    for change in changes:
        async with database.transaction() as conn:
            await update_payment(conn, second, **change)
        async with database.read() as conn:
            await check_every_header(conn, SUMMED_QUERIES)
            assert await paid_twice(conn) == set()
            left = set((await conn.execute(select(orders_paid_twice.c.order_id))).scalars())
            assert left == set()


async def test_real_click_payments_a_double_and_a_reversal_in_the_header(
    client, tg: Telegram, telegram: FakeTelegram
) -> None:
    """Through the Click routes and the console's reversal: the triggers see every write
    the product makes, and `double` follows the order in and out."""
    click = ClickCaller(client)
    order = await make_order(click.db, 2001)
    prepared = [(await click.prepare(order.merchant_trans_id, t))["merchant_prepare_id"]
                for t in (555001, 555002)]  # fmt: skip
    for trans_id, prepare_id in zip((555001, 555002), prepared, strict=True):
        await click.complete(order.merchant_trans_id, trans_id, prepare_id)
    async with click.db.read() as conn:
        doubles = await paid_twice(conn)
        await check_every_header(conn, ["", "click", "paid"])
    await tg.message(ADMIN, "/payments double")
    shown = shown_ids(screen(telegram))
    assert doubles == {order.id} and sorted(shown) == sorted(prepared)
    assert figures(screen(telegram).text) == (2, 3_000_000, 0)
    await press_on(tg, screen(telegram), next(
        b["callback_data"] for b in screen(telegram).buttons if b["text"] == "1"
    ))  # fmt: skip
    await press_on(tg, screen(telegram), button(screen(telegram), "Record Click reversal"))
    await press_on(
        tg, screen(telegram), button(screen(telegram), "Yes, Click reversed this payment")
    )
    await tg.message(ADMIN, "/payments click")
    assert figures(screen(telegram).text) == (2, 1_500_000, 1_500_000)
    await tg.message(ADMIN, "/payments double")
    assert shown_ids(screen(telegram)) == []
    async with click.db.read() as conn:
        await check_every_header(conn, ["", "click", "refunded", "paid"])


async def test_a_bound_inside_a_day_is_summed_from_the_payments(client, clock: FakeClock) -> None:
    """Filters made in code may cut a day (not the words an admin types): the per-day
    sums cannot answer, the payments do."""
    clock.now = to_ms(BASE)
    await add_user(client, 1001, "Ali", "ali")
    for n in range(12):
        await add_payment(client, 1001, created=BASE - timedelta(hours=2 * n))
    filters = Filters(created_from_ms=to_ms(BASE - timedelta(hours=7)))
    async with client.server.app[DATABASE].read() as conn:
        assert admin_queries._summed_days(filters) is None
        assert await admin_queries.totals(conn, filters) == Totals(4, 6_000_000, 0, 0)
        assert await admin_queries.totals(conn, filters) == await direct_figures(conn, filters)


async def test_a_part_of_a_name_follows_a_rename_in_any_alphabet_and_case(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)
    await add_user(client, 1005, "Шахноза", "shahnoza")
    await add_user(client, 1006, "O'g'il \"Bek\"", None)
    mine = [await add_payment(client, 1005, created=days_ago(n)) for n in range(2)]
    his = await add_payment(client, 1006, created=days_ago(3))
    for query, expected in (("ахн", mine), ("ШАХНОЗА", mine), ("Ах", mine), ("хн", mine),
                            ('"bek"', [his]), ("g'il", [his]), ("noza", [])):  # fmt: skip
        await tg.message(ADMIN, f"/payments {query}")
        assert sorted(shown_ids(screen(telegram))) == sorted(expected), query
    async with client.server.app[DATABASE].transaction() as conn:
        await conn.execute(update(users).where(users.c.id == 1005).values(first_name="Dilnoza"))
    for query, expected in (("ахн", []), ("NOZA", mine), ("dil", mine)):
        await tg.message(ADMIN, f"/payments {query}")
        assert sorted(shown_ids(screen(telegram))) == sorted(expected), query


async def test_double_pages_forth_and_back_newest_first(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    """The `double` page is sorted from its orders, not walked by the creation-time index:
    its keyset cursor must still cut pages exactly, both ways."""
    clock.now = to_ms(BASE)
    await add_user(client, 1001, "Ali", "ali")
    paid: list[int] = []
    for n in range(8):
        first = await add_payment(client, 1001, created=days_ago(n))
        async with client.server.app[DATABASE].read() as conn:
            order_id = await conn.scalar(select(payments.c.order_id).where(payments.c.id == first))
        again = await add_payment(client, 1001, created=days_ago(n - 0.5), order_id=order_id)
        paid += [again, first]
        await add_payment(client, 1001, created=days_ago(n + 0.25))  # paid once: not shown
    await tg.message(ADMIN, "/payments double")
    seen = shown_ids(screen(telegram))
    await press_on(tg, screen(telegram), button(screen(telegram), "▶"))
    seen += shown_ids(screen(telegram))
    assert seen == paid
    assert figures(screen(telegram).text) == (16, 16 * 1_500_000, 0)
    await press_on(tg, screen(telegram), button(screen(telegram), "◀"))
    assert shown_ids(screen(telegram)) == paid[:10]
