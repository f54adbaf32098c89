"""The timeline rules of db/ledger.py, table-driven, through the real Click and Payme
routes (docs/ledger.md: "The rules, as a buyer sees them").

Each scenario buys, waits and refunds at given days and then asserts the exact end of
every period, the user's remaining timeline, and every notice queued for the user (kind
and the timeline it shows). Days are counted from the scenario's start; the defaults
are PLUS 15 000 so'm / 30 days and PRO 39 000 so'm / 30 days. Refunds go through Payme's
CancelTransaction (a Click reversal is the admin's, tests/admin).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select

from bot.texts import format_moment
from db import ledger, outbox
from db.admin_alerts import DOUBLE_PAYMENT
from db.clock import to_datetime
from db.database import Database
from db.orders import Order, get_order
from db.schema import notifications, orders, users
from db.users import get_user
from tests.conftest import FakeClock
from tests.fake_telegram import FakeTelegram
from tests.providers.click.helpers import ClickCaller
from tests.providers.payme.helpers import AUTH, PaymeCaller, account
from web.keys import DATABASE, SCHEDULER

DAY = ledger.DAY_MS
PRICES = {"PLUS": 1_500_000, "PRO": 3_900_000}
ADMIN = 900001  # tests/conftest.py ADMIN_IDS
_ids = itertools.count(7_000_000)


def som(tiyin: int) -> str:
    return f"{tiyin // 100}.{tiyin % 100:02d}"


class Shop:
    """A merchant's view of one user: orders, payments through the real routes, refunds."""

    def __init__(self, client: TestClient, clock: FakeClock, user_id: int) -> None:
        self.click, self.payme = ClickCaller(client), PaymeCaller(client)
        self.db: Database = client.server.app[DATABASE]
        self.client, self.clock, self.user_id = client, clock, user_id
        self.start = clock.now
        self.payme_ids: dict[str, str] = {}
        self.payment_ids: dict[str, int] = {}

    def at(self, days: float) -> int:
        return self.start + round(days * DAY)

    async def order(
        self, tariff: str, *, days: int = 30, amount: int | None = None, mti: str | None = None
    ) -> Order:
        """An order as `open_order` makes one, with the snapshot given (a configuration of
        another moment when it differs from today's)."""
        now = to_datetime(self.clock.now)
        mti = mti or f"{self.user_id}_{tariff}_{next(_ids)}"
        async with self.db.transaction() as conn:
            if await get_user(conn, self.user_id) is None:
                await conn.execute(
                    insert(users).values(
                        id=self.user_id, first_name="Buyer", language="en", created_at=now
                    )
                )
            await conn.execute(
                insert(orders).values(
                    merchant_trans_id=mti,
                    user_id=self.user_id,
                    tariff=tariff,
                    amount=PRICES[tariff] if amount is None else amount,
                    days=days,
                    status="pending",
                    created_at=now,
                )
            )
            order = await get_order(conn, mti)
        assert order is not None
        return order

    async def click_prepare(self, order: Order) -> tuple[int, int]:
        trans = next(_ids)
        prepared = await self.click.prepare(
            order.merchant_trans_id, trans, amount=som(order.amount)
        )
        assert prepared["error"] == 0, prepared
        return trans, prepared["merchant_prepare_id"]

    async def click_complete(self, order: Order, trans: int, prepare_id: int) -> int:
        done = await self.click.complete(
            order.merchant_trans_id, trans, prepare_id, amount=som(order.amount)
        )
        assert done["error"] == 0, done
        return prepare_id

    async def pay_click(self, order: Order) -> int:
        return await self.click_complete(order, *await self.click_prepare(order))

    async def pay_payme(self, order: Order, label: str, auth: str = AUTH) -> int:
        payme_id = f"{label}-{next(_ids)}".ljust(24, "0")[:24]
        created = await self.payme.call(
            "CreateTransaction",
            auth=auth,
            id=payme_id,
            time=self.clock.now,
            amount=order.amount,
            account=account(order.merchant_trans_id),
        )
        assert "result" in created, created
        performed = await self.payme.call("PerformTransaction", auth=auth, id=payme_id)
        assert performed["result"]["state"] == 2, performed
        self.payme_ids[label] = payme_id
        return int(performed["result"]["transaction"])

    async def refund(self, label: str, auth: str = AUTH) -> None:
        answer = await self.payme.call(
            "CancelTransaction", auth=auth, id=self.payme_ids[label], reason=5
        )
        assert answer["result"]["state"] == -2, answer

    async def timeline(self) -> ledger.Timeline:
        async with self.db.read() as conn:
            return await ledger.user_timeline(conn, self.user_id)

    async def period_ids(self) -> dict[int, int]:
        """payment id -> period id"""
        async with self.db.read() as conn:
            return {
                p.payment_id: p.id
                for p in await ledger.user_periods(conn, self.user_id)
                if p.payment_id is not None
            }

    async def notices(self, user_id: int | None = None) -> list[Any]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(notifications.c.kind, notifications.c.payload)
                .where(notifications.c.user_id == (user_id or self.user_id))
                .order_by(notifications.c.id)
            )
            return list(rows)

    def days_of(self, moment: int) -> float:
        return round((moment - self.start) / DAY, 6)

    def shown(self, payload: dict[str, Any]) -> list[tuple[str, float]]:
        """A notice's timeline as (tariff, end day)."""
        return [(tariff, self.days_of(end)) for tariff, _start, end in payload["timeline"]]

    async def run_scheduler(self) -> None:
        await self.client.server.app[SCHEDULER].run_due()


