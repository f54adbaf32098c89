"""Each case at the top of issue 11, as a merchant would try it, through the real routes
(Click, Payme, the bot's webhook with the fake Bot API). Under the one-row model each of
these gave a wrong money result; the ledger (db/ledger.py) gives the one written here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.admin.callbacks import RecordReversal
from db import outbox
from db.clock import to_datetime, to_ms
from db.orders import order_code, paid_twice
from db.schema import orders, payments, periods, users
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from tests.providers.click.helpers import make_order
from tests.providers.payme.helpers import basic, error_of
from tests.test_ledger_rules import ADMIN, DAY, Shop
from web.app import create_app
from web.keys import DATABASE, TELEGRAM_LINK
from web.settings import Settings

BUYER = 8_100_001


@asynccontextmanager
async def app_with(
    make_settings: Callable[..., Settings], clock: FakeClock, **env: str
) -> AsyncIterator[tuple[TestClient, Telegram]]:
    """The real app on the test's database with a configuration of its own (a merchant
    changing prices between two deploys)."""
    settings = make_settings(**env)
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await asyncio.wait_for(app[TELEGRAM_LINK].registered.wait(), 10)
        yield client, Telegram(client, settings)


async def plan_end(shop: Shop) -> float | None:
    end = (await shop.timeline()).end
    return None if end is None else shop.days_of(end)


async def test_refund_of_pro_by_payme_after_plus_by_click_keeps_only_plus(
    client: TestClient, clock: FakeClock
) -> None:
    """Was: the user kept all 108 days (PLUS converted PRO at the price ratio)."""
    shop = Shop(client, clock, BUYER)
    await shop.pay_payme(await shop.order("PRO"), "pro")
    await shop.pay_click(await shop.order("PLUS"))
    assert [(s.tariff, shop.days_of(s.end)) for s in (await shop.timeline()).segments] == [
        ("PRO", 30),
        ("PLUS", 60),
    ]
    await shop.refund("pro")
    assert await plan_end(shop) == 30  # only the PLUS days that were paid and kept


async def test_refund_of_plus_by_payme_after_pro_by_click_keeps_only_pro(
    client: TestClient, clock: FakeClock
) -> None:
    """Was: 11.5 days too many were kept (the reverse order of the case above)."""
    shop = Shop(client, clock, BUYER)
    await shop.pay_payme(await shop.order("PLUS"), "plus")
    clock.advance(days=1)
    await shop.pay_click(await shop.order("PRO"))
    await shop.refund("plus")
    assert [(s.tariff, shop.days_of(s.end)) for s in (await shop.timeline()).ahead(clock.now)] == [
        ("PRO", 31)
    ]


async def test_an_order_grants_what_it_recorded_after_a_price_change(
    make_settings: Callable[..., Settings], clock: FakeClock, telegram: FakeTelegram
) -> None:
    """Was: an order made at 15 000 / 30 days and paid after the configuration changed to
    20 000 / 45 days granted 45 days for 15 000."""
    async with app_with(make_settings, clock) as (client, tg):
        await tg.press(BUYER, "buy:PLUS")
        async with client.server.app[DATABASE].read() as conn:
            order = (await conn.execute(select(orders))).one()
    assert (order.amount, order.days) == (1_500_000, 30)
    async with app_with(make_settings, clock, TARIFF_PLUS_PRICE="20000", TARIFF_PLUS_DAYS="45") as (
        client,
        tg,
    ):
        shop = Shop(client, clock, BUYER)
        await shop.pay_payme(await _order(shop, order.merchant_trans_id), "old")
        assert await plan_end(shop) == 30
        clock.advance(seconds=5)
        await tg.press(BUYER, "buy:PLUS")  # a new order takes the new configuration
        async with shop.db.read() as conn:
            newest = (await conn.execute(select(orders).order_by(orders.c.id.desc()))).first()
        assert newest is not None and (newest.amount, newest.days) == (2_000_000, 45)


async def test_a_price_change_converts_nothing(
    make_settings: Callable[..., Settings], clock: FakeClock, telegram: FakeTelegram
) -> None:
    """Was: PRO paid at 39 000, price then raised to 390 000: buying PLUS converted the
    unused PRO days into 810 days of PLUS."""
    async with app_with(make_settings, clock) as (client, tg):
        await tg.press(BUYER, "buy:PRO")
        shop = Shop(client, clock, BUYER)
        async with shop.db.read() as conn:
            mti = (await conn.execute(select(orders.c.merchant_trans_id))).scalar_one()
        await shop.pay_click(await _order(shop, mti))
    clock.advance(days=5)
    async with app_with(make_settings, clock, TARIFF_PRO_PRICE="390000") as (client, _tg):
        shop = Shop(client, clock, BUYER)
        shop.start -= 5 * DAY
        await shop.pay_click(await shop.order("PLUS"))
        ahead = (await shop.timeline()).ahead(clock.now)
        assert [(s.tariff, shop.days_of(s.end)) for s in ahead] == [("PRO", 30), ("PLUS", 60)]


async def test_a_refund_that_ends_the_plan_is_not_followed_by_expired(
    client: TestClient, clock: FakeClock, telegram: FakeTelegram, tg: Telegram
) -> None:
    """Was: "your plan has expired — Renew" a minute after the refund, and /myplan said
    expired, not refunded."""
    shop = Shop(client, clock, BUYER)
    await shop.pay_payme(await shop.order("PLUS"), "only")
    clock.advance(days=3)
    await shop.refund("only")
    refunded = await telegram.wait_for("sendMessage", lambda c: "was refunded" in c.text)
    assert "unused days were taken back. Your plan has ended." in refunded.text
    for _ in range(3):
        clock.advance(hours=1)
        await shop.run_scheduler()
    clock.advance(days=40)
    await shop.run_scheduler()
    kinds = [kind for kind, _payload in await shop.notices()]
    assert outbox.SUBSCRIPTION_EXPIRED not in kinds, kinds
    await tg.message(BUYER, "/myplan")
    answer = telegram.of("sendMessage", BUYER)[-1].text
    assert "its payment was refunded" in answer and "expired" not in answer


async def test_click_reversal_of_a_paused_payment_takes_its_days_back(
    client: TestClient, clock: FakeClock, telegram: FakeTelegram, tg: Telegram
) -> None:
    """Was: a reversal of a payment whose days were converted into another tariff told
    the buyer and the admin "the days were taken back" while the expiry did not move."""
    shop = Shop(client, clock, BUYER)
    plus = await shop.pay_click(await shop.order("PLUS"))
    clock.advance(days=10)
    await shop.pay_click(await shop.order("PRO"))
    assert await plan_end(shop) == 60
    await tg.press(ADMIN, RecordReversal(payment_id=plus, confirmed=True).pack(), message_id=77)
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == (
        "Reversal recorded; the payment's unused days were taken back."
    )
    assert await plan_end(shop) == 40  # the 20 PLUS days waiting after PRO are gone
    notice = await telegram.wait_for("sendMessage", lambda c: "was refunded" in c.text)
    assert "Your plan now: PRO until" in notice.text and "PLUS" in notice.text.split("\n")[0]


async def test_click_reversal_of_a_used_payment_says_nothing_changed(
    client: TestClient, clock: FakeClock, telegram: FakeTelegram, tg: Telegram
) -> None:
    shop = Shop(client, clock, BUYER)
    plus = await shop.pay_click(await shop.order("PLUS"))
    clock.advance(days=31)
    await shop.pay_click(await shop.order("PRO"))
    await tg.press(ADMIN, RecordReversal(payment_id=plus, confirmed=True).pack(), message_id=77)
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == (
        "Reversal recorded; its days were already used, so the plan did not change."
    )
    assert await plan_end(shop) == 61


async def test_a_test_key_payment_is_not_seen_or_cancelled_with_the_production_key(
    make_settings: Callable[..., Settings], clock: FakeClock, telegram: FakeTelegram
) -> None:
    """Was: test-key payments were seen and cancellable with the production key."""
    sandbox = basic("Paycom:SANDBOX_KEY_example")
    async with app_with(make_settings, clock, PAYME_TEST_KEY="SANDBOX_KEY_example") as (
        client,
        _tg,
    ):
        shop = Shop(client, clock, BUYER)
        paid = await shop.pay_payme(await shop.order("PLUS"), "sbx", auth=sandbox)
        answer = await shop.payme.call("CancelTransaction", id=shop.payme_ids["sbx"], reason=5)
        assert error_of(answer) == (-31003, None)
        assert await plan_end(shop) == 30
        async with shop.db.read() as conn:
            row = (await conn.execute(select(payments).where(payments.c.id == paid))).one()
        assert row.test is True and row.state == "paid"
        received = await telegram.wait_for("sendMessage", lambda c: "Payment received" in c.text)
        assert "Test payment" in received.text


async def test_buy_after_an_abandoned_payme_attempt_opens_a_new_order(
    client: TestClient, clock: FakeClock, telegram: FakeTelegram, tg: Telegram
) -> None:
    """Was: the same order came back within the hour and Payme refused it with -31008."""
    await tg.press(BUYER, "buy:PLUS")
    shop = Shop(client, clock, BUYER)
    async with shop.db.read() as conn:
        first = (await conn.execute(select(orders))).one()
    abandoned = await shop.payme.call(
        "CreateTransaction", id="A" * 24, time=clock.now, amount=first.amount,
        account={"order_id": first.merchant_trans_id},
    )  # fmt: skip
    assert abandoned["result"]["state"] == 1
    clock.advance(seconds=10 * 60)
    await tg.press(BUYER, "buy:PLUS")
    async with shop.db.read() as conn:
        rows = (await conn.execute(select(orders).order_by(orders.c.id))).all()
    assert len(rows) == 2 and f"#{order_code(rows[1].id)}" in telegram.of("sendMessage")[-1].text
    created = await shop.payme.call(
        "CreateTransaction", id="B" * 24, time=clock.now, amount=rows[1].amount,
        account={"order_id": rows[1].merchant_trans_id},
    )  # fmt: skip
    assert created["result"]["state"] == 1


async def test_an_order_paid_twice_is_two_periods_and_the_admin_is_told(
    client: TestClient, clock: FakeClock, telegram: FakeTelegram
) -> None:
    """Was: credited twice with no one told."""
    shop = Shop(client, clock, BUYER)
    order = await shop.order("PLUS")
    trans, prepare_id = await shop.click_prepare(order)
    payme_payment = await shop.pay_payme(order, "first")
    click_payment = await shop.click_complete(order, trans, prepare_id)
    assert await plan_end(shop) == 60
    # In the admin's language (uz, the default, here): the ids are what matter. The admin
    # also gets a notice of each payment; the alert is the one naming both.
    alert = await telegram.wait_for(
        "sendMessage",
        lambda c: c.params.get("chat_id") == ADMIN and f"#{click_payment} Click" in c.text,
    )
    assert f"#{payme_payment} Payme" in alert.text


async def _order(shop: Shop, mti: str):  # type: ignore[no-untyped-def]
    async with shop.db.read() as conn:
        found = (await conn.execute(select(orders).where(orders.c.merchant_trans_id == mti))).one()
    from db.orders import Order

    return Order(**{name: found._mapping[name] for name in Order.__dataclass_fields__})


__all__ = ["make_order"]


async def test_two_click_attempts_on_one_order_are_two_periods_and_the_admin_is_told(
    client: TestClient, clock: FakeClock, telegram: FakeTelegram
) -> None:
    """Click A5: two Click attempts prepared for one order, both completed (D8)."""
    shop = Shop(client, clock, BUYER)
    order = await shop.order("PRO")
    first, second = await shop.click_prepare(order), await shop.click_prepare(order)
    one = await shop.click_complete(order, *first)
    two = await shop.click_complete(order, *second)
    assert await plan_end(shop) == 60
    alert = await telegram.wait_for(  # the alert naming both, among the payment notices
        "sendMessage", lambda c: c.params.get("chat_id") == ADMIN and f"#{two} Click" in c.text
    )
    assert f"#{one} Click" in alert.text
    async with shop.db.read() as conn:
        listed = await paid_twice(conn)
    assert [(found.id, ids) for found, ids in listed] == [(order.id, [one, two])]


async def test_a_plan_set_by_hand_without_periods_is_kept_when_a_payment_comes(
    client: TestClient, clock: FakeClock
) -> None:
    """A plan in the `users` cache with no period behind it (set before the ledger, or
    by hand) becomes an opening period at the first credit, and the payment's days
    follow it; the cache then says so."""
    shop = Shop(client, clock, BUYER)
    order = await shop.order("PRO")
    async with shop.db.transaction() as conn:
        await conn.execute(
            update(users)
            .where(users.c.id == BUYER)
            .values(tariff="PRO", tariff_expires_at=to_datetime(shop.at(10)))
        )
    await shop.pay_click(order)
    assert [(s.tariff, shop.days_of(s.end)) for s in (await shop.timeline()).segments] == [
        ("PRO", 40)
    ]
    async with shop.db.read() as conn:
        kinds = await conn.scalars(
            select(periods.c.kind).where(periods.c.user_id == BUYER).order_by(periods.c.id)
        )
        cached = await conn.scalar(select(users.c.tariff_expires_at).where(users.c.id == BUYER))
    assert list(kinds) == ["opening", "payment"]
    assert shop.days_of(to_ms(cached)) == 40
