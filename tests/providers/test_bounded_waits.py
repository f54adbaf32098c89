"""Every answer within the providers' patience: a database held by someone else gives the
retryable -7 / -32400 after DATABASE_WAIT_SECONDS, not a late success the provider no
longer hears; and the retry after the lock is gone succeeds."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from tests.conftest import FakeClock
from tests.providers.click.helpers import ClickCaller, failed, make_order, ok_prepare
from tests.providers.payme.helpers import PaymeCaller, account, error_of
from web.app import create_app
from web.settings import Settings

MTI = "123456_PLUS_1730034567"
WAIT = 1.0


@asynccontextmanager
async def order_held_elsewhere(settings: Settings, mti: str) -> AsyncIterator[None]:
    """Another process holds the lock a payment needs: SQLite's write lock, or the order
    row's lock on PostgreSQL."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(str(url.database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    other = await asyncpg.connect(dsn)
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM orders WHERE merchant_trans_id = $1 FOR UPDATE", mti)
            yield
    finally:
        await other.close()


@pytest.fixture
async def patient_client(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[tuple[TestClient, Settings]]:
    settings = make_settings(DATABASE_WAIT_SECONDS=str(WAIT))
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client, settings


async def timed(call: Any) -> tuple[float, Any]:
    started = time.monotonic()
    answer = await call
    return time.monotonic() - started, answer


async def test_a_held_database_gives_retryable_errors_within_the_bound(
    patient_client: tuple[TestClient, Settings], clock: FakeClock
) -> None:
    client, settings = patient_client
    click, payme = ClickCaller(client), PaymeCaller(client)
    await make_order(click.db, 123456, mti=MTI)
    async with order_held_elsewhere(settings, MTI):
        seconds, answer = await timed(click.prepare(MTI, 11))
        assert answer == failed(-7, 11, MTI)
        assert WAIT * 0.8 < seconds < WAIT + 4
        create = {"id": "held", "time": clock.now, "amount": 1_500_000, "account": account(MTI)}
        seconds, answer = await timed(payme.call("CreateTransaction", **create))
        assert error_of(answer) == (-32400, None)
        assert WAIT * 0.8 < seconds < WAIT + 4
    answer = await click.prepare(MTI, 11)  # the provider's retry, the lock gone
    assert answer == ok_prepare(11, MTI, answer["merchant_prepare_id"])
    assert (await payme.result("CreateTransaction", **create))["state"] == 1


async def test_the_wait_bound_does_not_cut_short_a_normal_queue(
    patient_client: tuple[TestClient, Settings],
) -> None:
    """Twenty callbacks for one order queue behind each other and all get their answer."""
    client, _settings = patient_client
    click = ClickCaller(client)
    await make_order(click.db, 123456, mti=MTI)
    answers = await asyncio.gather(*(click.prepare(MTI, 100 + n) for n in range(20)))
    assert all(answer["error"] == 0 for answer in answers)
