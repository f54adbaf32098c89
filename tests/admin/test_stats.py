"""/stats: figures against sums over the seeded rows, the previous period, the chart's
PNG for a phone, an empty shop, and matplotlib loaded only when a chart is drawn."""

from __future__ import annotations

import struct
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from db.clock import to_ms
from db.schema import orders, payments
from tests.admin.helpers import ADMIN, BASE, add_payment, days_ago, plain
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from web.keys import DATABASE

ROOT = Path(__file__).resolve().parents[2]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def som(tiyin: int) -> str:
    return f"{tiyin // 100:,}".replace(",", "\u00a0") + "\u00a0so'm"


async def test_stats_figures_equal_sums_over_the_seeded_rows(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], client, clock: FakeClock
) -> None:
    await add_payment(client, 1001, created=days_ago(9))  # the previous 7 days: Click PLUS
    await tg.message(ADMIN, "/stats 7")
    text = plain(telegram.of("sendMessage", ADMIN)[-1].text)
    start, end = to_ms(BASE - timedelta(days=6, hours=12)), to_ms(BASE + timedelta(hours=12))
    async with client.server.app[DATABASE].read() as conn:
        rows = (
            await conn.execute(
                select(payments, orders.c.tariff).join(orders, orders.c.id == payments.c.order_id)
            )
        ).all()
    kept = [r for r in rows if r.state == "paid" and not r.test and start <= r.perform_time < end]
    refunded = [r for r in rows if r.state == "refunded" and start <= r.cancel_time < end]
    lines = text.splitlines()
    assert lines[0] == "7 days: 04.11.2026 – 10.11.2026"
    assert lines[1] == f"Paid: {len(kept)} · {som(sum(r.amount for r in kept))}  ▲ 460%"
    assert lines[2] == f"Refunds: {len(refunded)} · {som(sum(r.amount for r in refunded))}  ▲ 1"
    assert lines[3] == "Pending orders: 1  ±0"  # b1 now; a3 (cancelled) the week before
    click = [r for r in kept if r.provider == "click"]
    payme = [r for r in kept if r.provider == "payme"]
    assert lines[5:8] == [
        "By provider",
        f"Click: {len(click)} · {som(sum(r.amount for r in click))}  ▲ 360%",
        f"Payme: {len(payme)} · {som(sum(r.amount for r in payme))}  new",
    ]
    plus = [r for r in kept if r.tariff == "PLUS"]
    pro = [r for r in kept if r.tariff == "PRO"]
    assert lines[9:12] == [
        "By tariff",
        f"PLUS: {len(plus)} · {som(sum(r.amount for r in plus))}  ▲ 200%",
        f"PRO: {len(pro)} · {som(sum(r.amount for r in pro))}  new",
    ]
    assert lines[13:16] == ["Active subscribers now", "PLUS: 0", "PRO: 0"]
    assert (len(kept), len(refunded)) == (4, 1)  # the shop as the fixture says
    photo = await telegram.wait_for("sendPhoto")
    data = photo.params["photo"]["data"]
    assert png_size(data) == (1170, 1020) and len(data) > 20_000
    assert photo.params["caption"] == lines[0]


async def test_an_empty_shop_reads_zero_and_draws_no_payments_yet(
    tg: Telegram, telegram: FakeTelegram, client, clock: FakeClock
) -> None:
    clock.now = to_ms(BASE)
    await tg.message(ADMIN, "/stats", language="ru")
    text = plain(telegram.of("sendMessage", ADMIN)[-1].text)
    assert "Оплачено: 0 · 0 сум  ±0" in text and "-0" not in text
    photo = await telegram.wait_for("sendPhoto")
    empty = photo.params["photo"]["data"]
    assert png_size(empty) == (1170, 1020)
    await tg.message(ADMIN, "/stats 0", language="ru")
    assert telegram.of("sendMessage", ADMIN)[-1].text.startswith("Использование: /stats")


def test_starting_the_app_does_not_import_matplotlib() -> None:
    code = "import sys, web.app, web.__main__; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
