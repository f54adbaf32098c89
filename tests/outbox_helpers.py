"""Helpers for notifier and lifecycle tests: users, paid orders, queued notices, draining."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import func, insert, select

from db import outbox
from db.billing import credit_payment
from db.clock import to_datetime
from db.database import Database
from db.orders import open_order
from db.payments import get_payment
from db.schema import notifications, payments
from db.tariffs import Tariff
from db.users import set_language, upsert_user
from tests.conftest import BOT_TOKEN, telegram_url
from tests.fake_telegram import FakeTelegram

_provider_ids = itertools.count(1)


def fake_bot(telegram: FakeTelegram) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram_url(telegram)))
    return Bot(BOT_TOKEN, session=session)


async def add_user(db: Database, user_id: int, language: str, now_ms: int) -> None:
    async with db.transaction() as conn:
        await upsert_user(conn, user_id, f"User{user_id}", None, to_datetime(now_ms))
        await set_language(conn, user_id, language)


async def queue_payment_notice(db: Database, user_id: int, amount_som: int, now_ms: int) -> None:
    """A "payment received" notice whose amount tells the notices apart."""
    async with db.transaction() as conn:
        await outbox.enqueue(
            conn,
            user_id,
            outbox.PAYMENT_RECEIVED,
            {"tariff": "PLUS", "amount": amount_som * 100, "expires_at": None},
            to_datetime(now_ms),
        )


async def pay(
    db: Database, user_id: int, tariff: Tariff, tariffs: Mapping[str, Tariff], now_ms: int
):
    """A provider payment committed the way Click and Payme commit one (`credit_payment`)."""
    async with db.transaction() as conn:
        order = await open_order(conn, user_id, tariff, to_datetime(now_ms))
        payment_id = await conn.scalar(
            insert(payments)
            .values(
                provider="click",
                provider_id=str(next(_provider_ids)),
                order_id=order.id,
                amount=order.amount,
                state="pending",
                create_time=now_ms,
            )
            .returning(payments.c.id)
        )
        payment = await get_payment(conn, payment_id)
        assert payment is not None
        return await credit_payment(conn, payment, order, tariffs, now_ms)


async def pending_count(db: Database) -> int:
    async with db.transaction() as conn:
        return await conn.scalar(
            select(func.count())
            .select_from(notifications)
            .where(notifications.c.status == "pending")
        )


async def wait_until_drained(db: Database, within: float = 30) -> None:
    """Until no notice is pending (each was sent or closed)."""
    deadline = time.monotonic() + within
    while await pending_count(db):
        if time.monotonic() > deadline:
            raise AssertionError(f"notices still pending after {within}s")
        await asyncio.sleep(0.05)


async def statuses(db: Database) -> list[tuple[int, str, str | None]]:
    async with db.transaction() as conn:
        rows = await conn.execute(
            select(notifications.c.user_id, notifications.c.status, notifications.c.error).order_by(
                notifications.c.id
            )
        )
        return [tuple(row) for row in rows]
