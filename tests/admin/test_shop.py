"""/shop through the webhook, the fake Bot API and the real provider routes, on SQLite and
PostgreSQL: every change asks, applies once when confirmed and never when cancelled, is
offered to buyers at once, reaches new orders only, and is listed in the history."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from db.schema import orders, payments, shop_changes, tariff_overrides
from tests.admin.helpers import ADMIN, assert_valid_html, screen
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import Call, FakeTelegram
from tests.providers.click.helpers import ClickCaller
from tests.providers.payme.helpers import PaymeCaller, account
from web.app import create_app
from web.keys import DATABASE, TELEGRAM_LINK
from web.settings import Settings

BUYER = 7071001
STALE = "This button is out of date. Send /tariffs to start again."
POINTER = "I did not understand that. Send /tariffs to choose a plan or /help for help."
TITLE = "The title must be 1 to 32 characters, without &lt;, &gt; or &amp;."
LINES = "Write 1 to 8 lines separated by |, each 1 to 120 characters."
NEW_ORDERS_ONLY = "Applies to new orders only: orders made before keep their price and days."


def text(call: Call) -> str:
    """What a person reads, with the no-break spaces of amounts as plain ones."""
    return call.text.replace("\u00a0", " ")


def labels(call: Call) -> list[str]:
    return [b["text"].replace("\u00a0", " ") for b in call.buttons]


def tap(call: Call, label: str) -> str:
    """The callback data of the button that reads `label`."""
    return str(call.buttons[labels(call).index(label)]["callback_data"])


async def change(tg: Telegram, telegram: FakeTelegram, command: str, confirm: bool) -> Call:
    """Send a /shop change, check the question, answer it; the message as it ends."""
    await tg.message(ADMIN, command)
    question = screen(telegram)
    assert text(question).endswith(NEW_ORDERS_ONLY), text(question)
    await tg.press(ADMIN, tap(question, "✅ Confirm" if confirm else "✖ Cancel"))
    return screen(telegram)


async def tariffs_seen(tg: Telegram, telegram: FakeTelegram, language: str = "en") -> Call:
    """What a buyer gets for /tariffs now."""
    await tg.press(BUYER, f"lang:{language}", language=language)
    await tg.message(BUYER, "/tariffs", language=language)
    return telegram.of("sendMessage", BUYER)[-1]


async def rows(client: TestClient, table: Any) -> list[Any]:
    async with client.server.app[DATABASE].read() as conn:
        return list(await conn.execute(select(table)))


async def test_price_cancel_then_confirm_then_a_second_confirm(
    tg: Telegram, telegram: FakeTelegram, client: TestClient
) -> None:
    cancelled = await change(tg, telegram, "/shop PLUS price 20 000", confirm=False)
    assert text(cancelled).startswith("✖ Cancelled: PLUS, price: 15 000 so'm → 20 000 so'm\n\n")
    assert "15 000 so'm" in text(await tariffs_seen(tg, telegram))
    assert await rows(client, tariff_overrides) == []

    await tg.message(ADMIN, "/shop plus price 20000")
    question = screen(telegram)
    assert text(question) == f"PLUS, price: 15 000 so'm → 20 000 so'm\n{NEW_ORDERS_ONLY}"
    confirm = tap(question, "✅ Confirm")
    await tg.press(ADMIN, confirm)
    applied = screen(telegram)
    assert text(applied).startswith("✅ Applied: PLUS, price: 15 000 so'm → 20 000 so'm\n\n")
    assert "PLUS: 20 000 so'm for 30 days" in text(applied)  # the card follows
    seen = await tariffs_seen(tg, telegram)
    assert "PLUS: 20 000 so'm for 30 days" in text(seen)
    assert "Buy PLUS — 20 000 so'm" in labels(seen)

    await tg.press(ADMIN, confirm)  # the same button again: nothing more happens
    answer = telegram.of("answerCallbackQuery")[-1].params
    assert answer["text"] == "This change was applied already."
    statuses = sorted(row.status for row in await rows(client, shop_changes))
    assert statuses == ["applied", "cancelled"]
    [override] = await rows(client, tariff_overrides)
    assert (override.code, override.price, override.days) == ("PLUS", 2_000_000, None)


async def test_two_confirms_at_once_apply_once_and_a_stale_change_is_not_applied(
    tg: Telegram, telegram: FakeTelegram, client: TestClient
) -> None:
    await tg.message(ADMIN, "/shop PRO days 60")
    first = tap(screen(telegram), "✅ Confirm")
    await tg.message(ADMIN, "/shop PRO days 90")  # asked before the first was confirmed
    second = tap(screen(telegram), "✅ Confirm")
    await asyncio.gather(*(tg.press(ADMIN, first) for _ in range(4)))
    answers = [c.params.get("text") for c in telegram.of("answerCallbackQuery")]
    assert answers.count("This change was applied already.") == 3
    await tg.press(ADMIN, second)
    assert text(screen(telegram)).startswith(
        "Not applied: the days changed meanwhile. Send the command again."
    )
    changes = {row.value_after: row.status for row in await rows(client, shop_changes)}
    assert changes == {60: "applied", 90: "outdated"}
    assert "PRO: 39 000 so'm for 60 days" in text(await tariffs_seen(tg, telegram))


async def test_days_titles_and_features_per_language(
    tg: Telegram, telegram: FakeTelegram, client: TestClient
) -> None:
    ended = await change(tg, telegram, "/shop PLUS days 45", confirm=False)
    assert text(ended).startswith("✖ Cancelled: PLUS, days: 30 days → 45 days")
    ended = await change(tg, telegram, "/shop PLUS days 1", confirm=True)
    assert text(ended).startswith("✅ Applied: PLUS, days: 30 days → 1 day")
    ended = await change(tg, telegram, "/shop PLUS title ru Плюс", confirm=True)
    assert text(ended).startswith("✅ Applied: PLUS, title (ru): «PLUS» → «Плюс»")
    ended = await change(
        tg, telegram, "/shop PLUS features uz Yangi imkoniyat | <Ikkinchi> & uchinchi", True
    )
    assert text(ended).startswith(
        "✅ Applied: PLUS, features (uz): Yopiq kanalga kirish | Har hafta yangi materiallar"
        " → Yangi imkoniyat | &lt;Ikkinchi&gt; &amp; uchinchi"
    )
    assert_valid_html(ended.params["text"])
    ended = await change(tg, telegram, "/shop PLUS features en Only this\n And  that", False)
    assert text(ended).startswith(
        "✖ Cancelled: PLUS, features (en): Access to the private channel | New materials every"
        " week → Only this | And that\n\n"
    )

    ru = text(await tariffs_seen(tg, telegram, "ru"))
    assert "Плюс: 15 000 сум за 1 день" in ru
    assert "• Доступ к закрытому каналу" in ru  # ru lines unchanged
    uz = text(await tariffs_seen(tg, telegram, "uz"))
    assert "• Yangi imkoniyat\n• &lt;Ikkinchi&gt; &amp; uchinchi" in uz
    assert "PLUS:" in uz and "Yopiq kanalga" not in uz
    en = text(await tariffs_seen(tg, telegram, "en"))
    assert "PLUS: 15 000 so'm for 1 day\n• Access to the private channel" in en


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/shop PLUS price 20000.50", "The price must be a whole number of so'm, like 20000."),
        ("/shop PLUS price -5", "The price must be a whole number of so'm, like 20000."),
        ("/shop PLUS price 0", "The price must be from 1 000 so'm to 100 000 000 so'm."),
        ("/shop PLUS price 999", "The price must be from 1 000 so'm to 100 000 000 so'm."),
        ("/shop PLUS price 100000001", "The price must be from 1 000 so'm to 100 000 000 so'm."),
        ("/shop PLUS days 0", "Days must be a whole number from 1 to 3660."),
        ("/shop PLUS days 3661", "Days must be a whole number from 1 to 3660."),
        ("/shop PLUS days two", "Days must be a whole number from 1 to 3660."),
        ("/shop PLUS title de Plus", "The language must be uz, ru or en."),
        ("/shop PLUS title ru", TITLE),
        ("/shop PLUS title ru " + "x" * 33, TITLE),
        ("/shop PLUS title en A&B", TITLE),
        ("/shop PLUS features uz a | | b", LINES),
        ("/shop PLUS features uz " + " | ".join("x" * 9), LINES),
        ("/shop PLUS features ru " + "y" * 121, LINES),
        ("/shop GOLD price 1000", "Unknown plan GOLD. Plans: PLUS, PRO."),
        ("/shop <b>", "Unknown plan &lt;b&gt;. Plans: PLUS, PRO."),
        ("/shop PLUS price 15000", "Nothing to change: the price is 15 000 so'm already."),
        ("/shop PLUS colour red",
         "Cannot read that. Change a plan like this:\n<code>/shop PLUS price 20000</code>"),
    ],
)  # fmt: skip
async def test_validation_says_what_is_wrong_in_one_line(
    tg: Telegram, telegram: FakeTelegram, client: TestClient, command: str, answer: str
) -> None:
    await tg.message(ADMIN, command)
    reply = screen(telegram)
    assert text(reply).startswith(answer)
    assert not reply.buttons
    assert await rows(client, shop_changes) == []


async def test_hide_removes_it_from_tariffs_and_refuses_its_old_tap(
    tg: Telegram, telegram: FakeTelegram, client: TestClient
) -> None:
    before = await tariffs_seen(tg, telegram)
    old_button = tap(before, "Buy PRO — 39 000 so'm")
    await tg.message(ADMIN, "/shop")
    listing = screen(telegram)
    assert text(listing).splitlines()[1:] == [
        "PLUS: 15 000 so'm for 30 days",
        "PRO: 39 000 so'm for 30 days",
    ]
    await tg.press(ADMIN, tap(listing, "PRO"))
    card = screen(telegram)
    assert "Shown to buyers." in text(card) and "/shop PRO price 20000" in text(card)
    await tg.press(ADMIN, tap(card, "Hide from buyers"))
    question = screen(telegram)
    assert text(question).startswith("PRO, visibility: shown → hidden\n")
    await tg.press(ADMIN, tap(question, "✖ Cancel"))
    assert "Buy PRO — 39 000 so'm" in labels(await tariffs_seen(tg, telegram))

    await tg.press(ADMIN, tap(screen(telegram), "Hide from buyers"))
    await tg.press(ADMIN, tap(screen(telegram), "✅ Confirm"))
    card = screen(telegram)
    assert text(card).startswith("✅ Applied: PRO, visibility: shown → hidden\n\n")
    assert "Hidden: buyers do not see it" in text(card)
    seen = await tariffs_seen(tg, telegram)
    assert "PRO" not in text(seen).split("Your plan")[0] and "39 000" not in text(seen)
    assert [label for label in labels(seen) if label.startswith("Buy")] == [
        "Buy PLUS — 15 000 so'm"
    ]
    await tg.press(BUYER, old_button)
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == STALE
    async with client.server.app[DATABASE].read() as conn:
        assert await conn.scalar(select(func.count()).select_from(orders)) == 0

    await tg.message(ADMIN, "/shop")
    assert "PRO: 39 000 so'm for 30 days (hidden)" in text(screen(telegram))
    await tg.message(ADMIN, "/shop pro")
    await tg.press(ADMIN, tap(screen(telegram), "Show to buyers"))
    await tg.press(ADMIN, tap(screen(telegram), "✅ Confirm"))
    assert "Buy PRO — 39 000 so'm" in labels(await tariffs_seen(tg, telegram))


def pay_links(call: Call) -> tuple[dict[str, str], dict[str, str]]:
    """The Click and Payme checkout parameters of a checkout message's pay buttons."""
    urls = [b["url"] for b in call.buttons if "url" in b]
    [click] = [dict(parse_qsl(urlsplit(u).query)) for u in urls if "click" in u]
    [payme] = [u for u in urls if "checkout" in u]
    raw = base64.b64decode(payme.rsplit("/", 1)[1]).decode()
    return click, dict(part.split("=", 1) for part in raw.split(";"))


