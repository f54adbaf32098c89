"""End to end: buy in the bot, pay through Click's callbacks, get the message, see the plan."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

from aiohttp.test_utils import TestClient

from bot.texts import format_moment
from db.clock import to_datetime
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from tests.providers.click.helpers import ClickCaller, ok_complete, ok_prepare

USER = 5551234
T = 7350928401736625193


async def test_buy_plus_in_the_bot_and_pay_with_click(
    tg: Telegram, telegram: FakeTelegram, client: TestClient, clock: FakeClock
) -> None:
    await tg.message(USER, "/start", language="en")
    await tg.press(USER, "lang:ru")
    await tg.press(USER, "buy:PLUS")
    offer = telegram.of("sendMessage", USER)[-1]
    [click_url] = [
        b["url"] for b in offer.buttons if b.get("url", "").startswith("https://my.click.uz/")
    ]
    link = urlsplit(click_url)
    params = dict(parse_qsl(link.query))
    assert (link.path, params["service_id"], params["amount"]) == (
        "/services/pay",
        "28420",
        "15000.00",
    )
    mti = params["transaction_param"]
    assert mti.startswith(f"{USER}_PLUS_")

    click = ClickCaller(client)
    prepared = await click.prepare(mti, T, amount=params["amount"])
    prepare_id = prepared["merchant_prepare_id"]
    assert prepared == ok_prepare(T, mti, prepare_id)
    clock.advance(seconds=40)  # the card is debited between the two callbacks
    paid_at = to_datetime(clock.now)
    completed = await click.complete(mti, T, prepare_id, amount=params["amount"])
    assert completed == ok_complete(T, mti, prepare_id)

    expiry = format_moment(paid_at + timedelta(days=30))
    notice = await telegram.wait_for(
        "sendMessage", lambda call: call.params["chat_id"] == USER and "Платёж" in call.text
    )
    code = offer.text.split("#", 1)[1].split("\n", 1)[0]
    assert notice.text == (
        "✅ Платёж получен. Спасибо!\n\n"
        f"Заказ: #{code}\n"
        "PLUS: 15 000 сум за 30 дней\n"
        f"Оплачено через Click, {format_moment(paid_at)} (по ташкентскому времени)\n"
        f"Ваш тариф: PLUS до {expiry} (по ташкентскому времени).\n\n"
        "Вопросы об оплате: /paysupport"
    )
    assert [b["callback_data"] for b in notice.buttons] == ["menu:myplan"]

    await tg.message(USER, "/myplan")
    plan = telegram.of("sendMessage", USER)[-1]
    assert plan.text == f"Ваш тариф: PLUS до {expiry} (по ташкентскому времени)."
