"""The one-folder claim: a third provider, written in a temporary folder and added to the
registry's list, is offered in the bot and credits through the shared billing code,
with no change anywhere else."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from db.schema import orders, payments, users
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import wait_until_drained
from web.app import create_app
from web.keys import DATABASE
from web.providers import PROVIDERS
from web.settings import load_settings

USER = 880001

FAKEPAY = '''
"""FakePay: POST /fakepay {"order": <merchant_trans_id>, "amount": <tiyin>, "key": <key>}."""

from dataclasses import dataclass

from aiohttp import web

from db.billing import credit_payment
from db.orders import get_order
from db.payments import insert_once
from db.states import PaymentState
from web.providers.base import Provider, Services


@dataclass(frozen=True)
class Section:
    key: str


def load(reader):
    key = reader.secret("FAKEPAY_KEY")
    return Section(key) if key else None


@dataclass(frozen=True)
class Link:
    def url(self, order, language, bot_username):
        return f"https://pay.example.test/{order.merchant_trans_id}?a={order.amount}"


class Routes:
    def __init__(self, section, services: Services):
        self.section, self.services = section, services

    def register(self, app):
        app.router.add_post("/fakepay", self.handle)

    async def handle(self, request):
        body = await request.json()
        if self.section is None or body.get("key") != self.section.key:
            return web.json_response({"ok": False, "error": "key"})
        now = self.services.clock()
        async with self.services.db.transaction() as conn:
            order = await get_order(conn, body["order"], lock=True)
            if order is None or order.amount != body["amount"]:
                return web.json_response({"ok": False, "error": "order"})
            payment = await insert_once(
                conn, provider="fakepay", provider_id=body["id"], order_id=order.id,
                amount=order.amount, state=PaymentState.PENDING, create_time=now,
            )
            if payment is None:
                return web.json_response({"ok": True, "repeat": True})
            await credit_payment(conn, payment, order, self.services.tariffs, now)
        return web.json_response({"ok": True})


PROVIDER = Provider(
    name="fakepay", title="FakePay", load_settings=load, routes=Routes, link=lambda s: Link()
)
'''


@pytest.fixture
def fakepay(tmp_path: Path) -> Iterator[Any]:
    """The provider's folder, written to a temporary directory and imported from there."""
    folder = tmp_path / "fakepay_provider"
    folder.mkdir()
    (folder / "__init__.py").write_text(textwrap.dedent(FAKEPAY))
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("fakepay_provider").PROVIDER
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fakepay_provider", None)


async def test_a_third_provider_is_one_folder_and_one_line(
    fakepay: Any,
    make_settings: Callable[..., Any],
    clock: FakeClock,
    telegram: FakeTelegram,
) -> None:
    registry = (*PROVIDERS, fakepay)  # the one line a new provider adds to the registry
    base = make_settings()
    settings = load_settings(
        {
            "BOT_TOKEN": base.bot_token,
            "TELEGRAM_API_URL": base.telegram_api_url,
            "BASE_URL": base.base_url,
            "DATABASE_URL": base.database_url,
            "FAKEPAY_KEY": "fake-key",
        },
        providers=registry,
    )
    assert set(settings.providers) == {"fakepay"}
    app = create_app(settings, clock=clock, handle_in_background=False, providers=registry)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        tg = Telegram(client, settings)
        await tg.press(USER, "buy:PLUS")
        checkout = telegram.of("sendMessage", USER)[-1]
        button, _back = checkout.buttons  # Click and Payme are off: FakePay alone is offered
        assert button["text"] == "Pay with FakePay"
        async with app[DATABASE].read() as conn:
            [order] = (await conn.execute(select(orders))).all()
        assert button["url"] == f"https://pay.example.test/{order.merchant_trans_id}?a=1500000"

        pay = {"order": order.merchant_trans_id, "amount": 1_500_000, "id": "f-1"}
        refused = await client.post("/fakepay", json={**pay, "key": "wrong"})
        assert await refused.json() == {"ok": False, "error": "key"}
        for _ in range(2):  # a repeat credits nothing more
            answer = await client.post("/fakepay", json={**pay, "key": "fake-key"})
            assert (await answer.json())["ok"] is True
        async with app[DATABASE].read() as conn:
            [payment] = (await conn.execute(select(payments))).all()
            user = (await conn.execute(select(users).where(users.c.id == USER))).one()
            paid = (await conn.execute(select(orders.c.status))).scalar_one()
        assert (payment.provider, payment.state, payment.amount) == ("fakepay", "paid", 1_500_000)
        assert (user.tariff, paid) == ("PLUS", "paid")
        # The shared billing queued the buyer's "payment received" message, sent once.
        await wait_until_drained(app[DATABASE])
        received = [call for call in telegram.delivered(USER) if call is not checkout]
        assert len(received) == 1 and "PLUS" in received[0].text
