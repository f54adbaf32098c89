"""End to end: buy PRO in the bot, pay through Payme, get told; a refund is told too."""

from __future__ import annotations

import base64
from datetime import timedelta

from aiohttp.test_utils import TestClient

from db.clock import TASHKENT, to_datetime
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from tests.providers.payme.helpers import PaymeCaller, account

USER = 7771234


async def test_buy_pro_pay_with_payme_then_refund(
    tg: Telegram, telegram: FakeTelegram, client: TestClient, clock: FakeClock
) -> None:
    await tg.message(USER, "/start", language="uz")
    await tg.press(USER, "lang:uz", language="uz")
    await tg.press(USER, "buy:PRO", language="uz")
    offer = telegram.of("sendMessage", USER)[-1]
    [payme_url] = [b["url"] for b in offer.buttons if b["text"] == "Payme orqali toʻlash"]
    raw = base64.b64decode(payme_url.removeprefix("https://checkout.paycom.uz/")).decode()
    fields = dict(part.split("=", 1) for part in raw.split(";"))
    assert fields["m"] == "587f72c72cac0d162c722ae2"
    assert fields["a"] == "3900000" and fields["l"] == "uz"
    assert fields["c"] == "https://t.me/example_bot"
    mti = fields["ac.order_id"]
    assert mti.startswith(f"{USER}_PRO_")

    payme = PaymeCaller(client)
    amount = int(fields["a"])
    assert await payme.result("CheckPerformTransaction", amount=amount, account=account(mti))
    await payme.result("CreateTransaction", id="e2e" * 8, time=clock.now, amount=amount,
                       account=account(mti))  # fmt: skip
    clock.advance(seconds=20)
    performed = await payme.result("PerformTransaction", id="e2e" * 8)
    shown = (to_datetime(performed["perform_time"]) + timedelta(days=30)).astimezone(TASHKENT)
    paid = to_datetime(performed["perform_time"]).astimezone(TASHKENT)
    code = offer.text.split("#", 1)[1].split("\n", 1)[0]
    expected = (
        "✅ Toʻlov qabul qilindi. Rahmat!\n\n"
        f"Buyurtma: #{code}\n"
        "PRO: 39 000 soʻm, 30 kun\n"
        f"Payme orqali toʻlandi, {paid:%d.%m.%Y %H:%M} (Toshkent vaqti bilan)\n"
        f"Tarifingiz: PRO {shown:%d.%m.%Y %H:%M} gacha (Toshkent vaqti bilan).\n\n"
        "Toʻlov boʻyicha savollar: /paysupport"
    )
    received = await telegram.wait_for("sendMessage", lambda c: c.text == expected)
    assert received.params["chat_id"] == USER
    await tg.message(USER, "/myplan", language="uz")
    assert telegram.of("sendMessage", USER)[-1].text == (
        f"Tarifingiz: PRO {shown:%d.%m.%Y %H:%M} gacha (Toshkent vaqti bilan)."
    )

    clock.advance(days=2)
    refunded = await payme.result("CancelTransaction", id="e2e" * 8, reason=5)
    assert refunded["state"] == -2
    ended = to_datetime(refunded["cancel_time"]).astimezone(TASHKENT)
    # The admins hear of the refund too; this is the buyer's message.
    notice = await telegram.wait_for(
        "sendMessage", lambda c: c.params["chat_id"] == USER and c.text.startswith("↩️")
    )
    assert notice.text == (
        "↩️ PRO uchun 39 000 soʻm toʻlovingiz qaytarildi, uning foydalanilmagan kunlari "
        "bekor qilindi. Tarifingiz tugadi.\n\n"
        f"Buyurtma: #{code}\n"
        "Toʻlov boʻyicha savollar: /paysupport"
    )
    await tg.message(USER, "/myplan", language="uz")
    assert telegram.of("sendMessage", USER)[-1].text == (
        f"Tarifingiz {ended:%d.%m.%Y %H:%M} da tugadi (Toshkent vaqti bilan): uning toʻlovi "
        "qaytarildi."
    )
