"""The admin tests' shop: three buyers whose payments cover every search form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from db.clock import to_ms
from db.schema import payments
from tests.admin.helpers import BASE, add_payment, add_user, days_ago
from tests.conftest import FakeClock
from web.keys import DATABASE


@pytest.fixture
async def shop(client, clock: FakeClock) -> dict[str, int]:
    """Three buyers; 2026-11-10 (a Tuesday) 13:00 Tashkent is now."""
    clock.now = to_ms(BASE + timedelta(hours=1))
    await add_user(client, 1001, "Ali", "Ali_Khan")
    await add_user(client, 1002, "Алиса", "alisa")
    await add_user(client, 1003, "Gʻulom", None)
    p: dict[str, int] = {}
    p["a1"] = await add_payment(client, 1001, created=days_ago(0))
    p["a2"] = await add_payment(
        client, 1001, created=days_ago(1), amount=3_900_000, tariff="PRO", provider="payme",
        state="refunded", cancel_reason=5,
    )  # fmt: skip
    p["a3"] = await add_payment(client, 1001, created=days_ago(8), state="cancelled")
    p["b1"] = await add_payment(
        client, 1002, created=days_ago(0.1), provider="payme", state="pending"
    )
    p["b2"] = await add_payment(client, 1002, created=days_ago(3), amount=3_900_000, tariff="PRO")
    p["b3"] = await add_payment(client, 1002, created=days_ago(0.2), provider="payme", test=True)
    p["c1"] = await add_payment(client, 1003, created=days_ago(1.1))
    async with client.server.app[DATABASE].read() as conn:
        order_id = await conn.scalar(select(payments.c.order_id).where(payments.c.id == p["c1"]))
    p["c2"] = await add_payment(
        client, 1003, created=days_ago(1.05), provider="payme", order_id=order_id
    )
    p["c3"] = await add_payment(client, 1003, created=days_ago(40))
    return p
