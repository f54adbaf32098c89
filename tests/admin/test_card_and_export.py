"""A payment's card (labels and reasons in each language, the buyer, Back, the Click
reversal question with Cancel) and the exports Excel opens (xlsx read back with openpyxl,
CSV with its byte-order mark and `;`)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

import openpyxl
import pytest

from tests.admin.helpers import (
    ADMIN,
    assert_valid_html,
    button,
    plain,
    press_on,
    screen,
    shown_ids,
)
from tests.conftest import Telegram
from tests.fake_telegram import FakeTelegram


@pytest.mark.parametrize(
    ("language", "label", "reason"),
    [
        ("en", "Cancel reason: refund (5)", "Buyer: "),
        ("ru", "Причина отмены: возврат (5)", "Покупатель: "),
        ("uz", "Bekor qilish sababi: pul qaytarish (5)", "Xaridor: "),
    ],
)
async def test_card_speaks_the_admins_language_and_names_paymes_reason(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int], language, label, reason
) -> None:
    await tg.press(ADMIN, f"as:{shop['a2']}:0:0", language=language)
    text = screen(telegram).text
    assert_valid_html(text)
    assert label in text
    assert f'{reason}<a href="tg://user?id=1001">Ali</a> @Ali_Khan (1001)' in text
    assert "Cancel reason: 5" not in text


async def test_card_lists_the_buyers_other_payments_and_back_returns_the_page(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    await tg.message(ADMIN, "/payments month <b>")
    await tg.message(ADMIN, "/payments payme")
    page = screen(telegram)
    assert shown_ids(page) == [shop[n] for n in ("b1", "b3", "a2", "c2")]
    await press_on(tg, page, next(b["callback_data"] for b in page.buttons if b["text"] == "2"))
    card = screen(telegram)
    assert card.method == "editMessageText"
    assert plain(card.text).startswith(f"🔎 payme\nPayment #{shop['b3']} 🧪 TEST")
    lines = plain(card.text).splitlines()
    others = lines[lines.index("Buyer's other payments: 2") + 1 :]
    assert [line.split()[1] for line in others] == [f"#{shop['b1']}", f"#{shop['b2']}"]
    await press_on(tg, card, button(card, "◀ Back to the list"))
    assert screen(telegram).text == page.text
    assert shown_ids(screen(telegram)) == shown_ids(page)


async def test_click_reversal_question_says_what_it_does_and_cancel_changes_nothing(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    await tg.message(ADMIN, "/payments click paid")
    page = screen(telegram)
    await press_on(tg, page, next(b["callback_data"] for b in page.buttons if b["text"] == "1"))
    card = screen(telegram)
    await press_on(tg, card, button(card, "Record Click reversal"))
    question = screen(telegram)
    assert "This does not return any money" in question.text
    assert "already made in Click's merchant cabinet" in question.text
    await press_on(tg, question, button(question, "Cancel"))
    assert screen(telegram).text == card.text
    await press_on(tg, screen(telegram), button(screen(telegram), "◀ Back to the list"))
    assert screen(telegram).text == page.text


async def test_xlsx_opens_with_types_a_frozen_header_and_sums(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    await tg.message(ADMIN, "/export")  # this month: everything but c3 (October) and b3 (test)
    document = (await telegram.wait_for("sendDocument")).params
    assert document["document"]["filename"] == "payments_2026-11-01_2026-11-30.xlsx"
    assert document["caption"] == (
        "7 payments, 01.11.2026 – 30.11.2026; paid 84 000 so'm, refunded 39 000 so'm"
    )
    book = openpyxl.load_workbook(io.BytesIO(document["document"]["data"]))
    sheet = book.active
    assert sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:8] == (
        "Payment", "Created", "Provider", "Provider id", "Click paydoc id", "Order number",
        "Buyer id", "Buyer name",
    )  # fmt: skip
    body = rows[1:-2]
    assert sorted(row[0] for row in body) == sorted(
        shop[n] for n in ("a1", "a2", "a3", "b1", "b2", "c1", "c2")
    )
    a2 = next(row for row in body if row[0] == shop["a2"])
    assert isinstance(a2[1], datetime) and a2[1] == datetime(2026, 11, 9, 12, 0)
    assert a2[2] == "Payme" and a2[5].startswith("1001_PRO_") and a2[7] == "Ali"
    assert a2[10] == 39000 and isinstance(a2[10], int | float | Decimal)
    assert a2[11] == "refunded" and a2[14] == "5" and a2[15] in ("", None)
    assert rows[-2][0] == "Paid in all" and rows[-2][10] == 84000
    assert rows[-1][0] == "Refunded in all" and rows[-1][10] == 39000
    assert sheet.cell(2, 11).number_format == "#,##0.00"


async def test_csv_has_a_bom_semicolons_names_and_the_test_flag_when_asked(
    tg: Telegram, telegram: FakeTelegram, shop: dict[str, int]
) -> None:
    await tg.message(ADMIN, "/export csv month", language="ru")
    data = (await telegram.wait_for("sendDocument")).params["document"]["data"]
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][7] == "Имя покупателя"
    names = {row[7] for row in rows[1:]}
    assert names == {"Ali", "Алиса", "Gʻulom"}
    assert all(row[15] == "" for row in rows[1:])
    b2 = next(row for row in rows[1:] if row[0] == str(shop["b2"]))
    assert b2[10] == "39000" and b2[1] == "2026-11-07 12:00:00" and b2[11] == "оплачен"
    await tg.message(ADMIN, "/export test csv")
    document = telegram.of("sendDocument")[-1].params
    rows = list(
        csv.reader(io.StringIO(document["document"]["data"].decode("utf-8-sig")), delimiter=";")
    )
    assert [row[0] for row in rows[1:]] == [str(shop["b3"])] and rows[1][15] == "yes"
    assert document["caption"].endswith("Test payments only.")