async def test_a_price_change_applies_to_new_orders_only(
    tg: Telegram, telegram: FakeTelegram, client: TestClient, clock: FakeClock
) -> None:
    await tg.press(BUYER, "lang:en")
    await tg.press(BUYER, "buy:PLUS")
    old_click, old_payme = pay_links(telegram.of("sendMessage", BUYER)[-1])
    assert (old_click["amount"], old_payme["a"]) == ("15000.00", "1500000")
    await change(tg, telegram, "/shop PLUS price 20000", confirm=True)
    clock.advance(seconds=2)
    await tg.press(BUYER, "buy:PLUS")  # the old order is not reused at the new price
    checkout = telegram.of("sendMessage", BUYER)[-1]
    assert "PLUS: 20 000 so'm for 30 days" in text(checkout)
    new_click, new_payme = pay_links(checkout)
    assert (new_click["amount"], new_payme["a"]) == ("20000.00", "2000000")
    old_mti, new_mti = old_click["transaction_param"], new_click["transaction_param"]
    assert old_mti != new_mti == new_payme["ac.order_id"]

    click = ClickCaller(client)
    refused = await click.prepare(old_mti, 8001, amount="20000.00")
    assert refused["error"] == -2  # the old order wants its own amount
    prepared = await click.prepare(old_mti, 8002, amount="15000.00")
    assert prepared["error"] == 0
    done = await click.complete(old_mti, 8002, prepared["merchant_prepare_id"], amount="15000.00")
    assert done["error"] == 0

    payme = PaymeCaller(client)
    wrong = await payme.call("CheckPerformTransaction", amount=1_500_000, account=account(new_mti))
    assert wrong["error"]["code"] == -31001
    await payme.result(
        "CreateTransaction", id="e" * 24, time=clock.now, amount=2_000_000,
        account=account(new_mti),
    )  # fmt: skip
    await payme.result("PerformTransaction", id="e" * 24)

    async with client.server.app[DATABASE].read() as conn:
        paid = {
            row.merchant_trans_id: (row.amount, row.paid_amount, row.state)
            for row in await conn.execute(
                select(orders.c.merchant_trans_id, orders.c.amount, payments.c.amount.label(
                    "paid_amount"), payments.c.state)
                .join(payments, payments.c.order_id == orders.c.id)
                .where(payments.c.state == "paid")
            )
        }  # fmt: skip
    assert paid == {
        old_mti: (1_500_000, 1_500_000, "paid"),
        new_mti: (2_000_000, 2_000_000, "paid"),
    }


