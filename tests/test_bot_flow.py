"""The user's journey through the real webhook, asserted on what the fake Bot API received."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import func, select

from db.orders import order_code
from db.schema import orders, users
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram

USER = 123456


def sent_to(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [call.text for call in telegram.of("sendMessage", chat_id)]


async def db_rows(client, table) -> list:
    from web.keys import DATABASE

    async with client.app[DATABASE].transaction() as conn:
        return list((await conn.execute(select(table))).all())


async def test_first_start_asks_language_preselected_from_telegram(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    await tg.message(USER, "/start", language="ru")
    call = telegram.of("sendMessage", USER)[-1]
    assert call.text == "Добро пожаловать! Пожалуйста, выберите язык:"
    labels = [button["text"] for button in call.buttons]
    assert labels == ["Oʻzbekcha", "✅ Русский", "English"]
    assert [b["callback_data"] for b in call.buttons] == ["lang:uz", "lang:ru", "lang:en"]


async def test_unknown_telegram_language_falls_back_to_default(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    await tg.message(USER, "/start", language="de")
    labels = [button["text"] for button in telegram.of("sendMessage", USER)[-1].buttons]
    assert labels[0] == "✅ Oʻzbekcha"
    await tg.message(USER + 1, "/start", language=None)
    labels = [button["text"] for button in telegram.of("sendMessage", USER + 1)[-1].buttons]
    assert labels[0] == "✅ Oʻzbekcha"


async def test_choosing_language_saves_it_and_greets_in_it(
    tg: Telegram, telegram: FakeTelegram, client
) -> None:
    await tg.message(USER, "/start", language="en")
    await tg.press(USER, "lang:ru")
    edit = telegram.of("editMessageText", USER)[-1]
    assert edit.text.startswith("Добро пожаловать!")
    assert [b["callback_data"] for b in edit.buttons] == ["menu:tariffs", "menu:myplan"]
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == "Язык: русский"
    [row] = await db_rows(client, users)
    assert row.language == "ru"
    # Later starts greet at once, in the saved language, with the tariffs button.
    await tg.message(USER, "/start", language="en")
    last = telegram.of("sendMessage", USER)[-1]
    assert last.text.startswith("Добро пожаловать!")
    assert last.buttons[0]["text"] == "💳 Тарифы"
    # /language offers the change with the current one marked.
    await tg.message(USER, "/language")
    labels = [b["text"] for b in telegram.of("sendMessage", USER)[-1].buttons]
    assert labels == ["Oʻzbekcha", "✅ Русский", "English"]
    await tg.press(USER, "lang:uz")
    assert telegram.of("editMessageText", USER)[-1].text == "Til: Oʻzbekcha"


async def test_tariffs_show_prices_the_uzbek_way(tg: Telegram, telegram: FakeTelegram) -> None:
    await tg.message(USER, "/tariffs", language="en")
    call = telegram.of("sendMessage", USER)[-1]
    assert "PLUS: 15 000 so'm for 30 days" in call.text
    assert "PRO: 39 000 so'm for 30 days" in call.text
    assert "You have no active plan." in call.text
    assert [b["callback_data"] for b in call.buttons] == ["buy:PLUS", "buy:PRO", "menu:home"]
    await tg.message(USER + 1, "/tariffs", language="ru")
    assert "PLUS: 15 000 сум за 30 дней" in telegram.of("sendMessage", USER + 1)[-1].text


async def test_greeting_button_opens_tariffs_in_place(tg: Telegram, telegram: FakeTelegram) -> None:
    await tg.press(USER, "menu:tariffs", message_id=100)
    edit = telegram.of("editMessageText", USER)[-1]
    assert edit.text.startswith("Plans:") and edit.params["message_id"] == 100
    assert telegram.of("sendMessage", USER) == []
    assert telegram.of("answerCallbackQuery")
    # Back, on the same message: the main menu again.
    await tg.press(USER, "menu:home", message_id=100)
    edit = telegram.of("editMessageText", USER)[-1]
    assert edit.text.startswith("Welcome!")
    assert [b["callback_data"] for b in edit.buttons] == ["menu:tariffs", "menu:myplan"]
    assert telegram.of("sendMessage", USER) == []


async def test_buying_gives_exact_pay_links_and_reuses_the_order(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    await tg.press(USER, "buy:PLUS", language="uz")
    call = telegram.of("sendMessage", USER)[-1]
    [order] = await db_rows(client, orders)
    assert order.merchant_trans_id == f"{USER}_PLUS_{clock.now // 1000}"
    assert order.amount == 1_500_000 and order.status == "pending"
    assert (order.checkout_chat_id, order.checkout_message_id) != (None, None)
    assert f"#{order_code(order.id)}" in call.text and order.merchant_trans_id not in call.text
    click_button, payme_button, back = call.buttons
    assert back["callback_data"] == "menu:tariffs"
    assert click_button["text"] == "Click orqali toʻlash"
    click = urlsplit(click_button["url"])
    assert (click.scheme, click.netloc, click.path) == ("https", "my.click.uz", "/services/pay")
    assert parse_qsl(click.query) == [
        ("service_id", "28420"),
        ("merchant_id", "20000"),
        ("amount", "15000.00"),
        ("transaction_param", order.merchant_trans_id),
        ("return_url", "https://t.me/example_bot"),
    ]
    prefix = "https://checkout.paycom.uz/"
    assert payme_button["url"].startswith(prefix)
    encoded = payme_button["url"][len(prefix) :]
    assert "+" not in encoded and "/" not in encoded
    assert base64.b64decode(encoded).decode() == (
        f"m=587f72c72cac0d162c722ae2;ac.order_id={order.merchant_trans_id};a=1500000;l=uz;"
        "c=https://t.me/example_bot"
    )
    # The same tariff again, within the order lifetime: the same order.
    clock.advance(seconds=30 * 60)
    await tg.press(USER, "buy:PLUS", language="uz")
    assert len(telegram.of("sendMessage", USER)) == 1  # the same checkout message, edited
    edit = telegram.of("editMessageText", USER)[-1]
    assert edit.params["message_id"] == order.checkout_message_id
    assert edit.text == call.text
    answer = telegram.of("answerCallbackQuery")[-1].params
    assert answer["text"] == f"#{order_code(order.id)} buyurtmangiz yuqoridagi xabarda."
    assert len(await db_rows(client, orders)) == 1
    # Another tariff is another order; past the lifetime, a new one.
    await tg.press(USER, "buy:PRO", language="uz")
    clock.advance(seconds=31 * 60)
    await tg.press(USER, "buy:PLUS", language="uz")
    rows = await db_rows(client, orders)
    assert [(row.tariff, row.amount) for row in rows] == [
        ("PLUS", 1_500_000),
        ("PRO", 3_900_000),
        ("PLUS", 1_500_000),
    ]


async def test_disabled_provider_button_is_hidden(make_settings, clock, telegram) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from web.app import create_app

    settings = make_settings(CLICK_SERVICE_ID="", CLICK_MERCHANT_ID="", CLICK_SECRET_KEY="")
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        tg = Telegram(client, settings)
        await tg.press(USER, "buy:PRO")
        payme_button, _back = telegram.of("sendMessage", USER)[-1].buttons
        assert payme_button["text"] == "Pay with Payme"
        assert base64.b64decode(payme_button["url"].rsplit("/", 1)[1]).startswith(b"m=")


async def test_no_provider_means_a_clear_answer_and_no_order(
    make_settings, clock, telegram
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from web.app import create_app
    from web.keys import DATABASE

    settings = make_settings(
        CLICK_SERVICE_ID="", CLICK_MERCHANT_ID="", CLICK_SECRET_KEY="",
        PAYME_MERCHANT_ID="", PAYME_KEY="",
    )  # fmt: skip
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await Telegram(client, settings).press(USER, "buy:PRO")
        answer = telegram.of("answerCallbackQuery")[-1].params
        assert answer["text"] == "Payments are not available yet. Please try again later."
        assert answer["show_alert"] is True
        async with client.app[DATABASE].transaction() as conn:
            assert await conn.scalar(select(func.count()).select_from(orders)) == 0


async def test_myplan_shows_expiry_in_tashkent_time(
    tg: Telegram, telegram: FakeTelegram, client
) -> None:
    from datetime import UTC, datetime

    from web.keys import DATABASE

    await tg.message(USER, "/myplan")
    call = telegram.of("sendMessage", USER)[-1]
    assert call.text == "You have no active plan."
    assert call.buttons[0]["callback_data"] == "menu:tariffs"
    async with client.app[DATABASE].transaction() as conn:
        await conn.execute(
            users.update().values(
                language="ru",
                tariff="PRO",
                tariff_expires_at=datetime(2099, 1, 31, 20, 30, tzinfo=UTC),
            )
        )
    await tg.message(USER, "/myplan")
    # 20:30 UTC is 01:30 the next day in Tashkent (UTC+5).
    expected = "Ваш тариф: PRO, действует до 01.02.2099 01:30 (по ташкентскому времени)."
    assert telegram.of("sendMessage", USER)[-1].text == expected
    async with client.app[DATABASE].transaction() as conn:
        await conn.execute(
            users.update().values(tariff_expires_at=datetime(2020, 1, 1, 0, 0, tzinfo=UTC))
        )
    await tg.press(USER, "menu:myplan")
    expected = "Ваш тариф PLUS истёк".replace("PLUS", "PRO")
    assert telegram.of("editMessageText", USER)[-1].text.startswith(expected)


async def test_help_lists_the_commands(tg: Telegram, telegram: FakeTelegram) -> None:
    await tg.message(USER, "/help")
    text = telegram.of("sendMessage", USER)[-1].text
    for command in ("/tariffs", "/myplan", "/language", "/help"):
        assert command in text


async def test_unknown_input_gets_a_pointer_and_nothing_crashes(
    tg: Telegram, telegram: FakeTelegram, client
) -> None:
    pointer = (
        "I did not understand that. Send /tariffs to choose a plan or /help for help.\n"
        "Questions about a payment: /paysupport"
    )
    to_support = "Is this about a payment? Send /paysupport to see how to reach us."
    for text, answer in (("hello", pointer), ("/unknown", pointer), ("/payments", pointer)):
        assert await tg.message(USER, text) == 200
        assert telegram.of("sendMessage", USER)[-1].text == answer
    sticker = {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 1,
               "height": 1, "is_animated": False, "is_video": False}  # fmt: skip
    photo = [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
    from tests.conftest import message

    for extra, answer in (({"sticker": sticker}, pointer), ({"photo": photo}, to_support)):
        update = message(USER, "x")
        del update["text"]
        assert await tg.send({"message": {**update, **extra}}) == 200
        assert telegram.of("sendMessage", USER)[-1].text == answer
    count = len(telegram.calls)
    assert await tg.send({"edited_message": {**message(USER, "edit"), "edit_date": 1}}) == 200
    assert await tg.message(USER, "/start", chat_type="group") == 200
    assert await tg.message(USER, "/tariffs", chat_type="supergroup") == 200
    assert len(telegram.calls) == count


async def test_stale_or_forged_buttons_are_answered_and_change_nothing(
    tg: Telegram, telegram: FakeTelegram, client
) -> None:
    for data in ("buy:GOLD", "buy:", "lang:de", "menu:nothing", "garbage", "x" * 64):
        assert await tg.press(USER, data) == 200
        answer = telegram.of("answerCallbackQuery")[-1].params
        assert answer["text"] == "This button is out of date. Send /tariffs to start again."
    assert await db_rows(client, orders) == []
    [row] = await db_rows(client, users)
    assert row.language is None


async def test_a_failing_handler_is_logged_and_the_webhook_still_answers(
    tg: Telegram, telegram: FakeTelegram, caplog
) -> None:
    telegram.outage = 1  # the reply itself fails with 502
    assert await tg.message(USER, "/help") == 200
    assert any("failed" in record.getMessage() for record in caplog.records)
    assert await tg.message(USER, "/help") == 200
    assert "/tariffs" in telegram.of("sendMessage", USER)[-1].text
