"""Several `python -m web` instances on one database: one bot, one send rate.

Real processes against the fake Bot API, which records when each message arrives; the
test queues notices on the shared database as payments in any instance would.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import insert, select

from db import outbox
from db.clock import system_clock, to_datetime
from db.database import Database
from db.schema import payments, users
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import wait_until_drained
from tests.processes import (
    instance_env,
    max_in_window,
    start_instance,
    start_instances,
    stop_all,
    wait_for_sender,
)
from tests.providers.click.helpers import PLUS_PRICE, complete_fields, make_order, prepare_fields
from tests.providers.payme.helpers import AUTH
from tests.send_stamps import SendStamps

RATE = 20
NOTICES = 120
DEPLOY_NOTICES = 300


async def queue_stream(db: Database, chats: range, per_batch: int = 10) -> None:
    """A stream, not one batch: notices keep coming while the instances send (offered at
    about 2.5 times the rate, so the sender is always busy). One transaction per batch
    keeps this process, which also serves the fake Bot API, light."""
    now = to_datetime(system_clock())
    for start in range(0, len(chats), per_batch):
        batch = chats[start : start + per_batch]
        async with db.transaction() as conn:
            await conn.execute(
                insert(users), [{"id": chat, "language": "en", "created_at": now} for chat in batch]
            )
            for chat in batch:
                await outbox.enqueue(
                    conn,
                    chat,
                    outbox.PAYMENT_RECEIVED,
                    {"tariff": "PLUS", "amount": chat * 100, "expires_at": None},
                    now,
                )
        await asyncio.sleep(0.2)


async def wait_delivered(telegram: FakeTelegram, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while len(telegram.delivered()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(telegram.delivered())} of {count} delivered")
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 3])
async def test_instances_started_together_share_one_send_rate(
    database_url: str, telegram: FakeTelegram, count: int
) -> None:
    stamps = await SendStamps.start(telegram)
    envs = [
        instance_env(stamps.url, database_url, NOTIFY_RATE_PER_SECOND=str(RATE))
        for _ in range(count)
    ]
    instances = await start_instances(envs)  # together, on an empty database
    db = Database.from_url(database_url)
    try:
        await wait_for_sender(instances)
        chats = range(5000, 5000 + NOTICES)
        await queue_stream(db, chats)
        await wait_delivered(telegram, NOTICES, within=NOTICES / RATE + 60)
        await asyncio.sleep(2)  # more rounds of every instance: nothing more may come
        sends = telegram.of("sendMessage")
        assert sorted(call.params["chat_id"] for call in sends) == list(chats)  # each once
        # The bot's total, every instance together: at most RATE in any one-second
        # window of arrivals (+1 for where the window's edge falls, as for one instance).
        assert len(stamps.times) == NOTICES
        assert max_in_window(stamps.times) <= RATE + 1
        assert [instance.is_sender for instance in instances].count(True) == 1
    finally:
        await db.close()
        await stop_all(instances)
        await stamps.stop()


@pytest.mark.slow
async def test_sigterm_to_the_sender_during_a_stream_sends_nothing_twice(
    database_url: str, telegram: FakeTelegram
) -> None:
    """A deploy: the new instance starts while the old one (the sender) works through a
    stream of notices; then the old one gets SIGTERM with sends on the wire, and the new
    one takes over. No message twice, none lost, and the rate holds across the overlap
    and the hand-over."""
    telegram.send_latency = 0.3  # a real round trip: several sends always on the wire
    stamps = await SendStamps.start(telegram)
    envs = [instance_env(stamps.url, database_url, NOTIFY_RATE_PER_SECOND=str(RATE)) for _ in "ab"]
    instances = await start_instances(envs[:1])
    db = Database.from_url(database_url)
    try:
        [old] = instances
        await wait_for_sender(instances)
        chats = range(6000, 6000 + DEPLOY_NOTICES)
        # About 25 a second for 12 s: the old instance is still busy when the new is up.
        stream = asyncio.create_task(queue_stream(db, chats, per_batch=5))
        instances.append(await start_instance(envs[1]))
        new = instances[1]
        await wait_delivered(telegram, DEPLOY_NOTICES // 3, within=60)
        assert old.is_sender and not new.is_sender
        started = time.monotonic()
        assert await old.terminate() == 0, old.output
        assert time.monotonic() - started < 10
        await stream
        await wait_delivered(telegram, DEPLOY_NOTICES, within=DEPLOY_NOTICES / RATE + 90)
        # The notices the old instance had claimed but not sent wait for their lease
        # (about 22 s); a send it cut on the wire would come back then, twice.
        await wait_until_drained(db, within=60)
        await asyncio.sleep(2)
        assert new.is_sender, new.output
        sends = telegram.of("sendMessage")
        per_chat = {chat: 0 for chat in chats}
        for call in sends:
            per_chat[call.params["chat_id"]] += 1
        assert [chat for chat, count in per_chat.items() if count != 1] == []
        assert len(stamps.times) == DEPLOY_NOTICES
        assert max_in_window(stamps.times) <= RATE + 1  # across the hand-over too
        assert "Traceback" not in old.output
    finally:
        await db.close()
        await stop_all(instances)
        await stamps.stop()


ORDERS = 20
PAYER = 7100


async def pay_with_click(session: aiohttp.ClientSession, base: str, mti: str, trans: int) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(
        base + "/click/prepare", data=urlencode(prepare_fields(mti, trans)), headers=headers
    ) as response:
        prepared = await response.json()
    assert prepared["error"] == 0, prepared
    body = complete_fields(mti, trans, prepared["merchant_prepare_id"])
    async with session.post(base + "/click/complete", data=urlencode(body), headers=headers) as r:
        completed = await r.json()
    assert completed["error"] == 0, completed


async def pay_with_payme(session: aiohttp.ClientSession, base: str, mti: str, tid: str) -> None:
    headers = {"Content-Type": "text/json; charset=UTF-8", "Authorization": AUTH}

    async def call(method: str, **params: Any) -> Any:
        body = json.dumps({"id": 1, "method": method, "params": params})
        async with session.post(base + "/payme", data=body, headers=headers) as response:
            answer = await response.json()
        assert "error" not in answer, answer
        return answer["result"]

    await call(
        "CreateTransaction",
        id=tid,
        time=int(time.time() * 1000),
        amount=PLUS_PRICE,
        account={"order_id": mti},
    )
    await call("PerformTransaction", id=tid)


@pytest.mark.slow
async def test_orders_of_one_user_paid_at_once_grant_every_period(
    database_url: str, telegram: FakeTelegram
) -> None:
    """20 PLUS orders of one user, half through Click and half through Payme, all paid at
    once through two instances: every 30-day period is granted (600 days from the first
    payment), each announced once. The user-row lock in `credit_payment` is what makes
    this hold on PostgreSQL; without it concurrent credits overwrite each other's expiry."""
    envs = [instance_env(telegram, database_url) for _ in "ab"]
    instances = await start_instances(envs)
    db = Database.from_url(database_url)
    try:
        mtis = [
            (await make_order(db, PAYER, mti=f"{PAYER}_PLUS_{1730034567 + n}")).merchant_trans_id
            for n in range(ORDERS)
        ]
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(
                *(
                    pay_with_click(session, instances[n % 2].base, mti, 880000 + n)
                    if n % 2 == 0
                    else pay_with_payme(session, instances[n % 2].base, mti, f"{n:024x}")
                    for n, mti in enumerate(mtis)
                )
            )
        async with db.read() as conn:
            paid = (
                await conn.execute(
                    select(payments.c.granted_days, payments.c.perform_time).where(
                        payments.c.state == "paid"
                    )
                )
            ).all()
            expires_at = await conn.scalar(
                select(users.c.tariff_expires_at).where(users.c.id == PAYER)
            )
        assert len(paid) == ORDERS
        assert sum(days for days, _ in paid) == ORDERS * 30
        first = to_datetime(min(performed for _, performed in paid))
        # Each credit extends the expiry the previous one wrote; the first to take the user
        # row counts from its own `now`, a moment after the earliest perform time (the
        # others waited for the row). A lost update would be 30 days short, or more.
        granted = expires_at - first
        assert timedelta(days=ORDERS * 30) <= granted < timedelta(days=ORDERS * 30, seconds=30)
        await wait_delivered(telegram, ORDERS, within=60)
        await asyncio.sleep(1.5)
        assert len(telegram.of("sendMessage", PAYER)) == ORDERS
    finally:
        await db.close()
        await stop_all(instances)


