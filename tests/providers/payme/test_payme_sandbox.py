"""Payme's sandbox acceptance (payme-merchant-api.md §8 steps 1-21), in order, over HTTP.

Every state-changing call is sent twice and the second answer must equal the first.
"""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import FakeClock
from tests.providers.click.helpers import PLUS_PRICE, load, make_order, notices, snapshot
from tests.providers.payme.helpers import PaymeCaller, account, basic, error_of
from web.keys import DATABASE

O1_USER, O2_USER = 301, 302


async def test_sandbox_checklist(client, clock: FakeClock) -> None:
    db = client.server.app[DATABASE]
    payme = PaymeCaller(client)
    o1 = await make_order(db, O1_USER)
    o2 = await make_order(db, O2_USER)
    t = clock.now - 1000

    # 1. Invalid authorization, every method: -32504, id echoed, nothing changes.
    before = await snapshot(db)
    for method in (
        "CheckPerformTransaction", "CreateTransaction", "PerformTransaction",
        "CancelTransaction", "CheckTransaction", "GetStatement", "SetFiscalData",
    ):  # fmt: skip
        answer = await payme.call(
            method,
            auth=basic("Paycom:Uzcard:someRandomString1545343543545"),
            id="t1", time=t, amount=PLUS_PRICE, account=account(o1.merchant_trans_id),
        )  # fmt: skip
        assert error_of(answer) == (-32504, None)
    assert await snapshot(db) == before

    # 2. Invalid amount; 3. nonexistent account.
    for method in ("CheckPerformTransaction", "CreateTransaction"):
        answer = await payme.call(
            method, id="t-bad", time=t, amount=PLUS_PRICE + 1,
            account=account(o1.merchant_trans_id),
        )  # fmt: skip
        assert error_of(answer) == (-31001, None)
        answer = await payme.call(
            method, id="t-bad", time=t, amount=PLUS_PRICE, account=account("999_PLUS_1")
        )
        assert error_of(answer) == (-31050, "order_id")
    assert await snapshot(db) == before

    # 4. Check O1.
    assert await payme.result(
        "CheckPerformTransaction", amount=PLUS_PRICE, account=account(o1.merchant_trans_id)
    ) == {"allow": True}

    # 5-6. Create T1 on O1, twice: identical.
    create_t1 = {"id": "T1" * 12, "time": t, "amount": PLUS_PRICE,
                 "account": account(o1.merchant_trans_id)}  # fmt: skip
    first = await payme.result("CreateTransaction", **create_t1)
    assert first["state"] == 1 and first["create_time"] == clock.now
    clock.advance(seconds=5)
    assert await payme.result("CreateTransaction", **create_t1) == first
    t1_created = first["create_time"]

    # 7. CheckTransaction T1.
    assert await payme.result("CheckTransaction", id="T1" * 12) == {
        "create_time": t1_created, "perform_time": 0, "cancel_time": 0,
        "transaction": first["transaction"], "state": 1, "reason": None,
    }  # fmt: skip

    # 8. Create T2 (new id, O1): the order is busy; no row.
    before = await snapshot(db)
    answer = await payme.call("CreateTransaction", **{**create_t1, "id": "T2" * 12})
    assert error_of(answer) == (-31008, None)
    assert answer["error"]["message"]["en"] == (
        "The order is already being paid by another transaction"
    )
    assert await snapshot(db) == before

    # 9. Cancel T1 twice: the same cancel_time; 10. CheckTransaction; O1 pending.
    clock.advance(seconds=5)
    cancelled = await payme.result("CancelTransaction", id="T1" * 12, reason=3)
    assert cancelled == {"transaction": first["transaction"], "cancel_time": clock.now,
                         "state": -1}  # fmt: skip
    clock.advance(seconds=5)
    assert await payme.result("CancelTransaction", id="T1" * 12, reason=3) == cancelled
    assert await payme.result("CheckTransaction", id="T1" * 12) == {
        "create_time": t1_created, "perform_time": 0, "cancel_time": cancelled["cancel_time"],
        "transaction": first["transaction"], "state": -1, "reason": 3,
    }  # fmt: skip
    order, _ = await load(db, o1.merchant_trans_id, O1_USER)
    assert order.status == "pending"

    # 11-14. O2: check, create T3, repeat, check.
    assert await payme.result(
        "CheckPerformTransaction", amount=PLUS_PRICE, account=account(o2.merchant_trans_id)
    ) == {"allow": True}
    t3_time = clock.now - 500
    create_t3 = {"id": "T3" * 12, "time": t3_time, "amount": PLUS_PRICE,
                 "account": account(o2.merchant_trans_id)}  # fmt: skip
    t3 = await payme.result("CreateTransaction", **create_t3)
    assert await payme.result("CreateTransaction", **create_t3) == t3
    assert (await payme.result("CheckTransaction", id="T3" * 12))["state"] == 1

    # 15. Create T4 on O2: -31008.
    answer = await payme.call("CreateTransaction", **{**create_t3, "id": "T4" * 12})
    assert error_of(answer)[0] == -31008

    # 16-17. Perform T3 twice: one grant, one message, the same perform_time.
    clock.advance(seconds=5)
    performed = await payme.result("PerformTransaction", id="T3" * 12)
    assert performed == {"transaction": t3["transaction"], "perform_time": clock.now,
                         "state": 2}  # fmt: skip
    clock.advance(seconds=5)
    assert await payme.result("PerformTransaction", id="T3" * 12) == performed
    order, user = await load(db, o2.merchant_trans_id, O2_USER)
    assert order.status == "paid" and user.tariff == "PLUS"
    from db.clock import to_datetime

    paid_until = to_datetime(performed["perform_time"]) + timedelta(days=30)
    assert user.tariff_expires_at == paid_until
    assert [row.kind for row in await notices(db, O2_USER)] == ["payment_received"]

    # 18. CheckTransaction T3.
    assert await payme.result("CheckTransaction", id="T3" * 12) == {
        "create_time": t3["create_time"], "perform_time": performed["perform_time"],
        "cancel_time": 0, "transaction": t3["transaction"], "state": 2, "reason": None,
    }  # fmt: skip

    # 19-20. Cancel T3 twice (refund): -2, O2 refunded, days revoked, one message.
    clock.advance(seconds=5)
    refunded = await payme.result("CancelTransaction", id="T3" * 12, reason=5)
    assert refunded == {"transaction": t3["transaction"], "cancel_time": clock.now, "state": -2}
    clock.advance(seconds=5)
    assert await payme.result("CancelTransaction", id="T3" * 12, reason=1) == refunded
    order, user = await load(db, o2.merchant_trans_id, O2_USER)
    assert order.status == "refunded"
    assert user.tariff_expires_at == to_datetime(refunded["cancel_time"])  # ends now
    assert [row.kind for row in await notices(db, O2_USER)] == [
        "payment_received", "payment_refunded",
    ]  # fmt: skip
    assert await payme.result("CheckTransaction", id="T3" * 12) == {
        "create_time": t3["create_time"], "perform_time": performed["perform_time"],
        "cancel_time": refunded["cancel_time"], "transaction": t3["transaction"],
        "state": -2, "reason": 5,
    }  # fmt: skip

    # 21. GetStatement [T1.time, T3.time]: T1 (-1) and T3 (-2), inclusive bounds, by time.
    statement = await payme.result("GetStatement", **{"from": t, "to": t3_time})
    items = statement["transactions"]
    assert [(item["id"], item["state"]) for item in items] == [("T1" * 12, -1), ("T3" * 12, -2)]
    assert items[1] == {
        "id": "T3" * 12, "time": t3_time, "amount": PLUS_PRICE,
        "account": {"order_id": o2.merchant_trans_id}, "create_time": t3["create_time"],
        "perform_time": performed["perform_time"], "cancel_time": refunded["cancel_time"],
        "transaction": t3["transaction"], "state": -2, "reason": 5, "receivers": None,
    }  # fmt: skip
    narrower = await payme.result("GetStatement", **{"from": t + 1, "to": t3_time - 1})
    assert narrower == {"transactions": []}
    reversed_range = await payme.result("GetStatement", **{"from": t3_time, "to": t})
    assert reversed_range == {"transactions": []}
