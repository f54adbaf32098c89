"""/stats: figures against sums over the seeded rows, the previous period, the chart's
PNG for a phone, an empty shop, and matplotlib loaded only when a chart is drawn."""

from __future__ import annotations

import struct
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from db.clock import to_ms
from db.schema import orders, payments, periods
from tests.admin.click_payments import pay
from tests.admin.helpers import ADMIN, BASE, add_payment, days_ago, plain
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from tests.outbox_helpers import wait_until_drained
from tests.providers.click.helpers import ClickCaller
from web.keys import DATABASE

ROOT = Path(__file__).resolve().parents[2]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def som(tiyin: int) -> str:
    return f"{tiyin // 100:,}".replace(",", "\u00a0") + "\u00a0so'm"


def figures(rows: list[Any], count_change: str, sum_change: str) -> str:
    return f"{len(rows)} ({count_change}) · {som(sum(r.amount for r in rows))} ({sum_change})"


async def period_rows(client, start: int, end: int) -> dict[str, list[Any]]:
    """The seeded rows of one period, picked in Python: kept payments (and per provider
    and tariff), refunds, pending orders."""
    async with client.server.app[DATABASE].read() as conn:
        rows = (
            await conn.execute(
                select(payments, orders.c.tariff).join(orders, orders.c.id == payments.c.order_id)
            )
        ).all()
        pending = (await conn.execute(select(orders).where(orders.c.status == "pending"))).all()
    kept = [r for r in rows if r.state == "paid" and not r.test and start <= r.perform_time < end]
    return {
        "kept": kept,
        "refunds": [
            r for r in rows if r.state == "refunded" and not r.test and start <= r.cancel_time < end
        ],
        "pending": [o for o in pending if start <= to_ms(o.created_at) < end],
        **{key: [r for r in kept if key in (r.provider, r.tariff)] for key in PARTS},
    }


PARTS = ("click", "payme", "PLUS", "PRO")


async def test_stats_figures_and_changes_equal_sums_over_the_seeded_rows_of_both_periods(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], client, clock: FakeClock
) -> None:
    await add_payment(client, 1001, created=days_ago(9))  # the previous 7 days: Click PLUS
    await tg.message(ADMIN, "/stats 7")
    text = plain(telegram.of("sendMessage", ADMIN)[-1].text)
    day = timedelta(days=1)
    start, end = BASE - 6 * day - timedelta(hours=12), BASE + timedelta(hours=12)
    now = await period_rows(client, to_ms(start), to_ms(end))
    before = await period_rows(client, to_ms(start - 7 * day), to_ms(start))
    lines = text.splitlines()
    assert lines[:2] == [
        "7 days: 04.11.2026 – 10.11.2026",
        "Against the previous 7 days: 28.10.2026 – 03.11.2026",
    ]
    # Each figure of both periods, as the rows give them; the changes, worked out by hand.
    assert lines[2] == f"Paid: {figures(now['kept'], '▲ 3', '▲ 460%')}"
    assert (len(now["kept"]), len(before["kept"])) == (4, 1)
    assert [r.amount for r in before["kept"]] == [1_500_000]  # 84 000 against 15 000: ▲ 460%
    assert lines[3] == f"Refunds: {figures(now['refunds'], '▲ 1', 'new')}"
    assert (len(now["refunds"]), len(before["refunds"])) == (1, 0)
    assert lines[4] == f"Pending orders: {len(now['pending'])} (±0)"
    assert (len(now["pending"]), len(before["pending"])) == (1, 1)  # b1 now; a3 before
    click, payme, plus, pro = (now[key] for key in PARTS)
    assert lines[6:9] == [
        "By provider",
        f"Click: {figures(click, '▲ 2', '▲ 360%')}",
        f"Payme: {figures(payme, '▲ 1', 'new')}",
    ]
    assert [len(before[key]) for key in PARTS] == [1, 0, 1, 0]
    assert lines[10:13] == [
        "By tariff",
        f"PLUS: {figures(plus, '▲ 2', '▲ 200%')}",
        f"PRO: {figures(pro, '▲ 1', 'new')}",
    ]
    assert lines[14:17] == [
        "Active subscribers now (change in 7 days)",
        "PLUS: 0 (±0)",
        "PRO: 0 (±0)",
    ]
    photo = await telegram.wait_for("sendPhoto")
    data = photo.params["photo"]["data"]
    assert png_size(data) == (1170, 1020) and len(data) > 20_000
    assert photo.params["caption"] == lines[0]


async def test_active_subscribers_now_and_as_many_days_ago_equal_the_ledger_periods(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    """Buyers pay through Click's real routes at travelled times; /stats 7 counts who runs
    now and 7 days ago, against a direct count over the periods table."""
    click = ClickCaller(client)
    for user_id, tariff, paid_days_ago in (
        (4001, "PLUS", 10),  # runs now and 7 days ago
        (4002, "PRO", 2),  # now only
        (4003, "PLUS", 35),  # 7 days ago only (30 days: over 5 days ago)
        (4004, "PLUS", 40),  # neither
        (4005, "PRO", 20),  # both
        (4006, "PLUS", 40),  # lapsed 10 days ago: not 7 days ago…
        (4006, "PLUS", 2),  # …though back now
    ):
        clock.now = to_ms(BASE - timedelta(days=paid_days_ago))
        await pay(click, user_id, tariff)
    clock.now = to_ms(BASE)
    await wait_until_drained(client.server.app[DATABASE])  # the admin's payment notices
    await tg.message(ADMIN, "/stats 7")
    (text,) = [c.text for c in telegram.of("sendMessage", ADMIN) if c.text.startswith("<b>7 days")]
    lines = plain(text).splitlines()
    async with client.server.app[DATABASE].read() as conn:
        rows = (await conn.execute(select(periods))).all()

    def running(at: datetime) -> dict[str, int]:
        moment = to_ms(at)
        tariffs = [
            r.tariff for r in rows if r.credited_at <= moment < r.credited_at + r.duration_ms
        ]
        return {code: tariffs.count(code) for code in ("PLUS", "PRO")}

    now, before = running(BASE), running(BASE - timedelta(days=7))
    assert (now, before) == ({"PLUS": 2, "PRO": 2}, {"PLUS": 2, "PRO": 1})
    start = lines.index("Active subscribers now (change in 7 days)")
    assert lines[start + 1 : start + 3] == [
        f"PLUS: {now['PLUS']} (±0)",
        f"PRO: {now['PRO']} (▲ 1)",
    ]


async def test_an_empty_shop_reads_zero_and_draws_no_payments_yet(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)
    await tg.message(ADMIN, "/stats", language="ru")
    text = plain(telegram.of("sendMessage", ADMIN)[-1].text)
    assert "Оплачено: 0 (±0) · 0\u00a0сум (±0)" in text and "-0" not in text
    photo = await telegram.wait_for("sendPhoto")
    empty = photo.params["photo"]["data"]
    assert png_size(empty) == (1170, 1020)
    await tg.message(ADMIN, "/stats 0", language="ru")
    assert telegram.of("sendMessage", ADMIN)[-1].text.startswith("Использование: /stats")


def test_starting_the_app_imports_no_chart_or_spreadsheet_library() -> None:
    """They are loaded when an admin draws a chart or exports (tens of MiB held for the
    life of the process otherwise; openpyxl alone brings numpy and PIL along)."""
    heavy = ("matplotlib", "openpyxl", "numpy", "PIL")
    code = f"import sys, web.app, web.__main__; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