MIXED_ORDERS = 24
COPIES = 3  # each provider request arrives this many times, at once, at random instances


@pytest.mark.slow
async def test_a_mixed_load_with_duplicates_on_three_instances_credits_exactly_once(
    database_url: str, telegram: FakeTelegram
) -> None:
    """Three instances started together on an empty database behind a load balancer that
    sends each request to a random instance, every request duplicated (a provider's
    retries): the results are those of one instance. Each order is paid once, each Click
    duplicate of a Complete beyond the first gets -4, every Payme duplicate the same
    answer, and each buyer gets one message."""
    rng = random.Random(12)
    envs = [instance_env(telegram, database_url) for _ in range(3)]
    instances = await start_instances(envs)
    db = Database.from_url(database_url)
    try:
        buyers = [7300 + n for n in range(MIXED_ORDERS)]
        mtis = [
            (await make_order(db, buyer, mti=f"{buyer}_PLUS_{1730034567 + n}")).merchant_trans_id
            for n, buyer in enumerate(buyers)
        ]

        async def post(session: aiohttp.ClientSession, path: str, body: str, **headers: str):
            async def one() -> Any:
                base = rng.choice(instances).base
                async with session.post(base + path, data=body, headers=headers) as response:
                    assert response.status == 200
                    return await response.json()

            return await asyncio.gather(*(one() for _ in range(COPIES)))

        async def click(session: aiohttp.ClientSession, mti: str, trans: int) -> None:
            form = "application/x-www-form-urlencoded"
            prepared = await post(
                session,
                "/click/prepare",
                urlencode(prepare_fields(mti, trans)),
                **{"Content-Type": form},
            )
            assert all(answer == prepared[0] for answer in prepared), prepared
            assert prepared[0]["error"] == 0, prepared
            body = urlencode(complete_fields(mti, trans, prepared[0]["merchant_prepare_id"]))
            completed = await post(session, "/click/complete", body, **{"Content-Type": form})
            assert sorted(answer["error"] for answer in completed) == [-4] * (COPIES - 1) + [0]

        async def payme(session: aiohttp.ClientSession, mti: str, tid: str) -> None:
            headers = {"Content-Type": "text/json; charset=UTF-8", "Authorization": AUTH}
            for method, params in (
                (
                    "CreateTransaction",
                    {
                        "id": tid,
                        "time": int(time.time() * 1000),
                        "amount": PLUS_PRICE,
                        "account": {"order_id": mti},
                    },
                ),
                ("PerformTransaction", {"id": tid}),
            ):
                body = json.dumps({"id": 1, "method": method, "params": params})
                answers = await post(session, "/payme", body, **headers)
                assert all(answer == answers[0] for answer in answers), answers
                assert "result" in answers[0], answers

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(
                *(
                    click(session, mti, 990000 + n)
                    if n % 2 == 0
                    else payme(session, mti, f"{n + 1:024x}")
                    for n, mti in enumerate(mtis)
                )
            )
        async with db.read() as conn:
            paid = (
                await conn.execute(
                    select(payments.c.order_id, payments.c.granted_days).where(
                        payments.c.state == "paid"
                    )
                )
            ).all()
        assert len(paid) == MIXED_ORDERS
        assert len({order_id for order_id, _ in paid}) == MIXED_ORDERS  # none twice
        assert sum(days for _, days in paid) == MIXED_ORDERS * 30
        await wait_delivered(telegram, MIXED_ORDERS, within=90)
        await asyncio.sleep(2)  # more rounds of every instance: nothing more may come
        received = sorted(call.params["chat_id"] for call in telegram.of("sendMessage"))
        assert received == buyers  # each buyer once
    finally:
        await db.close()
        await stop_all(instances)