@dataclass(frozen=True)
class Scenario:
    name: str
    # ("buy", label, tariff, provider[, days]) | ("wait", days) | ("refund", label)
    # | ("double", label1, label2, tariff): one order, Click Prepare, Payme paid, Click done
    steps: list[tuple[Any, ...]]
    timeline: list[tuple[str, float]]  # what remains ahead: (tariff, end day)
    ends: dict[str, float]  # label -> the day its period ran out (or was removed)
    notices: list[tuple[str, list[tuple[str, float]]]]  # (kind, timeline shown)
    refunded_plan: bool = False  # the plan ended by a refund (cache tariff is NULL)
    admin_alerts: int = 0
    removed: dict[str, float] = field(default_factory=dict)  # label -> days removed


R, F = outbox.PAYMENT_RECEIVED, outbox.PAYMENT_REFUNDED

SCENARIOS = [
    Scenario(
        "first buy starts now",
        [("buy", "a", "PLUS", "click")],
        [("PLUS", 30)],
        {"a": 30},
        [(R, [("PLUS", 30)])],
    ),
    Scenario(
        "same tariff follows its last period",
        [("buy", "a", "PLUS", "click"), ("wait", 10), ("buy", "b", "PLUS", "payme")],
        [("PLUS", 60)],
        {"a": 30, "b": 60},
        [(R, [("PLUS", 30)]), (R, [("PLUS", 60)])],
    ),
    Scenario(
        "PRO bought with 10 PLUS days left runs first, PLUS resumes after",
        [("buy", "a", "PLUS", "click"), ("wait", 20), ("buy", "b", "PRO", "payme")],
        [("PRO", 50), ("PLUS", 60)],
        {"a": 60, "b": 50},
        [(R, [("PLUS", 30)]), (R, [("PRO", 50), ("PLUS", 60)])],
    ),
    Scenario(
        "PLUS bought during PRO is queued after PRO",
        [("buy", "a", "PRO", "payme"), ("wait", 5), ("buy", "b", "PLUS", "click")],
        [("PRO", 30), ("PLUS", 60)],
        {"a": 30, "b": 60},
        [(R, [("PRO", 30)]), (R, [("PRO", 30), ("PLUS", 60)])],
    ),
    Scenario(
        "an expired plan counts for nothing: the gap is not granted",
        [("buy", "a", "PLUS", "click"), ("wait", 40), ("buy", "b", "PRO", "click")],
        [("PRO", 70)],
        {"a": 30, "b": 70},
        [(R, [("PLUS", 30)]), (R, [("PRO", 70)])],
    ),
    Scenario(
        "refund of the first period while it is paused: its unused days disappear",
        [
            ("buy", "a", "PLUS", "payme"),
            ("wait", 10),
            ("buy", "b", "PRO", "click"),
            ("wait", 5),
            ("refund", "a"),
        ],
        [("PRO", 40)],
        {"a": 15, "b": 40},
        [
            (R, [("PLUS", 30)]),
            (R, [("PRO", 40), ("PLUS", 60)]),
            (F, [("PRO", 40)]),
        ],
        removed={"a": 20},
    ),
    Scenario(
        "refund of the middle of three PLUS periods: the last moves earlier",
        [
            ("buy", "a", "PLUS", "click"),
            ("buy", "b", "PLUS", "payme"),
            ("buy", "c", "PLUS", "click"),
            ("wait", 10),
            ("refund", "b"),
        ],
        [("PLUS", 60)],
        {"a": 30, "b": 10, "c": 60},
        [
            (R, [("PLUS", 30)]),
            (R, [("PLUS", 60)]),
            (R, [("PLUS", 90)]),
            (F, [("PLUS", 60)]),
        ],
        removed={"b": 30},
    ),
    Scenario(
        "refund of the only, running period ends the plan now as refunded",
        [("buy", "a", "PRO", "payme"), ("wait", 10), ("refund", "a")],
        [],
        {"a": 10},
        [(R, [("PRO", 30)]), (F, [])],
        refunded_plan=True,
        removed={"a": 20},
    ),
    Scenario(
        "refund of a fully used period changes nothing",
        [
            ("buy", "a", "PLUS", "payme"),
            ("wait", 31),
            ("buy", "b", "PRO", "click"),
            ("wait", 9),
            ("refund", "a"),
        ],
        [("PRO", 61)],
        {"a": 30, "b": 61},
        [(R, [("PLUS", 30)]), (R, [("PRO", 61)]), (F, [("PRO", 61)])],
        removed={"a": 0},
    ),
    Scenario(
        "refund of the running PRO: the paused PLUS resumes at once",
        [
            ("buy", "a", "PLUS", "click"),
            ("wait", 10),
            ("buy", "b", "PRO", "payme"),
            ("wait", 10),
            ("refund", "b"),
        ],
        [("PLUS", 40)],
        {"a": 40, "b": 20},
        [
            (R, [("PLUS", 30)]),
            (R, [("PRO", 40), ("PLUS", 60)]),
            (F, [("PLUS", 40)]),
        ],
        removed={"b": 20},
    ),
    Scenario(
        "PRO, PLUS, PRO: the second PRO follows the first; refund of the first PRO",
        [
            ("buy", "a", "PRO", "payme"),
            ("wait", 5),
            ("buy", "b", "PLUS", "click"),
            ("wait", 5),
            ("buy", "c", "PRO", "click"),
            ("wait", 5),
            ("refund", "a"),
        ],
        [("PRO", 45), ("PLUS", 75)],
        {"a": 15, "b": 75, "c": 45},
        [
            (R, [("PRO", 30)]),
            (R, [("PRO", 30), ("PLUS", 60)]),
            (R, [("PRO", 60), ("PLUS", 90)]),
            (F, [("PRO", 45), ("PLUS", 75)]),
        ],
        removed={"a": 15},
    ),
    Scenario(
        "after a price change the order's snapshot counts: 45 days bought, 40 refunded",
        [("buy", "a", "PLUS", "payme", 45), ("wait", 5), ("refund", "a")],
        [],
        {"a": 5},
        [(R, [("PLUS", 45)]), (F, [])],
        refunded_plan=True,
        removed={"a": 40},
    ),
    Scenario(
        "a double payment is two periods, and the admin is told",
        [("double", "a", "b", "PLUS")],
        [("PLUS", 60)],
        {"a": 30, "b": 60},
        [(R, [("PLUS", 30)]), (R, [("PLUS", 60)])],
        admin_alerts=1,
    ),
    Scenario(
        "refund of the last queued period: the plan ends where the rest ends",
        [
            ("buy", "a", "PRO", "click"),
            ("buy", "b", "PLUS", "payme"),
            ("wait", 3),
            ("refund", "b"),
        ],
        [("PRO", 30)],
        {"a": 30, "b": 3},
        [(R, [("PRO", 30)]), (R, [("PRO", 30), ("PLUS", 60)]), (F, [("PRO", 30)])],
        removed={"b": 30},
    ),
]


