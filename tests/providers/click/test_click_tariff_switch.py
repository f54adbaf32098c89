"""The tariff rule of db/billing.py, through Click payments (README: "Tariff switch").

Same tariff active: the period is added to the current expiry. Nothing active: it
starts now. Another tariff active: its unused time is converted at the price ratio
(unused x old price / new price) and the new period is added on top.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from db.clock import to_datetime
from db.schema import users
from tests.conftest import FakeClock
from tests.providers.click.helpers import ClickCaller, load, make_order

USER = 424242


async def pay(click: ClickCaller, tariff: str, amount: str, trans: int) -> None:
    order = await make_order(
        click.db, USER, tariff=tariff, amount=int(amount) * 100, mti=f"{USER}_{tariff}_{trans}"
    )
    prepared = await click.prepare(order.merchant_trans_id, trans, amount=amount)
    done = await click.complete(
        order.merchant_trans_id, trans, prepared["merchant_prepare_id"], amount=amount
    )
    assert done["error"] == 0


async def set_plan(click: ClickCaller, tariff: str, expires_in: timedelta, now_ms: int) -> None:
    async with click.db.transaction() as conn:
        await conn.execute(
            update(users)
            .where(users.c.id == USER)
            .values(tariff=tariff, tariff_expires_at=to_datetime(now_ms) + expires_in)
        )


async def expiry(click: ClickCaller) -> tuple[str | None, object]:
    _, user = await load(click.db, f"{USER}_PLUS_1", USER)
    return user.tariff, user.tariff_expires_at


async def test_tariff_switch_rule(client: TestClient, clock: FakeClock) -> None:
    click = ClickCaller(client)
    now = to_datetime(clock.now)
    await pay(click, "PLUS", "15000", 1)  # nothing active: starts now
    assert await expiry(click) == ("PLUS", now + timedelta(days=30))
    await pay(click, "PLUS", "15000", 2)  # same tariff: added to the expiry
    assert await expiry(click) == ("PLUS", now + timedelta(days=60))

    # PRO (39 000) with 10 days left, then PLUS (15 000): 10 x 39/15 = 26 days carried
    await set_plan(click, "PRO", timedelta(days=10), clock.now)
    await pay(click, "PLUS", "15000", 3)
    assert await expiry(click) == ("PLUS", now + timedelta(days=26 + 30))

    # PLUS with 26 days left, then PRO: 26 x 15/39 = 10 days carried
    await set_plan(click, "PLUS", timedelta(days=26), clock.now)
    await pay(click, "PRO", "39000", 4)
    assert await expiry(click) == ("PRO", now + timedelta(days=10 + 30))

    # an expired plan counts for nothing
    await set_plan(click, "PRO", timedelta(days=-1), clock.now)
    await pay(click, "PLUS", "15000", 5)
    assert await expiry(click) == ("PLUS", now + timedelta(days=30))
