"""Live notices to admins: each payment and each refund reaches every admin once, through
the outbox, from the real Click routes and the console's reversal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import insert

from db.schema import users
from tests.admin.helpers import ADMIN, BASE, button, plain, press_on, screen
from tests.conftest import Telegram
from tests.fake_telegram import FakeTelegram
from tests.providers.click.helpers import ClickCaller, make_order
from web.keys import DATABASE
from web.settings import Settings

SECOND_ADMIN = 900002


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(ADMIN_IDS=f"{ADMIN},{SECOND_ADMIN}")


def to_admin(telegram: FakeTelegram, admin: int, start: str) -> list[str]:
    return [c.text for c in telegram.delivered(admin) if c.text.startswith(start)]


async def settle(telegram: FakeTelegram, count: int, start: str) -> None:
    """Wait until `count` matching notices were delivered, then a little more for strays."""
    for _ in range(100):
        if sum(len(to_admin(telegram, a, start)) for a in (ADMIN, SECOND_ADMIN)) >= count:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)


async def test_each_payment_and_refund_reaches_every_admin_once(
    client, tg: Telegram, telegram: FakeTelegram
) -> None:
    async with client.server.app[DATABASE].transaction() as conn:  # the first admin chose English
        await conn.execute(insert(users).values(id=ADMIN, language="en", created_at=BASE))
    click = ClickCaller(client)
    order = await make_order(click.db, 2001)
    prepared = await click.prepare(order.merchant_trans_id, 555001)
    prepare_id = prepared["merchant_prepare_id"]
    answers = [  # Click repeats a Complete it did not hear the answer to
        (await click.complete(order.merchant_trans_id, 555001, prepare_id))["error"]
        for _ in range(2)
    ]
    assert answers == [0, -4]
    await settle(telegram, 2, "💰")
    (text,) = to_admin(telegram, ADMIN, "💰")
    assert plain(text).splitlines() == [
        "💰 Payment received: 15 000 so'm · PLUS · Click",
        "Buyer: User2001 (2001)",
        f"Order {order.merchant_trans_id} · payment #{prepare_id}",
    ]
    assert '<a href="tg://user?id=2001">User2001</a>' in text
    (text,) = to_admin(telegram, SECOND_ADMIN, "💰")  # the bot's default language, Uzbek
    assert text.startswith("💰 Toʻlov qabul qilindi: ") and "Xaridor: " in text
    # The console records a Click reversal: the refund notice, once each, too.
    await tg.message(ADMIN, "/payments 2001")
    page = screen(telegram)
    await press_on(tg, page, next(b["callback_data"] for b in page.buttons if b["text"] == "1"))
    await press_on(tg, screen(telegram), button(screen(telegram), "Record Click reversal"))
    confirm = button(screen(telegram), "Yes, Click reversed this payment")
    await press_on(tg, screen(telegram), confirm)
    await press_on(tg, screen(telegram), confirm)  # a double tap
    await settle(telegram, 2, "↩️")
    (text,) = to_admin(telegram, ADMIN, "↩️")
    assert text.startswith("↩️ Payment refunded: 15 000 so'm · PLUS · Click")
    (text,) = to_admin(telegram, SECOND_ADMIN, "↩️")
    assert text.startswith("↩️ Toʻlov qaytarildi: ")