async def test_the_history_lists_who_when_before_after_newest_first_in_pages(
    tg: Telegram, telegram: FakeTelegram, client: TestClient, clock: FakeClock
) -> None:
    for days in range(31, 43):  # 12 applied changes
        await change(tg, telegram, f"/shop PLUS days {days}", confirm=True)
        clock.advance(seconds=61)
    await change(tg, telegram, "/shop PRO price 45000", confirm=False)  # not in the history
    await tg.message(ADMIN, "/shop")
    await tg.press(ADMIN, tap(screen(telegram), "📜 History"))
    page = screen(telegram)
    assert_valid_html(page.params["text"])
    entries = text(page).split("\n\n")[1:]
    assert len(entries) == 10
    assert entries[0].endswith("User900001 (900001)\nPLUS, days: 41 days → 42 days")
    assert entries[-1].endswith("PLUS, days: 32 days → 33 days")
    assert "PRO" not in text(page)
    await tg.press(ADMIN, tap(page, "Older ▶"))
    older = screen(telegram)
    assert [e.split("\n")[1] for e in text(older).split("\n\n")[1:]] == [
        "PLUS, days: 31 days → 32 days",
        "PLUS, days: 30 days → 31 days",
    ]
    assert labels(older) == ["◀ Newest", "◀ All plans"]
    await tg.press(ADMIN, tap(older, "◀ All plans"))
    assert text(screen(telegram)).startswith("🛒 Shop: the plans as buyers see them.")
    assert "PLUS: 15 000 so'm for 42 days" in text(screen(telegram))


