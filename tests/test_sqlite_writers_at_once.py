"""SQLite with several writers at once: the bot, the notifier, payments, and another
instance on the same file, none of them failing with "database is locked".

Inside one process the writers queue on `Database`'s lock; another process's write lock
is waited for by SQLite's busy timeout (within DATABASE_WAIT_SECONDS). A transaction
that hangs in this process costs the providers a retryable error after that bounded
wait, not an answer they no longer hear, and /health reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from tests.providers.click.helpers import (
    ClickCaller,
    failed,
    make_order,
    ok_complete,
    ok_prepare,
)
from tests.providers.payme.helpers import PaymeCaller, account, error_of
from web.app import create_app
from web.keys import DATABASE, TELEGRAM_LINK
from web.settings import Settings

PAYERS = range(7_000_001, 7_000_021)  # users paying with Click
TALKERS = range(7_100_001, 7_100_021)  # users writing to the bot meanwhile
WAIT = 1.0

# Another instance on the same file: short write transactions back to back, each holding
# SQLite's write lock for 2 ms. Its own busy timeout may sleep: it is not our loop.
OTHER_INSTANCE = """
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS other_instance (n INTEGER)")
print("ready", flush=True)
n = 0
while not os.path.exists(sys.argv[2]):
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO other_instance VALUES (?)", (n,))
    time.sleep(0.002)
    db.execute("COMMIT")
    n += 1
    time.sleep(0.0005)
print(n, flush=True)
"""


@contextlib.asynccontextmanager
async def other_instance_writing(database_url: str, stop_file: Path) -> AsyncIterator[list[int]]:
    """Runs the other writer until the block ends; yields a list that then holds how many
    transactions it committed."""
    path = str(make_url(database_url).database)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OTHER_INSTANCE, path, str(stop_file), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert (await asyncio.wait_for(process.stdout.readline(), 10)).strip() == b"ready"
    committed: list[int] = []
    try:
        yield committed
    finally:
        await asyncio.to_thread(stop_file.touch)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    committed.append(int(output.strip()))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_bot_the_notifier_and_payments_write_at_the_same_moment(
    client: TestClient,
    tg: Telegram,
    telegram: FakeTelegram,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    click = ClickCaller(client)
    for user in PAYERS:
        await make_order(click.db, user, mti=f"{user}_PLUS_1730034567")

    async def pay(user: int) -> None:
        mti = f"{user}_PLUS_1730034567"
        prepared = await click.prepare(mti, user)
        assert prepared["error"] == 0, prepared  # not -7 after "database is locked"
        assert prepared == ok_prepare(user, mti, prepared["merchant_prepare_id"])
        completed = await click.complete(mti, user, prepared["merchant_prepare_id"])
        assert completed == ok_complete(user, mti, prepared["merchant_prepare_id"])

    caplog.set_level(logging.WARNING)
    async with other_instance_writing(database_url, tmp_path / "stop") as committed:
        statuses = await asyncio.gather(
            *(pay(user) for user in PAYERS), *(tg.message(user, "/start") for user in TALKERS)
        )
        # The notifier sends each payer's notice (claim, send, mark: its own writes).
        for user in PAYERS:
            await telegram.wait_for("sendMessage", lambda call, u=user: call.params["chat_id"] == u)
    assert statuses[len(PAYERS) :] == [200] * len(TALKERS)
    for user in TALKERS:  # the bot wrote the user and answered
        assert telegram.delivered(user), user
    assert committed[0] > 50  # the other instance really wrote all along
    assert "database is locked" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.fixture
async def patient_client(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[TestClient]:
    app = create_app(
        make_settings(DATABASE_WAIT_SECONDS=str(WAIT)), clock=clock, handle_in_background=False
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        await asyncio.wait_for(app[TELEGRAM_LINK].registered.wait(), 10)
        yield test_client


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_stuck_transaction_gives_retryable_errors_and_health_says_so(
    patient_client: TestClient, clock: FakeClock
) -> None:
    client = patient_client
    click, payme = ClickCaller(client), PaymeCaller(client)
    mti = "123456_PLUS_1730034567"
    await make_order(click.db, 123456, mti=mti)
    first = await click.prepare(mti, 10)
    assert first == ok_prepare(10, mti, first["merchant_prepare_id"])
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hang() -> None:
        """A unit of work that awaits something that does not come (a dead peer, say)."""
        async with client.app[DATABASE].transaction():
            entered.set()
            await release.wait()

    stuck = asyncio.create_task(hang())
    await entered.wait()
    # Click repeating a Prepare it has an answer for writes nothing, so it does not queue.
    started = time.monotonic()
    assert await click.prepare(mti, 10) == first
    assert time.monotonic() - started < WAIT / 2
    # Nor does Payme's CheckPerformTransaction (the order has no Payme reservation).
    started = time.monotonic()
    check = await payme.call("CheckPerformTransaction", amount=1_500_000, account=account(mti))
    assert check["result"]["allow"] is True
    assert time.monotonic() - started < WAIT / 2
    started = time.monotonic()
    assert await click.prepare(mti, 11) == failed(-7, 11, mti)
    assert WAIT * 0.8 < time.monotonic() - started < WAIT + 4
    create = {"id": "stuck", "time": clock.now, "amount": 1_500_000, "account": account(mti)}
    started = time.monotonic()
    assert error_of(await payme.call("CreateTransaction", **create)) == (-32400, None)
    assert time.monotonic() - started < WAIT + 4
    # By now the writer has been held for over the bound.
    response = await client.get("/health")
    assert response.status == 503
    assert await response.json() == {"status": "error", "database": "writer stuck"}

    release.set()
    await stuck
    response = await client.get("/health")
    assert response.status == 200
    answer = await click.prepare(mti, 11)  # the provider's retry
    assert answer == ok_prepare(11, mti, answer["merchant_prepare_id"])
