"""Checkout and receipt through the real webhook and the real provider routes: the
preview from the ledger, one checkout message per order, "Paid ✓" without buttons, the
short order number, the fiscal receipt link, /terms and /paysupport, the catalogue file."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.i18n import create_i18n
from bot.texts import format_moment
from bot.workers.notices import render
from db import outbox
from db.clock import to_datetime
from db.orders import (
    CHECKOUT_CLAIM_MS,
    Order,
    claim_checkout,
    get_order_by_id,
    open_order,
    order_code,
    order_id_from_code,
)
from db.schema import orders
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import Call, FakeTelegram
from tests.providers.click.helpers import ClickCaller
from tests.providers.payme.helpers import PaymeCaller, account
from web.app import create_app
from web.keys import DATABASE
from web.settings import Settings, SettingsError, load_settings

USER = 6061001
TOKEN = "123456789:AAE_test_token_for_the_fake_bot_api_0123"


def checkouts(telegram: FakeTelegram) -> list[Call]:
    return [c for c in telegram.of("sendMessage", USER) if c.text.startswith("🧾")]


def click_params(call: Call) -> dict[str, str]:
    [url] = [b["url"] for b in call.buttons if b.get("url", "").startswith("https://my.click")]
    return dict(parse_qsl(urlsplit(url).query))


async def pay_click(client: TestClient, call: Call, trans_id: int) -> None:
    params = click_params(call)
    click = ClickCaller(client)
    prepared = await click.prepare(params["transaction_param"], trans_id, amount=params["amount"])
    assert prepared["error"] == 0
    done = await click.complete(
        params["transaction_param"],
        trans_id,
        prepared["merchant_prepare_id"],
        amount=params["amount"],
    )
    assert done["error"] == 0


async def test_preview_paid_checkout_and_receipt(
    tg: Telegram, telegram: FakeTelegram, client: TestClient, clock: FakeClock
) -> None:
    await tg.press(USER, "lang:en")
    await tg.press(USER, "buy:PLUS")
    await tg.press(USER, "buy:PLUS")  # a double tap: the same message, edited
    [plus] = checkouts(telegram)
    assert "After this payment" not in plus.text  # no plan yet: the days say it all
    checkout_id = telegram.of("editMessageText", USER)[-1].params["message_id"]
    started = clock.now
    await pay_click(client, plus, 7001)
    receipt = await telegram.wait_for("sendMessage", lambda c: c.text.startswith("✅"))
    paid = await telegram.wait_for(
        "editMessageText", lambda c: c.params["message_id"] == checkout_id and "Paid" in c.text
    )
    code = plus.text.split("#", 1)[1].split("\n", 1)[0]
    assert paid.text == (
        f"🧾 Order #{code} — Paid ✓\n"
        "PLUS: 15 000 so'm for 30 days\n"
        "The receipt is in the message below."
    )
    assert "reply_markup" not in paid.params  # no pay buttons left
    assert f"Order: #{code}" in receipt.text and "Paid with Click" in receipt.text

    clock.advance(days=10)
    await tg.press(USER, "buy:PRO")
    pro = checkouts(telegram)[-1]
    plus_end = started + 30 * 86_400_000
    pro_end = clock.now + 30 * 86_400_000
    assert (
        f"After this payment: PRO until {format_moment(to_datetime(pro_end))}, then PLUS "
        f"until {format_moment(to_datetime(plus_end + 30 * 86_400_000))} (Tashkent time)."
    ) in pro.text
    assert "• Everything in PLUS" in pro.text


async def test_fiscal_receipt_link_once_payme_sent_it(
    tg: Telegram, telegram: FakeTelegram, client: TestClient, clock: FakeClock
) -> None:
    await tg.press(USER, "lang:en")
    await tg.press(USER, "buy:PRO")
    [call] = checkouts(telegram)
    [url] = [b["url"] for b in call.buttons if b.get("url", "").startswith("https://checkout")]
    raw = base64.b64decode(url.rsplit("/", 1)[1]).decode()
    fields = dict(part.split("=", 1) for part in raw.split(";"))
    payme = PaymeCaller(client)
    mti, amount = fields["ac.order_id"], int(fields["a"])
    await payme.result(
        "CreateTransaction", id="f" * 24, time=clock.now, amount=amount, account=account(mti)
    )
    await payme.result("PerformTransaction", id="f" * 24)
    receipt = await telegram.wait_for("sendMessage", lambda c: c.text.startswith("✅"))
    fiscal = [b for b in receipt.buttons if b.get("callback_data", "").startswith("receipt:")]
    assert [b["text"] for b in fiscal] == ["🧾 Fiscal receipt"]
    await tg.press(USER, fiscal[0]["callback_data"])
    answer = telegram.of("answerCallbackQuery")[-1].params
    assert answer["text"].startswith("Payme has not sent the fiscal receipt yet")
    link = "https://ofd.soliq.uz/check?t=EP000000000001&r=1&c=20261202&s=1"
    await payme.result(
        "SetFiscalData", id="f" * 24, type="PERFORM", fiscal_data={"qr_code_url": link}
    )
    await tg.press(USER, fiscal[0]["callback_data"])
    edit = telegram.of("editMessageText", USER)[-1]
    assert (
        "Fiscal receipt: https://ofd.soliq.uz/check?t=EP000000000001&amp;r=1"
        in (edit.params["text"])
    )
    # Someone else's order number shows nothing.
    await tg.press(USER + 1, fiscal[0]["callback_data"])
    answer = telegram.of("answerCallbackQuery")[-1].params
    assert answer["text"] == "This button is out of date. Send /tariffs to start again."


def test_order_codes_are_unique_short_and_found_again() -> None:
    codes = {order_code(i) for i in range(1, 50_000)}
    assert len(codes) == 49_999 and all(len(c) == 5 for c in codes)
    assert order_id_from_code("#" + order_code(4242).lower()) == 4242
    assert order_id_from_code(order_code(32**5 + 7)) == 32**5 + 7
    assert order_id_from_code("#AB") is None and order_id_from_code("hello!") is None


async def test_support_terms_and_paysupport(make_settings, clock, telegram) -> None:
    settings = make_settings(SUPPORT_CONTACT="@shop_help", TERMS_URL="https://example.uz/t?a=1&b=2")
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        tg = Telegram(client, settings)
        await tg.message(USER, "/help")
        assert telegram.of("sendMessage", USER)[-1].text.endswith("Questions? Write to @shop_help.")
        await tg.message(USER, "/terms")
        assert telegram.of("sendMessage", USER)[-1].text == (
            "The terms of service: https://example.uz/t?a=1&amp;b=2\n\n"
            "Questions? Write to @shop_help."
        )
        await tg.message(USER, "/paysupport")
        text = telegram.of("sendMessage", USER)[-1].text
        assert "#A7K2Q" in text and text.endswith("Write to @shop_help.")
        for question in ("how do I pay?", "где мой платёж", "pulim qaytadimi", "Toʻlov oʻtmadi"):
            await tg.message(USER, question)
            assert telegram.of("sendMessage", USER)[-1].text == (
                "Is this about a payment? Send /paysupport to see how to reach us."
            )
        await tg.message(USER, "hello")
        assert "Questions? Write to @shop_help." in telegram.of("sendMessage", USER)[-1].text


def test_catalogue_file_and_its_errors(tmp_path: Path) -> None:
    shipped = load_settings({"BOT_TOKEN": TOKEN}).tariffs
    assert shipped["PRO"].gives("uz")[0] == "PLUS tarifidagi barcha imkoniyatlar"
    assert shipped["PLUS"].gives("de") == shipped["PLUS"].gives("en")
    path = tmp_path / "t.toml"
    path.write_text(
        '[tariffs.PLUS]\ntitle = "Plus"\nprice_som = 20000\ndays = 7\nrank = 1\n'
        'fiscal = { ikpu = "10305013001000000", package_code = "1495086", vat_percent = 12 }\n'
        '[tariffs.PLUS.features]\nen = ["One & only"]\n'
    )
    env = {"BOT_TOKEN": TOKEN, "TARIFFS_FILE": str(path)}
    plus = load_settings(env).tariffs["PLUS"]
    assert (plus.price, plus.days, plus.title, plus.fiscal is not None) == (
        2_000_000,
        7,
        "Plus",
        True,
    )
    assert list(load_settings(env).tariffs) == ["PLUS"]
    # The environment still overrides the file.
    assert load_settings({**env, "TARIFF_PLUS_DAYS": "31"}).tariffs["PLUS"].days == 31
    for body, error in (
        ("[tariffs.GOLD]\n", "tariffs.GOLD: unknown tariff"),
        ("[tariffs.PLUS]\nprice_som = 0\ndays = 1\nrank = 1\n", "tariffs.PLUS.price_som"),
        ("[tariffs.PLUS]\nprice_som = 1\ndays = 1\nrank = 2\n", "tariffs.PLUS.rank: must be 1"),
        ("[tariffs.PLUS\n", "TARIFFS_FILE"),
        (
            "[tariffs.PLUS]\nprice_som = 1\ndays = 1\nrank = 1\nfeatures = { de = [] }\n",
            "tariffs.PLUS.features.de",
        ),
    ):
        path.write_text(body)
        with pytest.raises(SettingsError, match=error.replace(".", r"\.").replace("[", r"\[")):
            load_settings(env)
    with pytest.raises(SettingsError, match="TARIFFS_FILE: cannot read"):
        load_settings({**env, "TARIFFS_FILE": str(tmp_path / "missing.toml")})
    with pytest.raises(SettingsError, match="SUPPORT_CONTACT"):
        load_settings({"BOT_TOKEN": TOKEN, "SUPPORT_CONTACT": "call me"})


async def test_a_menu_tap_on_a_message_that_cannot_be_edited_answers_anew(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    """Telegram sends old messages as inaccessible (date 0): nothing to edit, so the
    answer comes as a new message instead of nothing."""
    await tg.send(
        {
            "callback_query": {
                "id": "old-tap",
                "from": {"id": USER, "is_bot": False, "first_name": "U", "language_code": "en"},
                "chat_instance": "ci",
                "data": "menu:myplan",
                "message": {"message_id": 7, "date": 0, "chat": {"id": USER, "type": "private"}},
            }
        }
    )
    assert telegram.of("editMessageText", USER) == []
    [answer] = telegram.of("sendMessage", USER)
    assert answer.text == "You have no active plan."
    assert [b["callback_data"] for b in answer.buttons] == ["menu:tariffs", "menu:home"]


async def test_two_taps_at_once_send_one_checkout(
    tg: Telegram, telegram: FakeTelegram, client: TestClient
) -> None:
    """Telegram delivers taps concurrently: while the first tap's checkout is on its way,
    the second must not send another one."""
    telegram.send_latency = 0.3
    await asyncio.gather(
        tg.press(USER, "buy:PRO", message_id=300), tg.press(USER, "buy:PRO", message_id=300)
    )
    assert len(checkouts(telegram)) == 1
    toasts = [c.params.get("text") for c in telegram.of("answerCallbackQuery")]
    assert sum(1 for t in toasts if t and "is in the message above" in t) == 1
    # A later tap edits the one message.
    await tg.press(USER, "buy:PRO", message_id=300)
    assert len(checkouts(telegram)) == 1
    assert telegram.of("editMessageText", USER)[-1].text.startswith("🧾 Order #")


async def user_orders(client: TestClient) -> list[Order]:
    async with client.server.app[DATABASE].read() as conn:
        rows = await conn.execute(select(orders).where(orders.c.user_id == USER))
        return [await get_order_by_id(conn, row.id) for row in rows]


async def test_a_deleted_checkout_is_sent_again_for_the_same_order(
    tg: Telegram, telegram: FakeTelegram, client: TestClient
) -> None:
    """The buyer deleted the checkout message: the next tap on the tariff cannot edit it,
    so a new one comes, for the same order, and the payment marks the new one paid."""
    await tg.press(USER, "lang:en")
    await tg.press(USER, "buy:PLUS", message_id=300)
    [first] = checkouts(telegram)
    [order] = await user_orders(client)
    assert order.checkout_message_id is not None and order.checkout_message_id > 0
    telegram.delete(USER, order.checkout_message_id)
    await tg.press(USER, "buy:PLUS", message_id=300)
    failed = telegram.of("editMessageText", USER)[-1]
    assert not failed.ok and failed.params["message_id"] == order.checkout_message_id
    second = checkouts(telegram)[-1]
    assert second is not first and second.ok and second.text == first.text
    [again] = await user_orders(client)
    assert again.id == order.id and again.checkout_message_id not in (
        None,
        order.checkout_message_id,
    )
    await pay_click(client, second, 7101)
    paid = await telegram.wait_for("editMessageText", lambda c: "Paid" in c.text)
    assert paid.ok and paid.params["message_id"] == again.checkout_message_id


async def test_a_menu_tap_on_a_deleted_message_answers_anew(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    await tg.press(USER, "lang:en", message_id=400)
    assert telegram.of("editMessageText", USER)[-1].ok  # the language message, edited
    telegram.delete(USER, 400)  # deleted in the app while Telegram still delivers the tap
    await tg.send(
        {
            "callback_query": {
                "id": "late-tap",
                "from": {"id": USER, "is_bot": False, "first_name": "U", "language_code": "en"},
                "chat_instance": "ci",
                "data": "menu:myplan",
                "message": {"message_id": 400, "date": 1, "chat": {"id": USER, "type": "private"}},
            }
        }
    )
    assert not telegram.of("editMessageText", USER)[-1].ok
    answer = telegram.of("sendMessage", USER)[-1]
    assert answer.ok and answer.text == "You have no active plan."


async def test_a_second_tap_on_the_same_screen_changes_nothing(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    """Telegram refuses an edit to the same text and buttons ("message is not
    modified"): the tap is answered and nothing new is sent."""
    await tg.press(USER, "lang:en", message_id=400)
    await tg.press(USER, "menu:myplan", message_id=400)
    await tg.press(USER, "menu:myplan", message_id=400)
    refused = telegram.of("editMessageText", USER)[-1]
    assert not refused.ok and refused.text == "You have no active plan."
    assert telegram.of("sendMessage", USER) == []
    assert len(telegram.of("answerCallbackQuery")) == 3
    await tg.press(USER, "lang:en", message_id=400)  # the same language again: the same
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == "Language: English"


async def test_a_claim_left_by_a_crashed_send_expires(
    tg: Telegram, telegram: FakeTelegram, client: TestClient, clock: FakeClock, settings: Settings
) -> None:
    """A process that claimed the checkout message and died before storing its id: taps
    within CHECKOUT_CLAIM_MS wait for it, the first after it sends the checkout."""
    await tg.press(USER, "lang:en")
    async with client.server.app[DATABASE].transaction() as conn:
        order = await open_order(conn, USER, settings.tariffs["PRO"], to_datetime(clock.now))
        assert await claim_checkout(conn, order, USER, clock.now)
    clock.advance(seconds=CHECKOUT_CLAIM_MS / 1000 - 1)
    await tg.press(USER, "buy:PRO")
    assert checkouts(telegram) == []
    toast = telegram.of("answerCallbackQuery")[-1].params["text"]
    assert toast == f"Your order #{order.code} is in the message above."
    clock.advance(seconds=1)
    await tg.press(USER, "buy:PRO")
    [sent] = checkouts(telegram)
    assert sent.ok and sent.text.startswith(f"🧾 Order #{order.code}\n")
    [stored] = await user_orders(client)
    assert (stored.id, stored.checkout_message_id) == (order.id, sent_id(telegram, sent))


def sent_id(telegram: FakeTelegram, call: Call) -> int:
    """The message id the fake gave a sent message (the one showing its text)."""
    [(_chat, message_id)] = [
        key for key, shown in telegram.messages.items() if shown["text"] == call.text
    ]
    return message_id


@pytest.mark.parametrize(
    ("payload", "footer"),
    [
        (  # as db/billing.py queues it now
            {"tariff": "PRO", "amount": 3_900_000, "timeline": [], "removed_ms": 1,
             "order_code": "0F7RD"},
            "\n\nOrder: #0F7RD\nQuestions about a payment: /paysupport",
        ),
        (  # queued before the ledger and the order number: the pointer all the same
            {"tariff": "PRO", "amount": 3_900_000, "expires_at": "2027-01-10T04:00:00+00:00"},
            "(Tashkent time).\n\nQuestions about a payment: /paysupport",
        ),
    ],
)  # fmt: skip
def test_a_refund_names_the_order_and_ends_with_the_paysupport_line(
    payload: dict[str, object], footer: str
) -> None:
    i18n = create_i18n("en")
    with i18n.context(), i18n.use_locale("en"):
        text, _markup = render(outbox.PAYMENT_REFUNDED, payload)
    assert text.startswith("↩️ Your ") and "39\u00a0000" in text and text.endswith(footer)


async def test_two_taps_after_the_checkout_was_deleted_send_one(
    tg: Telegram, telegram: FakeTelegram, client: TestClient
) -> None:
    """The message is gone for both taps: the claim (compare and swap on the stored id)
    lets one of them send the new checkout."""
    await tg.press(USER, "buy:PRO", message_id=300)
    [order] = await user_orders(client)
    assert order.checkout_message_id is not None
    telegram.delete(USER, order.checkout_message_id)
    telegram.send_latency = 0.3
    await asyncio.gather(
        tg.press(USER, "buy:PRO", message_id=300), tg.press(USER, "buy:PRO", message_id=300)
    )
    assert len(checkouts(telegram)) == 2  # the first one and one new one
    [again] = await user_orders(client)
    assert again.checkout_message_id == sent_id(telegram, checkouts(telegram)[-1])
