"""Requests signed the way Click signs them, and database helpers for Click tests.

The signature here is computed independently of the product's `protocol.py` (straight from §4 of
the reference), so a wrong formula in the product fails the tests instead of agreeing
with itself.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select

from db.clock import to_datetime
from db.database import Database
from db.orders import Order, get_order
from db.payments import Payment, get_payment
from db.schema import notifications, orders, payments, users
from db.users import User, get_user
from tests.conftest import CLICK_ENV
from web.keys import DATABASE

SECRET = CLICK_ENV["CLICK_SECRET_KEY"]
SERVICE_ID = CLICK_ENV["CLICK_SERVICE_ID"]
SIGN_TIME = "2024-10-27 18:02:18"
PLUS_PRICE = 1_500_000  # tiyin, the default TARIFF_PLUS_PRICE


def click_md5(*parts: str) -> str:
    return hashlib.md5("".join(parts).encode("utf-8")).hexdigest()


def prepare_fields(
    mti: str,
    click_trans_id: int | str,
    *,
    amount: str = "15000.00",
    action: str = "0",
    error: str = "0",
    service_id: str = SERVICE_ID,
    secret: str = SECRET,
    sign_time: str = SIGN_TIME,
    paydoc_id: str = "3390123456",
    **extra: str,
) -> dict[str, str]:
    """A Prepare body signed with the Prepare formula; `extra` fields are added unsigned."""
    trans = str(click_trans_id)
    fields = {
        "click_trans_id": trans,
        "service_id": service_id,
        "click_paydoc_id": paydoc_id,
        "merchant_trans_id": mti,
        "amount": amount,
        "action": action,
        "error": error,
        "error_note": "Success",
        "sign_time": sign_time,
        "sign_string": click_md5(trans, service_id, secret, mti, amount, action, sign_time),
    }
    fields.update(extra)
    return fields


def complete_fields(
    mti: str,
    click_trans_id: int | str,
    prepare_id: int | str,
    *,
    amount: str = "15000.00",
    action: str = "1",
    error: str = "0",
    error_note: str = "Success",
    service_id: str = SERVICE_ID,
    secret: str = SECRET,
    sign_time: str = SIGN_TIME,
    paydoc_id: str = "3390123456",
) -> dict[str, str]:
    """A Complete body signed with the Complete formula (prepare id after the order id)."""
    trans, prep = str(click_trans_id), str(prepare_id)
    return {
        "click_trans_id": trans,
        "service_id": service_id,
        "click_paydoc_id": paydoc_id,
        "merchant_trans_id": mti,
        "merchant_prepare_id": prep,
        "amount": amount,
        "action": action,
        "error": error,
        "error_note": error_note,
        "sign_time": sign_time,
        "sign_string": click_md5(trans, service_id, secret, mti, prep, amount, action, sign_time),
    }


class ClickCaller:
    """Posts to the real app over HTTP and checks the transport rules of every answer."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def db(self) -> Database:
        return self.client.server.app[DATABASE]

    async def post(self, path: str, body: dict[str, str] | bytes | str, **kwargs: Any) -> Any:
        if isinstance(body, dict):
            body = urlencode(body)
            kwargs.setdefault("headers", {"Content-Type": "application/x-www-form-urlencoded"})
        response = await self.client.post(path, data=body, **kwargs)
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        answer = await response.json()
        assert type(answer["error"]) is int
        return answer

    async def prepare(self, *args: Any, **kwargs: Any) -> Any:
        return await self.post("/click/prepare", prepare_fields(*args, **kwargs))

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        return await self.post("/click/complete", complete_fields(*args, **kwargs))


def ok_prepare(click_trans_id: int, mti: str, payment_id: int) -> dict[str, Any]:
    return {
        "click_trans_id": click_trans_id,
        "merchant_trans_id": mti,
        "merchant_prepare_id": payment_id,
        "error": 0,
        "error_note": "Success",
    }


def ok_complete(click_trans_id: int, mti: str, payment_id: int) -> dict[str, Any]:
    return {
        "click_trans_id": click_trans_id,
        "merchant_trans_id": mti,
        "merchant_confirm_id": payment_id,
        "error": 0,
        "error_note": "Success",
    }


NOTES = {
    -1: "SIGN CHECK FAILED!",
    -2: "Incorrect parameter amount",
    -3: "Action not found",
    -4: "Already paid",
    -5: "User does not exist",
    -6: "Transaction does not exist",
    -7: "Failed to update user",
    -8: "Error in request from click",
    -9: "Transaction cancelled",
}


def failed(code: int, click_trans_id: int | None = None, mti: str | None = None) -> dict[str, Any]:
    """An error answer: ids echoed, except for -8 (and a -7 before validation)."""
    if click_trans_id is None:
        return {"error": code, "error_note": NOTES[code]}
    return {
        "click_trans_id": click_trans_id,
        "merchant_trans_id": mti,
        "error": code,
        "error_note": NOTES[code],
    }


async def make_order(
    db: Database,
    user_id: int,
    *,
    tariff: str = "PLUS",
    amount: int = PLUS_PRICE,
    mti: str | None = None,
    status: str = "pending",
    language: str | None = "en",
) -> Order:
    """A user (created if new) with one order, written straight to the database."""
    now = to_datetime(1_730_034_567_000)
    mti = mti or f"{user_id}_{tariff}_{1730034567 + user_id % 1000}"
    async with db.transaction() as conn:
        if await get_user(conn, user_id) is None:
            await conn.execute(
                insert(users).values(
                    id=user_id, first_name=f"User{user_id}", language=language, created_at=now
                )
            )
        await conn.execute(
            insert(orders).values(
                merchant_trans_id=mti,
                user_id=user_id,
                tariff=tariff,
                amount=amount,
                status=status,
                created_at=now,
            )
        )
        order = await get_order(conn, mti)
    assert order is not None
    return order


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to assert that a refused callback changed nothing.

    A notice's delivery state is left out: the notifier sends earlier notices meanwhile
    (woken the moment they commit), which is not the callback's doing.
    """
    delivery_state = {"status", "attempts", "next_attempt_at", "sent_at", "error"}
    async with db.transaction() as conn:
        return {
            table.name: [
                tuple(row)
                for row in await conn.execute(
                    select(*(c for c in table.c if c.name not in delivery_state)).order_by(
                        *table.primary_key
                    )
                )
            ]
            for table in (users, orders, payments, notifications)
        }


async def load(db: Database, mti: str, user_id: int) -> tuple[Order, User]:
    async with db.transaction() as conn:
        order = await get_order(conn, mti)
        user = await get_user(conn, user_id)
    assert order is not None and user is not None
    return order, user


async def payment(db: Database, payment_id: int) -> Payment:
    async with db.transaction() as conn:
        found = await get_payment(conn, payment_id)
    assert found is not None
    return found


async def notices(db: Database, user_id: int) -> list[Any]:
    async with db.transaction() as conn:
        query = select(notifications).where(notifications.c.user_id == user_id)
        return list(await conn.execute(query.order_by(notifications.c.id)))