async def test_not_for_buyers(tg: Telegram, telegram: FakeTelegram, client: TestClient) -> None:
    await tg.message(ADMIN, "/shop PLUS price 20000")
    confirm = tap(screen(telegram), "✅ Confirm")
    await tg.message(BUYER, "/shop")
    await tg.message(BUYER, "/shop PLUS price 1000")
    replies = [text(c) for c in telegram.of("sendMessage", BUYER)]
    assert [r.startswith(POINTER) for r in replies] == [True, True]
    for data in (confirm, "sy:0", "sc:PLUS", "sv:PRO:1", "sl"):
        await tg.press(BUYER, data)
        assert telegram.of("answerCallbackQuery")[-1].params["text"] == STALE
    [pending] = await rows(client, shop_changes)
    assert pending.status == "pending"
    assert await rows(client, tariff_overrides) == []


async def test_two_instances_one_shop(
    tg: Telegram,
    telegram: FakeTelegram,
    client: TestClient,
    settings: Settings,
    clock: FakeClock,
) -> None:
    """Asked on one instance, confirmed on another, offered by both at once, and a
    second confirm on the first is refused: nothing lives in one process's memory."""
    other_app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(other_app, host="127.0.0.1")) as other_client:
        await asyncio.wait_for(other_app[TELEGRAM_LINK].registered.wait(), 10)
        other = Telegram(other_client, settings)
        await tg.message(ADMIN, "/shop PRO price 45000")
        confirm = tap(screen(telegram), "✅ Confirm")
        await other.press(ADMIN, confirm)
        assert text(screen(telegram)).startswith("✅ Applied: PRO, price: 39 000 so'm → 45 000")
        for instance in (tg, other):
            await instance.message(BUYER, "/tariffs")
            assert "PRO: 45 000 so'm" in text(telegram.of("sendMessage", BUYER)[-1])
        await tg.press(ADMIN, confirm)
        answer = telegram.of("answerCallbackQuery")[-1].params["text"]
        assert answer == "This change was applied already."
    assert [row.status for row in await rows(client, shop_changes)] == ["applied"]


