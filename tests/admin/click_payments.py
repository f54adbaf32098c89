"""Payments made the way buyers make them: through Click's real Prepare and Complete routes,
at the app's (fake) clock, so the ledger, the outbox and the admin notices all see them."""

from __future__ import annotations

import itertools

from tests.providers.click.helpers import ClickCaller, make_order

_trans = itertools.count(777_000)
PRICES = {"PLUS": "15000.00", "PRO": "39000.00"}


async def pay(click: ClickCaller, user_id: int, tariff: str = "PLUS", times: int = 1) -> None:
    """A Click payment through the real Prepare and Complete routes; with `times` 2, two
    checkouts of one order both prepared, then both completed: the order is paid twice."""
    amount = PRICES[tariff]
    order = await make_order(
        click.db, user_id, tariff=tariff, amount=int(float(amount) * 100),
        mti=f"{user_id}_{tariff}_{next(_trans)}",
    )  # fmt: skip
    attempts = []
    for trans in itertools.islice(_trans, times):
        prepared = await click.prepare(order.merchant_trans_id, trans, amount=amount)
        attempts.append((trans, prepared["merchant_prepare_id"]))
    for trans, prepare_id in attempts:
        done = await click.complete(order.merchant_trans_id, trans, prepare_id, amount=amount)
        assert done["error"] == 0, done
