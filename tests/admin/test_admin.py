"""The admin console through the webhook, asserted on what the fake Bot API received."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from db.clock import to_ms
from db.schema import notifications, orders, payments, users
from tests.admin.helpers import assert_valid_html, button, press_on
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import FakeTelegram
from web.keys import DATABASE

ADMIN = 900001
POINTER = (
    "I did not understand that. Send /tariffs to choose a plan or /help for help.\n"
    "Questions about a payment: /paysupport"
)
# 2026-11-10 12:00 Tashkent
BASE = datetime(2026, 11, 10, 7, 0, tzinfo=UTC)


async def seed(client) -> dict[str, int]:
    """Three users, 25 payments over 25 days: providers, states and tariffs vary."""
    db = client.server.app[DATABASE]
    ids: dict[str, int] = {}
    async with db.transaction() as conn:
        await conn.execute(
            insert(users),
            [
                {"id": 1001, "first_name": "Ali", "username": "ali", "created_at": BASE,
                 "tariff": "PRO", "tariff_expires_at": BASE + timedelta(days=400)},
                {"id": 1002, "first_name": "Vali", "username": "vali", "created_at": BASE,
                 "tariff": None, "tariff_expires_at": None},
                {"id": 1003, "first_name": "Gulnora", "username": None, "created_at": BASE,
                 "tariff": None, "tariff_expires_at": None},
            ],
        )  # fmt: skip
        for number in range(25):
            user_id = (1001, 1002, 1003)[number % 3]
            tariff = "PRO" if number % 4 == 0 else "PLUS"
            amount = 3_900_000 if tariff == "PRO" else 1_500_000
            created = BASE - timedelta(days=24 - number)
            order_id = (
                await conn.execute(
                    insert(orders).values(
                        merchant_trans_id=f"{user_id}_{tariff}_{int(created.timestamp())}",
                        user_id=user_id, tariff=tariff, amount=amount,
                        status="paid" if number % 5 != 1 else "pending", created_at=created,
                    ).returning(orders.c.id)
                )
            ).scalar_one()  # fmt: skip
            provider = "click" if number % 2 == 0 else "payme"
            state = ("paid", "pending", "cancelled", "refunded", "paid")[number % 5]
            provider_id = f"{7000 + number}" if provider == "click" else f"{number:024x}"
            payment_id = (
                await conn.execute(
                    insert(payments).values(
                        provider=provider, provider_id=provider_id, order_id=order_id,
                        amount=amount, state=state,
                        click_paydoc_id=990000 + number if provider == "click" else None,
                        payme_time=to_ms(created) if provider == "payme" else None,
                        create_time=to_ms(created),
                        perform_time=to_ms(created) + 1000 if state in ("paid", "refunded")
                        else None,
                        granted_days=30 if state in ("paid", "refunded") else None,
                    ).returning(payments.c.id)
                )
            ).scalar_one()  # fmt: skip
            ids[f"p{number}"] = payment_id
    return ids


def shown_ids(call) -> list[int]:
    return [
        int(button["callback_data"].split(":")[1])
        for button in call.buttons
        if button["callback_data"].startswith("as:")
    ]


@pytest.fixture
async def seeded(client, clock: FakeClock) -> dict[str, int]:
    clock.now = to_ms(BASE + timedelta(hours=1))
    return await seed(client)


async def test_non_admins_get_the_unknown_command_answer(
    tg: Telegram, telegram: FakeTelegram, seeded, client
) -> None:
    for command in ("/payments", "/payments paid", "/stats", "/export"):
        await tg.message(1001, command)
        assert telegram.of("sendMessage", 1001)[-1].text == POINTER
    before = len(telegram.calls)
    for data in ("ap:f:0:0", f"as:{seeded['p0']}:0:0", f"ar:{seeded['p0']}:1:0:0"):
        await tg.press(1001, data)
        answer = telegram.of("answerCallbackQuery")[-1].params
        assert answer["text"] == "This button is out of date. Send /tariffs to start again."
    assert {c.method for c in telegram.calls[before:]} == {"answerCallbackQuery"}
    async with client.server.app[DATABASE].read() as conn:
        state = await conn.scalar(select(payments.c.state).where(payments.c.id == seeded["p0"]))
    assert state == "paid"


async def test_payments_pages_edit_the_same_message(
    tg: Telegram, telegram: FakeTelegram, seeded
) -> None:
    await tg.message(ADMIN, "/payments")
    first = telegram.of("sendMessage", ADMIN)[-1]
    assert shown_ids(first) == [seeded[f"p{n}"] for n in range(24, 14, -1)]
    assert first.text.splitlines()[0].startswith("Found: 25 · paid ")
    line = first.text.splitlines()[2]
    assert line.startswith(
        "1. 10.11.2026 12:00 · Ali @ali (1001) · PRO · 39 000 so'm · Click · paid"
    )
    nav = [b["text"] for b in first.buttons if not b["callback_data"].startswith("as:")]
    assert nav == ["▶"]
    message_id = 4242
    await press_on(tg, first, button(first, "▶"), message_id=message_id)
    edit = telegram.of("editMessageText", ADMIN)[-1]
    assert edit.params["message_id"] == message_id
    assert shown_ids(edit) == [seeded[f"p{n}"] for n in range(14, 4, -1)]
    assert [b["text"] for b in edit.buttons if b["callback_data"].startswith("ap:")] == [
        "◀", "▶",
    ]  # fmt: skip
    await press_on(tg, edit, button(edit, "▶"), message_id=message_id)
    last = telegram.of("editMessageText", ADMIN)[-1]
    assert shown_ids(last) == [seeded[f"p{n}"] for n in range(4, -1, -1)]
    assert len(telegram.of("sendMessage", ADMIN)) == 1


async def test_a_page_tap_on_a_deleted_message_answers_anew(
    tg: Telegram, telegram: FakeTelegram, seeded
) -> None:
    """Telegram cannot edit a message the admin deleted: the page comes as a new one."""
    await tg.message(ADMIN, "/payments")
    first = telegram.of("sendMessage", ADMIN)[-1]
    await press_on(tg, first, button(first, "▶"), message_id=4243, deleted=True)
    assert not telegram.of("editMessageText", ADMIN)[-1].ok
    again = telegram.of("sendMessage", ADMIN)[-1]
    assert again is not first and again.ok
    assert shown_ids(again) == [seeded[f"p{n}"] for n in range(14, 4, -1)]
    # The same tap on the new message, which already shows this page: nothing changes.
    await press_on(tg, first, button(first, "▶"), message_id=4244)
    await press_on(tg, first, button(first, "▶"), message_id=4244)
    assert len(telegram.of("sendMessage", ADMIN)) == 2


@pytest.mark.parametrize(
    ("query", "numbers"),
    [
        ("1002", [22, 19, 16, 13, 10, 7, 4, 1]),
        ("@vali", [22, 19, 16, 13, 10, 7, 4, 1]),
        ("@VALI", [22, 19, 16, 13, 10, 7, 4, 1]),
        ("7004", [4]),  # click_trans_id
        ("990006", [6]),  # click_paydoc_id
        (f"{5:024x}", [5]),  # Payme transaction id
        ("refunded", [23, 18, 13, 8, 3]),
        ("payme refunded", [23, 13, 3]),
        ("click pro", [24, 20, 16, 12, 8, 4, 0]),
        ("PLUS 1003", [23, 17, 14, 11, 5, 2]),
        ("2026-11-10", [24]),
        ("2026-11-08..2026-11-09", [23, 22]),
        ("1001 2026-11-01..2026-11-10 paid", [24, 15]),
        ("nothing-like-this", []),
    ],
)
async def test_search_finds_exactly_the_right_rows(
    tg: Telegram, telegram: FakeTelegram, seeded, query: str, numbers: list[int]
) -> None:
    await tg.message(ADMIN, f"/payments {query}")
    call = telegram.of("sendMessage", ADMIN)[-1]
    assert shown_ids(call) == [seeded[f"p{n}"] for n in numbers][:10]
    if not numbers:
        assert "No payments found." in call.text


async def test_search_by_order_id_full_and_prefix(
    tg: Telegram, telegram: FakeTelegram, seeded, client
) -> None:
    async with client.server.app[DATABASE].read() as conn:
        mti = await conn.scalar(
            select(orders.c.merchant_trans_id)
            .join(payments, payments.c.order_id == orders.c.id)
            .where(payments.c.id == seeded["p7"])
        )
    await tg.message(ADMIN, f"/payments {mti}")
    assert shown_ids(telegram.of("sendMessage", ADMIN)[-1]) == [seeded["p7"]]
    await tg.message(ADMIN, "/payments 1003_PRO")
    assert shown_ids(telegram.of("sendMessage", ADMIN)[-1]) == [seeded["p20"], seeded["p8"]]
    await tg.message(ADMIN, "/payments 2026-13-01")
    assert "Cannot read “2026-13-01”." in telegram.of("sendMessage", ADMIN)[-1].text


async def test_details_show_every_id(tg: Telegram, telegram: FakeTelegram, seeded) -> None:
    await tg.press(ADMIN, f"as:{seeded['p4']}:0:0")
    text = telegram.of("editMessageText", ADMIN)[-1].text
    assert_valid_html(text)
    assert f"Payment #{seeded['p4']}" in text
    assert "Click transaction (click_trans_id): <code>7004</code>" in text
    assert "Click document (click_paydoc_id): <code>990004</code>" in text
    assert "Amount: 39 000 so'm" in text
    assert 'Buyer: <a href="tg://user?id=1002">Vali</a> @vali (1002)' in text
    assert "Cancel reason" not in text
    assert "Buyer's other payments: 7" in text
    await tg.press(ADMIN, f"as:{seeded['p5']}:0:0")
    text = telegram.of("editMessageText", ADMIN)[-1].text
    assert f"Payme transaction: <code>{5:024x}</code>" in text
    assert "Buyer's plan now: none" in text


async def test_recording_a_click_reversal_takes_the_days_back(
    tg: Telegram, telegram: FakeTelegram, seeded, client
) -> None:
    payment_id = seeded["p24"]  # Ali's paid Click PRO payment; Ali has PRO
    await tg.press(ADMIN, f"as:{payment_id}:0:0")
    details = telegram.of("editMessageText", ADMIN)[-1]
    assert [b["callback_data"] for b in details.buttons] == [
        f"ar:{payment_id}:0:0:0", f"ab:1001:{payment_id}:0:0", "ap:f:0:0",
    ]  # fmt: skip
    await tg.press(ADMIN, f"ar:{payment_id}:0:0:0", message_id=77)
    confirm = telegram.of("editMessageText", ADMIN)[-1]
    assert "only records here a reversal you have already made in Click" in confirm.text
    assert [b["callback_data"] for b in confirm.buttons] == [
        f"ar:{payment_id}:1:0:0", f"as:{payment_id}:0:0",
    ]  # fmt: skip
    assert [b["text"] for b in confirm.buttons][1] == "Cancel"
    db = client.server.app[DATABASE]
    async with db.read() as conn:
        before = await conn.scalar(select(users.c.tariff_expires_at).where(users.c.id == 1001))
    await tg.press(ADMIN, f"ar:{payment_id}:1:0:0", message_id=77)
    async with db.read() as conn:
        row = (await conn.execute(select(payments).where(payments.c.id == payment_id))).one()
        after = await conn.scalar(select(users.c.tariff_expires_at).where(users.c.id == 1001))
        kinds = list(await conn.scalars(select(notifications.c.kind)))
    assert row.state == "refunded" and row.cancel_note == f"reversal recorded by admin {ADMIN}"
    assert before - after == timedelta(days=30)
    assert "payment_refunded" in kinds
    assert "Click · refunded" in telegram.of("editMessageText", ADMIN)[-1].text
    # A second confirmation (double tap) changes nothing more.
    await tg.press(ADMIN, f"ar:{payment_id}:1:0:0", message_id=77)
    assert telegram.of("answerCallbackQuery")[-1].params["text"] == (
        "This payment is not a paid Click payment any more."
    )
    async with db.read() as conn:
        assert (
            await conn.scalar(select(users.c.tariff_expires_at).where(users.c.id == 1001)) == after
        )


async def test_export_csv_parses_back(tg: Telegram, telegram: FakeTelegram, seeded) -> None:
    await tg.message(ADMIN, "/export 2026-11-01..2026-11-10 csv")
    document = await telegram.wait_for("sendDocument")
    assert document.params["document"]["filename"] == "payments_2026-11-01_2026-11-10.csv"
    text = document.params["document"]["data"].decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][:3] == ["Payment", "Created", "Provider"]
    body = rows[1:]
    assert [int(row[0]) for row in body] == [seeded[f"p{n}"] for n in range(15, 25)]
    assert [row[10] for row in body] == ["39000" if n % 4 == 0 else "15000" for n in range(15, 25)]
    assert body[-1][1] == "2026-11-10 12:00:00" and body[-1][3] == "7024"
    assert document.params["caption"].startswith("10 payments, 01.11.2026 – 10.11.2026; paid ")
    await tg.message(ADMIN, "/export csv")  # this month by default
    default = telegram.of("sendDocument")[-1]
    assert len(default.params["document"]["data"].decode().splitlines()) == 1 + 10
    await tg.message(ADMIN, "/export 2026-13-01")
    assert telegram.of("sendMessage", ADMIN)[-1].text.startswith("Usage: /export")
