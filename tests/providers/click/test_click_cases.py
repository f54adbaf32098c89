"""The reference's additional cases (§8), over real HTTP on SQLite and PostgreSQL.

Every refused request is checked twice: its exact answer, and that no row of any table
changed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, update

from db.clock import to_datetime
from db.schema import orders, payments
from tests.conftest import FakeClock
from tests.fake_telegram import FakeTelegram
from tests.providers.click.helpers import (
    SECRET,
    ClickCaller,
    click_md5,
    complete_fields,
    failed,
    load,
    make_order,
    notices,
    ok_complete,
    ok_prepare,
    payment,
    prepare_fields,
    snapshot,
)
from web.app import create_app

MTI = "123456_PLUS_1730034567"
T = 2854711398
REQUIRED = (
    "click_trans_id",
    "service_id",
    "click_paydoc_id",
    "merchant_trans_id",
    "amount",
    "action",
    "error",
    "sign_time",
    "sign_string",
)


@pytest.fixture
async def click(client: TestClient) -> ClickCaller:
    caller = ClickCaller(client)
    await make_order(caller.db, 123456, mti=MTI)
    return caller


async def refused(click: ClickCaller, path: str, body: Any, expected: dict[str, Any]) -> None:
    before = await snapshot(click.db)
    assert await click.post(path, body) == expected, body if len(str(body)) < 300 else path
    assert await snapshot(click.db) == before


async def test_malformed_requests_get_minus_8(click: ClickCaller) -> None:
    prep = prepare_fields(MTI, T)
    comp = complete_fields(MTI, T, 17)
    bad = failed(-8)
    for name in REQUIRED:
        await refused(click, "/click/prepare", {k: v for k, v in prep.items() if k != name}, bad)
        await refused(click, "/click/prepare", prep | {name: ""}, bad)
    for name in (*REQUIRED, "merchant_prepare_id"):
        await refused(click, "/click/complete", {k: v for k, v in comp.items() if k != name}, bad)
        await refused(click, "/click/complete", comp | {name: ""}, bad)
    form = urlencode(prep)
    for body in (
        json.dumps(prep),
        "",
        form + "&pad=" + "x" * (65_537 - len(form) - 5),
        form + "&amount=15000.00",
        form + "&broken",
        form.encode() + b"&note=\xff\xfe",
        form + "&note=%FF",
        form.replace(str(T), "٢٨٥٤٧١١٣٩٨"),
        urlencode(prepare_fields(MTI, "٢٨٥٤٧١١٣٩٨")),
        urlencode(prepare_fields(MTI, T, paydoc_id="１２３")),
        urlencode(prepare_fields(MTI, T, error="1")),
        urlencode(prepare_fields(MTI, T, error="--1")),
        urlencode(prepare_fields(MTI, 2**63)),
        urlencode(prepare_fields(MTI, "1" * 20)),
        urlencode(prepare_fields(MTI, T, service_id="28420x")),
        urlencode(prepare_fields(MTI, f"{T}\n")),
    ):
        await refused(click, "/click/prepare", body, bad)
    assert len(form + "&pad=" + "x" * (65_537 - len(form) - 5)) == 65_537
    for body in (
        urlencode(complete_fields(MTI, T, 2**63)),
        urlencode(complete_fields(MTI, T, "-1")),
        urlencode(complete_fields(MTI, T, 17, error="5017")),
    ):
        await refused(click, "/click/complete", body, bad)


async def test_body_of_exactly_the_limit_is_read(click: ClickCaller) -> None:
    form = urlencode(prepare_fields(MTI, T))
    body = form + "&pad=" + "x" * (65_536 - len(form) - 5)
    assert len(body) == 65_536
    answer = await click.post("/click/prepare", body)
    assert answer == ok_prepare(T, MTI, answer["merchant_prepare_id"])


async def test_content_type_is_not_checked(click: ClickCaller) -> None:
    body = urlencode(prepare_fields(MTI, T))
    answer = await click.post("/click/prepare", body, headers={"Content-Type": "text/plain"})
    assert answer["error"] == 0


async def test_signature_failures_get_minus_1(click: ClickCaller) -> None:
    prep = prepare_fields(MTI, T)
    hashed = f"{T}28420{SECRET}{MTI}15000.000{prep['sign_time']}"
    sha1 = hashlib.sha1(hashed.encode()).hexdigest()
    await refused(click, "/click/prepare", prep | {"sign_string": sha1}, failed(-1, T, MTI))
    order = (await load(click.db, MTI, 123456))[0]
    assert order.status == "pending"
    comp = complete_fields(MTI, T, 17)
    unprepared = click_md5(str(T), "28420", SECRET, MTI, "15000.00", "1", comp["sign_time"])
    await refused(click, "/click/complete", comp | {"sign_string": unprepared}, failed(-1, T, MTI))
    foreign = prepare_fields(MTI, T, service_id="28421")
    await refused(click, "/click/prepare", foreign, failed(-1, T, MTI))
    non_ascii = prep | {"sign_string": "ё" * 32}
    await refused(click, "/click/prepare", non_ascii, failed(-1, T, MTI))
    upper = prep | {"sign_string": prep["sign_string"].upper()}
    answer = await click.post("/click/prepare", upper)
    assert answer == ok_prepare(T, MTI, answer["merchant_prepare_id"])


AMOUNTS = {
    "15000": 0,
    "15000.00": 0,
    "15000.0": 0,
    "015000.000": 0,
    "15000.01": -2,
    "15000.001": -2,
    "15000.00000000000000000000000001": -2,  # 32 characters: exact, not 28-digit rounding
    "1500000": -2,
    "0": -2,
    "300": -2,
    "-15000": -8,
    "1e4": -8,
    "15 000": -8,
    "15000,00": -8,
    "15000.": -8,
    ".5": -8,
    "": -8,
    "١٥٠٠٠": -8,
    "15000.000000000000000000000000000": -8,  # 33 characters
    "15000\n": -8,
}


async def test_amount_formats(click: ClickCaller) -> None:
    """§5 on both routes: Prepare compares with the order, Complete with the payment."""
    for number, (amount, code) in enumerate(AMOUNTS.items()):
        mti = f"{2000 + number}_PLUS_1730034567"
        await make_order(click.db, 2000 + number, mti=mti)
        trans = T + number
        if code == 0:
            answer = await click.prepare(mti, trans, amount=amount)
            assert answer == ok_prepare(trans, mti, answer["merchant_prepare_id"]), amount
            done = await click.complete(mti, trans, answer["merchant_prepare_id"], amount=amount)
            assert done == ok_complete(trans, mti, answer["merchant_prepare_id"]), amount
            continue
        expected = failed(code) if code == -8 else failed(code, trans, mti)
        await refused(click, "/click/prepare", prepare_fields(mti, trans, amount=amount), expected)
        prepared = await click.prepare(mti, trans)
        comp = complete_fields(mti, trans, prepared["merchant_prepare_id"], amount=amount)
        await refused(click, "/click/complete", comp, expected)
        assert (await payment(click.db, prepared["merchant_prepare_id"])).state == "pending"


async def test_unknown_orders_get_minus_5(click: ClickCaller) -> None:
    for mti in (
        "Demo",
        "abc",
        "1_PLUS",
        "123456_plus_1730034567",
        "123456_PLUS_1730034568",
        f" {MTI}",
        f"{MTI} ",
        "x" * 300,
        "заказ",
    ):
        await refused(click, "/click/prepare", prepare_fields(mti, T), failed(-5, T, mti))
        await refused(click, "/click/complete", complete_fields(mti, T, 1), failed(-5, T, mti))


async def test_wrong_route_gets_minus_3(click: ClickCaller) -> None:
    """A3: the received `action` picks the formula, so swapped cabinet URLs read as -3."""
    complete_on_prepare = complete_fields(MTI, T, 17)  # a real Complete, Complete's formula
    await refused(click, "/click/prepare", complete_on_prepare, failed(-3, T, MTI))
    prepare_on_complete = prepare_fields(MTI, T)  # a real Prepare: no merchant_prepare_id
    await refused(click, "/click/complete", prepare_on_complete, failed(-3, T, MTI))
    # action=0 signed with the Complete formula is a wrong signature, not a wrong route.
    mixed = complete_fields(MTI, T, 17, action="0")
    await refused(click, "/click/complete", mixed, failed(-1, T, MTI))
    # An unknown action is checked with the route's own formula, then -3.
    other = prepare_fields(MTI, T, action="2")
    await refused(click, "/click/prepare", other, failed(-3, T, MTI))
    other = complete_fields(MTI, T, 17, action="2")
    await refused(click, "/click/complete", other, failed(-3, T, MTI))


async def test_cancel_after_a_refused_prepare_gets_minus_9(click: ClickCaller) -> None:
    """A2: merchant_prepare_id 0, empty, of no payment of the order, or of an unknown order,
    with error<0: -9 and nothing changes. The same ids with error=0 keep -6 / -5 / -8."""
    other = await make_order(click.db, 777, mti="777_PLUS_1730034567")
    theirs = (await click.prepare(other.merchant_trans_id, T + 1))["merchant_prepare_id"]
    for prepare_id, mti in ((0, MTI), ("", MTI), (theirs, MTI), (999_999, MTI), ("", "Demo")):
        body = complete_fields(mti, T, prepare_id, error="-5017", error_note="Refused")
        await refused(click, "/click/complete", body, failed(-9, T, mti))
    await refused(click, "/click/complete", complete_fields(MTI, T, 0), failed(-6, T, MTI))
    await refused(click, "/click/complete", complete_fields(MTI, T, ""), failed(-8))
    body = complete_fields("Demo", T, 0)
    await refused(click, "/click/complete", body, failed(-5, T, "Demo"))
    missing = complete_fields(MTI, T, 0, error="-5017")
    del missing["merchant_prepare_id"]
    await refused(click, "/click/complete", missing, failed(-8))


async def test_cancel_on_a_paid_payment_alerts_every_admin_once(
    make_settings: Any, clock: FakeClock, telegram: FakeTelegram, tmp_path: Path
) -> None:
    """A1: -9, nothing changes, each admin gets one alert with the ids, the log line is
    marked."""
    log_file = tmp_path / "callbacks.log"
    settings = make_settings(
        ADMIN_IDS="900001,900002", CALLBACK_LOG_FILE=str(log_file), DEFAULT_LANGUAGE="en"
    )
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        click = ClickCaller(client)
        await make_order(click.db, 123456, mti=MTI)
        prepare_id = (await click.prepare(MTI, T))["merchant_prepare_id"]
        assert await click.complete(MTI, T, prepare_id) == ok_complete(T, MTI, prepare_id)
        before = await payment(click.db, prepare_id)
        for _ in range(3):
            answer = await click.complete(MTI, T, prepare_id, error="-5017")
            assert answer == failed(-9, T, MTI)
        assert await payment(click.db, prepare_id) == before
        order, user = await load(click.db, MTI, 123456)
        assert (order.status, user.tariff) == ("paid", "PLUS")
        for admin in (900001, 900002):
            alert = await telegram.wait_for(
                "sendMessage", lambda c, a=admin: c.params["chat_id"] == a and "⚠️" in c.text
            )
            assert f"Payment #{prepare_id}" in alert.text and str(T) in alert.text
            assert MTI in alert.text and "error -5017" in alert.text
    for admin in (900001, 900002):
        assert [c.text.split()[0] for c in telegram.of("sendMessage", admin)] == ["💰", "⚠️"]
    lines = [json.loads(line) for line in log_file.read_text("utf-8").splitlines()]
    assert [line.get("alert") for line in lines] == [None, None, *["cancel_on_paid"] * 3]


async def test_wrong_prepare_ids_get_minus_6(click: ClickCaller) -> None:
    other = await make_order(click.db, 777, mti="777_PLUS_1730034567")
    mine = (await click.prepare(MTI, T))["merchant_prepare_id"]
    theirs = (await click.prepare(other.merchant_trans_id, T + 1))["merchant_prepare_id"]
    order_id = (await load(click.db, MTI, 123456))[0].id
    async with click.db.transaction() as conn:  # a Payme transaction on the same order
        payme = await conn.execute(
            insert(payments)
            .values(
                provider="payme",
                provider_id=str(T),
                order_id=order_id,
                amount=1_500_000,
                state="pending",
                create_time=1,
            )
            .returning(payments.c.id)
        )
        payme_id = payme.scalar_one()
    for body in (
        complete_fields(MTI, T, payme_id),
        complete_fields(MTI, T, theirs),
        complete_fields(MTI, T + 1, mine),
        complete_fields(MTI, T, 2**31),
        complete_fields(MTI, T, 2**63 - 1),
        complete_fields(MTI, T, 0),
    ):
        expected = failed(-6, int(body["click_trans_id"]), MTI)
        await refused(click, "/click/complete", body, expected)


async def test_click_trans_id_of_another_order_gets_minus_8(click: ClickCaller) -> None:
    other = await make_order(click.db, 777, mti="777_PLUS_1730034567")
    assert (await click.prepare(MTI, T))["error"] == 0
    body = prepare_fields(other.merchant_trans_id, T)
    await refused(click, "/click/prepare", body, failed(-8))


async def test_repeated_prepare_returns_the_same_row(click: ClickCaller) -> None:
    first = await click.prepare(MTI, T, merchant_prepare_id="55")  # D2: ignored
    payment_id = first["merchant_prepare_id"]
    before = await snapshot(click.db)
    assert await click.prepare(MTI, T) == ok_prepare(T, MTI, payment_id)
    assert await snapshot(click.db) == before
    # a different amount or Click's error on a known attempt change nothing (D15)
    await refused(click, "/click/prepare", prepare_fields(MTI, T, amount="300"), failed(-2, T, MTI))
    expected = failed(-9, T, MTI)
    await refused(click, "/click/prepare", prepare_fields(MTI, T, error="-5017"), expected)
    second = await click.prepare(MTI, T + 1)
    assert second == ok_prepare(T + 1, MTI, payment_id + 1)
    stored = await payment(click.db, payment_id)
    assert (stored.provider_id, stored.click_paydoc_id, stored.amount) == (
        str(T),
        3390123456,
        1_500_000,
    )
    assert stored.click_sign_time == "2024-10-27 18:02:18"


async def test_prepare_with_click_error_stores_nothing(click: ClickCaller) -> None:
    body = prepare_fields(MTI, T, error="-5017")
    await refused(click, "/click/prepare", body, failed(-9, T, MTI))


async def test_prepare_on_closed_orders(click: ClickCaller) -> None:
    paid = (await click.prepare(MTI, T))["merchant_prepare_id"]
    assert (await click.complete(MTI, T, paid))["error"] == 0
    # paid through Click: new attempt and the paid attempt both get -4
    await refused(click, "/click/prepare", prepare_fields(MTI, T + 1), failed(-4, T + 1, MTI))
    await refused(click, "/click/prepare", prepare_fields(MTI, T), failed(-4, T, MTI))
    # paid through Payme
    payme = await make_order(click.db, 555, mti="555_PLUS_1730034567")
    async with click.db.transaction() as conn:
        await conn.execute(
            insert(payments).values(
                provider="payme",
                provider_id="6721f4c1a7b3c2d1e0f9a8b7",
                order_id=payme.id,
                amount=1_500_000,
                state="paid",
                create_time=1,
                perform_time=2,
            )
        )
        await conn.execute(update(orders).where(orders.c.id == payme.id).values(status="paid"))
    mti = payme.merchant_trans_id
    await refused(click, "/click/prepare", prepare_fields(mti, T + 2), failed(-4, T + 2, mti))
    for status, user in (("cancelled", 556), ("refunded", 557)):
        closed = await make_order(click.db, user, status=status)
        mti = closed.merchant_trans_id
        await refused(click, "/click/prepare", prepare_fields(mti, T + 3), failed(-9, T + 3, mti))


async def test_complete_after_order_paid_meanwhile_is_credited(
    click: ClickCaller, clock: FakeClock
) -> None:
    """D8: two attempts prepared on one order; both debits are honoured, each one period."""
    first = (await click.prepare(MTI, T))["merchant_prepare_id"]
    second = (await click.prepare(MTI, T + 1))["merchant_prepare_id"]
    assert await click.complete(MTI, T, first) == ok_complete(T, MTI, first)
    assert await click.complete(MTI, T + 1, second) == ok_complete(T + 1, MTI, second)
    order, user = await load(click.db, MTI, 123456)
    assert order.status == "paid"
    assert user.tariff_expires_at == to_datetime(clock.now) + timedelta(days=60)
    assert len(await notices(click.db, 123456)) == 2
    assert (await click.complete(MTI, T + 1, second))["error"] == -4


async def test_cancelled_attempt_leaves_order_payable(click: ClickCaller) -> None:
    """Matrix row 13 then a new attempt: the order is paid by the new click_trans_id."""
    first = (await click.prepare(MTI, T))["merchant_prepare_id"]
    note = "Недостаточно средств на карте"
    answer = await click.complete(MTI, T, first, error="-5017", error_note=note)
    assert answer == failed(-9, T, MTI)
    assert (await payment(click.db, first)).cancel_note == f"-5017 {note}"
    second = await click.prepare(MTI, T + 1)
    assert second == ok_prepare(T + 1, MTI, second["merchant_prepare_id"])
    done = await click.complete(MTI, T + 1, second["merchant_prepare_id"])
    assert done == ok_complete(T + 1, MTI, second["merchant_prepare_id"])
    assert (await load(click.db, MTI, 123456))[0].status == "paid"


async def test_64_bit_click_trans_id_round_trips(click: ClickCaller) -> None:
    big = 7350928401736625193
    response = await click.client.post("/click/prepare", data=urlencode(prepare_fields(MTI, big)))
    raw = await response.text()
    assert f'"click_trans_id": {big},' in raw
    prepare_id = json.loads(raw)["merchant_prepare_id"]
    response = await click.client.post(
        "/click/complete", data=urlencode(complete_fields(MTI, big, prepare_id))
    )
    assert json.loads(await response.text()) == ok_complete(big, MTI, prepare_id)
    assert f'"click_trans_id": {big},' in await response.text()
    assert (await payment(click.db, prepare_id)).provider_id == str(big)


async def test_other_methods_get_405(click: ClickCaller) -> None:
    for method in ("GET", "PUT", "DELETE"):
        for path in ("/click/prepare", "/click/complete"):
            response = await click.client.request(method, path)
            assert (response.status, response.headers["Allow"]) == (405, "POST")


async def test_click_off_answers_minus_1(make_settings: Any, clock: FakeClock) -> None:
    settings = make_settings(CLICK_SERVICE_ID="", CLICK_MERCHANT_ID="", CLICK_SECRET_KEY="")
    assert "click" not in settings.providers
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        click = ClickCaller(client)
        await make_order(click.db, 123456, mti=MTI)
        await refused(click, "/click/prepare", prepare_fields(MTI, T), failed(-1, T, MTI))
        await refused(click, "/click/complete", complete_fields(MTI, T, 1), failed(-1, T, MTI))


async def test_callback_log_never_holds_the_secret(
    make_settings: Any, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_file = tmp_path / "click_logs.txt"
    settings = make_settings(CALLBACK_LOG_FILE=str(log_file))
    app = create_app(settings, clock=clock, handle_in_background=False)
    caplog.set_level("INFO", logger="callbacks")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        click = ClickCaller(client)
        await make_order(click.db, 123456, mti=MTI)
        prep = prepare_fields(MTI, T)
        answers = [
            await click.post("/click/prepare", prep | {"sign_string": "f" * 32}),
            await click.prepare(MTI, T),
            await click.post("/click/prepare", "x" * 70_000),
        ]
        answers.append(await click.complete(MTI, T, answers[1]["merchant_prepare_id"]))
    lines = [json.loads(line) for line in log_file.read_text("utf-8").splitlines()]
    assert [line["error"] for line in lines] == [answer["error"] for answer in answers]
    assert [line["sign_ok"] for line in lines] == [False, True, None, True]
    assert lines[1]["route"] == "/click/prepare" and lines[3]["route"] == "/click/complete"
    assert lines[1]["fields"]["merchant_trans_id"] == MTI
    assert lines[1]["fields"]["click_trans_id"] == str(T)
    assert lines[1]["fields"]["amount"] == "15000.00"
    assert lines[2]["body_size"] == 65_537 and "fields" not in lines[2]
    assert all(line["duration_ms"] >= 0 and line["remote"] == "127.0.0.1" for line in lines)
    everything = log_file.read_text("utf-8") + caplog.text + json.dumps(answers)
    assert SECRET not in everything
    assert prep["sign_string"] not in everything
    assert "sign_string" not in everything
    assert SECRET not in repr(settings)


async def test_log_write_failure_keeps_the_answer(
    make_settings: Any, clock: FakeClock, tmp_path: Path
) -> None:
    settings = make_settings(CALLBACK_LOG_FILE=str(tmp_path / "missing-dir" / "log.txt"))
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        click = ClickCaller(client)
        await make_order(click.db, 123456, mti=MTI)
        answer = await click.prepare(MTI, T)
        assert answer == ok_prepare(T, MTI, answer["merchant_prepare_id"])


async def test_text_postgresql_cannot_store(click: ClickCaller) -> None:
    """NUL characters: no order can have one (-5), and a cancel note keeps the rest."""
    for mti in ("\x00", f"{MTI}\x00"):
        await refused(click, "/click/prepare", prepare_fields(mti, T), failed(-5, T, mti))
    prepare_id = (await click.prepare(MTI, T, sign_time="2024-10-27 18:02:18 " + "x" * 40))[
        "merchant_prepare_id"
    ]
    stored = await payment(click.db, prepare_id)
    assert stored.click_sign_time == "2024-10-27 18:02:18 " + "x" * 12
    answer = await click.complete(
        MTI,
        T,
        prepare_id,
        error="-5017",
        error_note="no\x00money",
        sign_time="2024-10-27 18:02:18 " + "x" * 40,
    )
    assert answer == failed(-9, T, MTI)
    assert (await payment(click.db, prepare_id)).cancel_note == "-5017 no\ufffdmoney"
