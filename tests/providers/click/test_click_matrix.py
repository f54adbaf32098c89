"""Click's 15 certification scenarios (§8, row 8 as amended by A1), in order, state carried over."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient

from db.clock import to_datetime
from tests.conftest import FakeClock
from tests.providers.click.helpers import (
    ClickCaller,
    complete_fields,
    failed,
    load,
    make_order,
    notices,
    ok_complete,
    ok_prepare,
    payment,
    prepare_fields,
    snapshot,
)

T1, T2, T3 = 2854711398, 2854711399, 2854711400
ADMIN = 900001  # ADMIN_IDS of the test settings
BAD_SIGNATURE = {"sign_string": "0" * 32}


async def test_certification_matrix(client: TestClient, clock: FakeClock) -> None:
    click = ClickCaller(client)
    db = click.db
    a = await make_order(db, 1001)
    b = await make_order(db, 1002)
    c = await make_order(db, 1003)
    period = timedelta(days=30)

    # 1. Prepare A, T1, bad signature -> -1, nothing stored
    before = await snapshot(db)
    body = prepare_fields(a.merchant_trans_id, T1) | BAD_SIGNATURE
    assert await click.post("/click/prepare", body) == failed(-1, T1, a.merchant_trans_id)
    assert await snapshot(db) == before

    # 2. Prepare, unknown merchant_trans_id -> -5, nothing stored
    assert await click.prepare("123456_PLUS_1730034567", T1) == failed(
        -5, T1, "123456_PLUS_1730034567"
    )
    assert await snapshot(db) == before

    # 3. Prepare A, T1 -> 0, P1 prepared
    answer = await click.prepare(a.merchant_trans_id, T1)
    p1 = answer["merchant_prepare_id"]
    assert answer == ok_prepare(T1, a.merchant_trans_id, p1)
    assert (await payment(db, p1)).state == "pending"

    # 4. Complete P1, bad signature -> -1, unchanged
    before = await snapshot(db)
    body = complete_fields(a.merchant_trans_id, T1, p1) | BAD_SIGNATURE
    assert await click.post("/click/complete", body) == failed(-1, T1, a.merchant_trans_id)
    assert await snapshot(db) == before

    # 5. Complete P1, amount=300 -> -2, P1 prepared
    assert await click.complete(a.merchant_trans_id, T1, p1, amount="300") == failed(
        -2, T1, a.merchant_trans_id
    )
    assert await snapshot(db) == before

    # 6. Complete P1, error=0 -> 0: P1 and A paid, tariff extended, one message
    assert await click.complete(a.merchant_trans_id, T1, p1) == ok_complete(
        T1, a.merchant_trans_id, p1
    )
    order, user = await load(db, a.merchant_trans_id, 1001)
    paid = await payment(db, p1)
    assert (order.status, paid.state, paid.perform_time) == ("paid", "paid", clock.now)
    assert (user.tariff, user.tariff_expires_at) == ("PLUS", to_datetime(clock.now) + period)
    assert len(await notices(db, 1001)) == 1

    # 7. Complete P1 again -> -4, unchanged
    before = await snapshot(db)
    assert await click.complete(a.merchant_trans_id, T1, p1) == failed(-4, T1, a.merchant_trans_id)
    assert await snapshot(db) == before

    # 8. Complete P1, error=-5017 -> -9 (A1): still paid, tariff kept, admins told once
    for _ in range(2):
        assert await click.complete(a.merchant_trans_id, T1, p1, error="-5017") == failed(
            -9, T1, a.merchant_trans_id
        )
    after = await snapshot(db)
    assert (after["orders"], after["payments"]) == (before["orders"], before["payments"])
    assert after["users"] == before["users"]  # the admin's row came with the payment notice
    [_paid, alert] = await notices(db, ADMIN)
    assert alert.kind == "admin_alert" and alert.payload["alert"] == "click_cancel_on_paid"
    assert (alert.payload["payment_id"], alert.payload["click_trans_id"]) == (p1, str(T1))
    before = after

    # 9. Prepare B, T2 -> 0, P2 prepared
    answer = await click.prepare(b.merchant_trans_id, T2)
    p2 = answer["merchant_prepare_id"]
    assert answer == ok_prepare(T2, b.merchant_trans_id, p2)
    assert p2 != p1
    assert (await payment(db, p2)).state == "pending"

    # 10. Complete B, T2, merchant_prepare_id=999999999 -> -6, unchanged
    before = await snapshot(db)
    assert await click.complete(b.merchant_trans_id, T2, 999999999) == failed(
        -6, T2, b.merchant_trans_id
    )
    assert await snapshot(db) == before

    # 11. Complete P2 -> 0, P2 and B paid
    assert await click.complete(b.merchant_trans_id, T2, p2) == ok_complete(
        T2, b.merchant_trans_id, p2
    )
    order, user = await load(db, b.merchant_trans_id, 1002)
    assert (order.status, (await payment(db, p2)).state, user.tariff) == ("paid", "paid", "PLUS")

    # 12. Prepare C, T3 -> 0, P3 prepared
    answer = await click.prepare(c.merchant_trans_id, T3)
    p3 = answer["merchant_prepare_id"]
    assert answer == ok_prepare(T3, c.merchant_trans_id, p3)

    # 13. Complete P3, error=-5017 -> -9: P3 cancelled, C pending
    assert await click.complete(c.merchant_trans_id, T3, p3, error="-5017") == failed(
        -9, T3, c.merchant_trans_id
    )
    cancelled = await payment(db, p3)
    assert (cancelled.state, cancelled.cancel_time) == ("cancelled", clock.now)
    order, user = await load(db, c.merchant_trans_id, 1003)
    assert (order.status, user.tariff) == ("pending", None)

    # 14. Complete P3, error=-5017 again -> -9, unchanged
    before = await snapshot(db)
    assert await click.complete(c.merchant_trans_id, T3, p3, error="-5017") == failed(
        -9, T3, c.merchant_trans_id
    )
    assert await snapshot(db) == before

    # 15. Complete P3, error=0 -> -9, unchanged, no tariff
    assert await click.complete(c.merchant_trans_id, T3, p3) == failed(-9, T3, c.merchant_trans_id)
    assert await snapshot(db) == before
    assert await notices(db, 1003) == []
