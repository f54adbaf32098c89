"""Concurrent Payme calls (and a Click Complete racing a Payme Perform) over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from db.clock import to_datetime
from tests.conftest import FakeClock
from tests.providers.click.helpers import (
    PLUS_PRICE,
    ClickCaller,
    load,
    make_order,
    notices,
    ok_prepare,
)
from tests.providers.payme.helpers import PaymeCaller, account, error_of
from web.keys import DATABASE


async def test_fifty_identical_performs_credit_once(client, clock: FakeClock) -> None:
    db, payme = client.server.app[DATABASE], PaymeCaller(client)
    order = await make_order(db, 501)
    await payme.result("CreateTransaction", id="p50", time=clock.now, amount=PLUS_PRICE,
                       account=account(order.merchant_trans_id))  # fmt: skip
    answers = await asyncio.gather(
        *(payme.result("PerformTransaction", id="p50") for _ in range(50))
    )
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["state"] == 2
    _, user = await load(db, order.merchant_trans_id, 501)
    assert [row.kind for row in await notices(db, 501)] == ["payment_received"]
    assert user.tariff_expires_at == to_datetime(answers[0]["perform_time"]) + timedelta(days=30)


async def test_concurrent_creates(client, clock: FakeClock) -> None:
    db, payme = client.server.app[DATABASE], PaymeCaller(client)
    order = await make_order(db, 502)
    create = {"time": clock.now, "amount": PLUS_PRICE, "account": account(order.merchant_trans_id)}
    same = await asyncio.gather(*(payme.call("CreateTransaction", id="same", **create)
                                  for _ in range(2)))  # fmt: skip
    assert same[0]["result"] == same[1]["result"]
    other = await make_order(db, 503)
    create["account"] = account(other.merchant_trans_id)
    new_ids = await asyncio.gather(
        payme.call("CreateTransaction", id="new-1", **create),
        payme.call("CreateTransaction", id="new-2", **create),
    )
    outcomes = sorted("result" in answer for answer in new_ids)
    assert outcomes == [False, True]
    [refused] = [answer for answer in new_ids if "error" in answer]
    assert error_of(refused) == (-31008, None)
    assert refused["error"]["message"]["en"].startswith("The order is already being paid")


async def test_click_complete_and_payme_perform_race_for_one_order(
    client, clock: FakeClock
) -> None:
    """Whichever commits first, Click's debit is honoured (D8) and Payme's Perform is
    refused once the order is paid: no payment credited twice, none lost."""
    db, payme, click = client.server.app[DATABASE], PaymeCaller(client), ClickCaller(client)
    for round_number in range(6):
        user_id = 600 + round_number
        order = await make_order(db, user_id)
        mti = order.merchant_trans_id
        trans = 9_000_000 + round_number
        prepared = await click.prepare(mti, trans)
        assert prepared == ok_prepare(trans, mti, prepared["merchant_prepare_id"])
        await payme.result("CreateTransaction", id=f"race{round_number}", time=clock.now,
                           amount=PLUS_PRICE, account=account(mti))  # fmt: skip
        click_answer, payme_answer = await asyncio.gather(
            click.complete(mti, trans, prepared["merchant_prepare_id"]),
            payme.call("PerformTransaction", id=f"race{round_number}"),
        )
        assert click_answer["error"] == 0  # Click has taken the money: always credited
        credited = 1 + ("result" in payme_answer)
        if "error" in payme_answer:
            assert error_of(payme_answer) == (-31008, None)
            state = await payme.result("CheckTransaction", id=f"race{round_number}")
            assert (state["state"], state["reason"]) == (-1, 3)
        kinds = [row.kind for row in await notices(db, user_id)]
        assert kinds == ["payment_received"] * credited
        order_after, user = await load(db, mti, user_id)
        assert order_after.status == "paid"
        assert user.tariff_expires_at is not None
        days = (user.tariff_expires_at - order_after.paid_at) / timedelta(days=1)
        assert round(days) == 30 * credited
