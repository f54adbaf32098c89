"""Exactly once under concurrency and failure: many identical callbacks, a DB that breaks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import OperationalError

from db import outbox
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
    prepare_fields,
    snapshot,
)
from web.providers.click import routes as click_routes
from web.settings import Settings

MTI = "123456_PLUS_1730034567"
T = 2854711398


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """A queue of a thousand identical callbacks all wait their turn: the wait bound
    (DATABASE_WAIT_SECONDS) is a setting, set high here to test the order lock alone."""
    return make_settings(DATABASE_WAIT_SECONDS="60")


async def concurrent_completes(client: TestClient, clock: FakeClock, copies: int) -> None:
    click = ClickCaller(client)
    await make_order(click.db, 123456, mti=MTI)
    prepare_id = (await click.prepare(MTI, T))["merchant_prepare_id"]
    body = complete_fields(MTI, T, prepare_id)
    answers = await asyncio.gather(*(click.post("/click/complete", body) for _ in range(copies)))
    assert sorted(answer["error"] for answer in answers) == [-4] * (copies - 1) + [0]
    assert ok_complete(T, MTI, prepare_id) in answers
    assert answers.count(failed(-4, T, MTI)) == copies - 1
    order, user = await load(click.db, MTI, 123456)
    assert order.status == "paid"
    assert user.tariff_expires_at == to_datetime(clock.now) + timedelta(days=30)
    assert len(await notices(click.db, 123456)) == 1


async def test_50_identical_completes_credit_once(client: TestClient, clock: FakeClock) -> None:
    await concurrent_completes(client, clock, 50)


@pytest.mark.slow
async def test_1000_identical_completes_credit_once(client: TestClient, clock: FakeClock) -> None:
    await concurrent_completes(client, clock, 1000)


async def test_concurrent_prepares_leave_one_row(client: TestClient) -> None:
    click = ClickCaller(client)
    await make_order(click.db, 123456, mti=MTI)
    other = await make_order(click.db, 777, mti="777_PLUS_1730034567")
    same = prepare_fields(MTI, T)
    answers = await asyncio.gather(*(click.post("/click/prepare", same) for _ in range(20)))
    prepare_id = answers[0]["merchant_prepare_id"]
    assert answers == [ok_prepare(T, MTI, prepare_id)] * 20
    # the same attempt id raced onto two orders: one row, the other order gets -8 (D9)
    mine, theirs = prepare_fields(MTI, T + 1), prepare_fields(other.merchant_trans_id, T + 1)
    raced = await asyncio.gather(
        *(click.post("/click/prepare", body) for body in [mine, theirs] * 5)
    )
    assert sorted(answer["error"] for answer in raced) == [-8] * 5 + [0] * 5
    rows = (await snapshot(click.db))["payments"]
    assert len(rows) == 2


async def test_db_failure_mid_complete_rolls_back_then_retry_succeeds(
    client: TestClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    click = ClickCaller(client)
    await make_order(click.db, 123456, mti=MTI)
    prepare_id = (await click.prepare(MTI, T))["merchant_prepare_id"]
    real_enqueue = outbox.enqueue

    async def enqueue_then_fail(*args: Any, **kwargs: Any) -> None:
        # Payment, order and tariff are already updated in the transaction by now.
        await real_enqueue(*args, **kwargs)
        raise OperationalError("INSERT INTO notifications", {}, Exception("disk I/O error"))

    monkeypatch.setattr(outbox, "enqueue", enqueue_then_fail)
    before = await snapshot(click.db)
    assert await click.complete(MTI, T, prepare_id) == failed(-7, T, MTI)
    assert await snapshot(click.db) == before
    monkeypatch.setattr(outbox, "enqueue", real_enqueue)
    assert await click.complete(MTI, T, prepare_id) == ok_complete(T, MTI, prepare_id)
    order, user = await load(click.db, MTI, 123456)
    assert (order.status, user.tariff) == ("paid", "PLUS")
    assert len(await notices(click.db, 123456)) == 1


async def test_unexpected_exception_before_validation_is_minus_7(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(body: bytes) -> dict[str, str]:
        raise RuntimeError("bug")

    monkeypatch.setattr(click_routes, "parse_form", broken)
    click = ClickCaller(client)
    assert await click.post("/click/prepare", prepare_fields(MTI, T)) == failed(-7)
