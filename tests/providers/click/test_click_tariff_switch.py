"""The tariff rule of db/ledger.py, through Click payments (README: "How subscriptions
add up").

Same tariff: the period follows that tariff's last one. Nothing active: it starts now.
Another tariff: nothing is converted at any price; the higher rank (PRO) runs first and
the other tariff's remaining days wait, paused, until it ends.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient

from db.clock import to_datetime
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


async def expiry(click: ClickCaller) -> tuple[str | None, object]:
    """The cached plan: the tariff of the plan's last stretch and the plan's end."""
    _, user = await load(click.db, f"{USER}_PLUS_1", USER)
    return user.tariff, user.tariff_expires_at


async def test_tariff_switch_rule(client: TestClient, clock: FakeClock) -> None:
    click = ClickCaller(client)
    start = to_datetime(clock.now)
    await pay(click, "PLUS", "15000", 1)  # nothing active: starts now
    assert await expiry(click) == ("PLUS", start + timedelta(days=30))
    await pay(click, "PLUS", "15000", 2)  # same tariff: after its last period
    assert await expiry(click) == ("PLUS", start + timedelta(days=60))

    # 50 PLUS days left, then PRO: PRO runs its 30 days now, the 50 PLUS days after it
    clock.advance(days=10)
    await pay(click, "PRO", "39000", 3)
    assert await expiry(click) == ("PLUS", start + timedelta(days=10 + 30 + 50))

    # PLUS bought during PRO: queued after everything PLUS had (no conversion at all)
    clock.advance(days=5)
    await pay(click, "PLUS", "15000", 4)
    assert await expiry(click) == ("PLUS", start + timedelta(days=10 + 30 + 50 + 30))

    # once everything ran out, a purchase starts at once: the gap is not granted
    clock.advance(days=200)
    await pay(click, "PRO", "39000", 5)
    assert await expiry(click) == ("PRO", to_datetime(clock.now) + timedelta(days=30))