async def play(shop: Shop, steps: list[tuple[Any, ...]]) -> dict[str, int]:
    """Run the steps; returns label -> payment id."""
    paid: dict[str, int] = {}
    for step in steps:
        if step[0] == "wait":
            shop.clock.advance(days=step[1])
        elif step[0] == "buy":
            _, label, tariff, provider, *days = step
            order = await shop.order(tariff, days=days[0] if days else 30)
            if provider == "click":
                paid[label] = await shop.pay_click(order)
            else:
                paid[label] = await shop.pay_payme(order, label)
        elif step[0] == "refund":
            await shop.refund(step[1])
        elif step[0] == "double":
            _, first, second, tariff = step
            order = await shop.order(tariff)
            trans, prepare_id = await shop.click_prepare(order)
            paid[first] = await shop.pay_payme(order, first)
            paid[second] = await shop.click_complete(order, trans, prepare_id)
    return paid


async def _delivered(telegram: FakeTelegram, chat_id: int, count: int) -> list[str]:
    """The payment received / refunded messages the user got, in order."""
    for _ in range(200):
        texts = [c.text for c in telegram.delivered(chat_id) if c.text.startswith(("✅", "↩️"))]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} messages expected, got {texts}")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_timeline_rule(
    client: TestClient, clock: FakeClock, telegram: FakeTelegram, scenario: Scenario
) -> None:
    shop = Shop(client, clock, 5_000_000 + SCENARIOS.index(scenario))
    paid = await play(shop, scenario.steps)

    timeline = await shop.timeline()
    ahead = [(s.tariff, shop.days_of(s.end)) for s in timeline.ahead(clock.now)]
    assert ahead == scenario.timeline
    period_of = await shop.period_ids()
    ends = {
        label: shop.days_of(timeline.fates[period_of[pid]].end or 0) for label, pid in paid.items()
    }
    assert ends == scenario.ends
    removed = {
        label: timeline.fates[period_of[paid[label]]].removed_ms / DAY for label in scenario.removed
    }
    assert removed == scenario.removed

    queued = [n for n in await shop.notices() if n[0] in (R, F)]  # not the scheduler's
    assert [(kind, shop.shown(payload)) for kind, payload in queued] == scenario.notices
    for (_kind, payload), label in zip(
        [n for n in queued if n[0] == F],
        [s[1] for s in scenario.steps if s[0] == "refund"],
        strict=True,
    ):
        assert payload["removed_ms"] == round(scenario.removed[label] * DAY)

    # What the user read: the same timeline, in words and Tashkent time.
    expected = [
        ", then ".join(
            f"{tariff} until {format_moment(to_datetime(shop.at(day)))}" for tariff, day in shown
        )
        for _kind, shown in scenario.notices
    ]
    sent = await _delivered(telegram, shop.user_id, len(expected))
    for text, plan in zip(sent, expected, strict=True):
        assert (plan in text) if plan else (" until " not in text), (text, plan)

    # The cache the scheduler and /myplan read is the ledger's answer.
    async with shop.db.read() as conn:
        user = await get_user(conn, shop.user_id)
    assert user is not None
    assert user.tariff_expires_at == to_datetime(timeline.end or 0)
    expected_tariff = None if scenario.refunded_plan else timeline.segments[-1].tariff
    assert user.tariff == expected_tariff
    assert timeline.ended_by_refund is scenario.refunded_plan

    alerts = [n for n in await shop.notices(ADMIN) if n[1].get("alert") == DOUBLE_PAYMENT]
    assert len(alerts) == scenario.admin_alerts
    if alerts:
        named = {item["id"] for item in alerts[0][1]["payments"]}
        assert named == set(paid.values())

    # After the plan's end, the scheduler announces an expiry only if it was not a refund.
    if timeline.end is not None:
        clock.now = max(clock.now, timeline.end) + DAY
        await shop.run_scheduler()
        expired = [n for n in await shop.notices() if n[0] == outbox.SUBSCRIPTION_EXPIRED]
        assert len(expired) == (0 if scenario.refunded_plan else 1)
