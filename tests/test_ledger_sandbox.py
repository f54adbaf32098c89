"""Payme amendment A1 over real HTTP: a transaction made with PAYME_TEST_KEY and one made
with PAYME_KEY never see each other. Each key's CheckTransaction, PerformTransaction,
CancelTransaction and SetFiscalData of the other kind's transaction answer -31003 and
change nothing; GetStatement lists only its own kind; the other kind's live transaction
does not make an order busy; the test payment still credits and is marked as a test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from db.schema import payments
from tests.conftest import FakeClock
from tests.providers.click.helpers import PLUS_PRICE, make_order, notices, snapshot
from tests.providers.payme.helpers import AUTH, PaymeCaller, account, basic, error_of
from web.app import create_app
from web.keys import DATABASE, TELEGRAM_LINK
from web.settings import Settings

TEST_AUTH = basic("Paycom:SANDBOX_KEY_example")


@pytest.fixture
async def sandbox(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[TestClient]:
    app = create_app(
        make_settings(PAYME_TEST_KEY="SANDBOX_KEY_example"),
        clock=clock,
        handle_in_background=False,
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await app[TELEGRAM_LINK].registered.wait()
        yield client


@pytest.mark.parametrize("own, other", [(TEST_AUTH, AUTH), (AUTH, TEST_AUTH)], ids=["test", "prod"])
async def test_one_key_never_sees_the_other_kind(
    sandbox: TestClient, clock: FakeClock, own: str, other: str
) -> None:
    payme, db = PaymeCaller(sandbox), sandbox.server.app[DATABASE]
    order = await make_order(db, 610)
    created = await payme.call(
        "CreateTransaction", auth=own, id="T" * 24, time=clock.now, amount=PLUS_PRICE,
        account=account(order.merchant_trans_id),
    )  # fmt: skip
    assert created["result"]["state"] == 1

    before = await snapshot(db)
    for method, params in (
        ("CheckTransaction", {}),
        ("PerformTransaction", {}),
        ("CancelTransaction", {"reason": 1}),
        ("SetFiscalData", {"type": "PERFORM", "fiscal_data": {"receipt_id": 1}}),
    ):
        answer = await payme.call(method, auth=other, id="T" * 24, **params)
        assert error_of(answer) == (-31003, None), method
    # The same id created with the other key is not answered from the stored one.
    answer = await payme.call(
        "CreateTransaction", auth=other, id="T" * 24, time=clock.now, amount=PLUS_PRICE,
        account=account(order.merchant_trans_id),
    )  # fmt: skip
    assert error_of(answer)[0] == -31008
    statement = {"from": clock.now - 60_000, "to": clock.now + 60_000}
    assert (await payme.call("GetStatement", auth=other, **statement))["result"] == {
        "transactions": []
    }
    assert await snapshot(db) == before

    # The other kind's live reservation does not make the order busy for this kind.
    check = await payme.call(
        "CheckPerformTransaction", auth=other, amount=PLUS_PRICE,
        account=account(order.merchant_trans_id),
    )  # fmt: skip
    assert check["result"]["allow"] is True
    # ...but for its own kind it does (-31008), as §5.1 says.
    busy = await payme.call(
        "CreateTransaction", auth=own, id="U" * 24, time=clock.now, amount=PLUS_PRICE,
        account=account(order.merchant_trans_id),
    )  # fmt: skip
    assert error_of(busy)[0] == -31008

    listed = await payme.call("GetStatement", auth=own, **statement)
    assert [t["id"] for t in listed["result"]["transactions"]] == ["T" * 24]
    performed = await payme.call("PerformTransaction", auth=own, id="T" * 24)
    assert performed["result"]["state"] == 2
    async with db.read() as conn:
        flag = await conn.scalar(
            payments.select()
            .with_only_columns(payments.c.test)
            .where(payments.c.provider_id == "T" * 24)
        )
    assert flag is (own == TEST_AUTH)
    received = [n for n in await notices(db, 610) if n.kind == "payment_received"]
    assert [n.payload["test"] for n in received] == [own == TEST_AUTH]