async def test_payme_receipt_line_names_the_days_of_the_order(
    make_settings: Any, telegram: FakeTelegram, clock: FakeClock
) -> None:
    """The fiscal codes stay the file's; the receipt's "for N days" is the order's."""
    settings = make_settings(
        TARIFF_PLUS_IKPU="10305013001000000",
        TARIFF_PLUS_PACKAGE_CODE="1495086",
        TARIFF_PLUS_VAT_PERCENT="12",
    )
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await asyncio.wait_for(app[TELEGRAM_LINK].registered.wait(), 10)
        tg = Telegram(client, settings)
        await tg.press(BUYER, "lang:en")
        await tg.press(BUYER, "buy:PLUS")
        _click, before = pay_links(telegram.of("sendMessage", BUYER)[-1])
        await change(tg, telegram, "/shop PLUS days 60", confirm=True)
        clock.advance(seconds=2)
        await tg.press(BUYER, "buy:PLUS")
        _click, after = pay_links(telegram.of("sendMessage", BUYER)[-1])
        payme = PaymeCaller(client)
        items = [
            (
                await payme.result(
                    "CheckPerformTransaction",
                    amount=1_500_000,
                    account=account(link["ac.order_id"]),
                )
            )["detail"]["items"][0]
            for link in (before, after)
        ]
    assert [(item["title"], item["code"]) for item in items] == [
        ("PLUS plan for 30 days", "10305013001000000"),
        ("PLUS plan for 60 days", "10305013001000000"),
    ]
