"""Payme cases beyond the sandbox (payme-merchant-api.md §8, 22-34), each with its exact
answer and, for refusals, an unchanged database."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from db.billing import credit_payment
from db.orders import get_order
from db.payments import payment_from_row
from db.schema import payments
from tests.conftest import FakeClock
from tests.providers.click.helpers import PLUS_PRICE, load, make_order, notices, payment, snapshot
from tests.providers.payme.helpers import AUTH, KEY, PaymeCaller, account, basic, error_of
from web.app import create_app
from web.keys import DATABASE

HOUR_MS = 3_600_000


@pytest.fixture
def payme(client) -> PaymeCaller:
    return PaymeCaller(client)


@pytest.fixture
def db(client):
    return client.server.app[DATABASE]


async def paid_by_click(db, mti: str, now_ms: int) -> None:
    """An order paid through Click, written the way Click's Complete writes it."""
    async with db.transaction() as conn:
        order = await get_order(conn, mti, lock=True)
        row = (
            await conn.execute(
                payments.insert()
                .values(provider="click", provider_id="777", order_id=order.id,
                        amount=order.amount, state="pending", create_time=now_ms)
                .returning(*payments.c)
            )
        ).one()  # fmt: skip
        from web.settings import load_settings

        tariffs = load_settings({"BOT_TOKEN": "1:" + "a" * 30}).tariffs
        await credit_payment(conn, payment_from_row(row), order, tariffs, now_ms)


async def test_closed_and_paid_orders(payme: PaymeCaller, db, clock: FakeClock) -> None:
    refunded = await make_order(db, 401, status="refunded")
    cancelled = await make_order(db, 402, status="cancelled")
    by_click = await make_order(db, 403)
    await paid_by_click(db, by_click.merchant_trans_id, clock.now)
    before = await snapshot(db)
    for order, code in ((refunded, -31052), (cancelled, -31052), (by_click, -31051)):
        for method in ("CheckPerformTransaction", "CreateTransaction"):
            answer = await payme.call(
                method, id=f"x{order.id}", time=clock.now, amount=PLUS_PRICE,
                account=account(order.merchant_trans_id),
            )  # fmt: skip
            assert error_of(answer) == (code, "order_id")
    assert await snapshot(db) == before


async def test_twelve_hour_timeout_on_create(payme: PaymeCaller, db, clock: FakeClock) -> None:
    order = await make_order(db, 404)
    before = await snapshot(db)
    answer = await payme.call(
        "CreateTransaction", id="late", time=clock.now - 43_200_001, amount=PLUS_PRICE,
        account=account(order.merchant_trans_id),
    )  # fmt: skip
    assert error_of(answer) == (-31008, None)
    assert answer["error"]["message"]["en"] == "The transaction has expired"
    assert await snapshot(db) == before
    created = await payme.result(
        "CreateTransaction", id="edge", time=clock.now - 43_200_000, amount=PLUS_PRICE,
        account=account(order.merchant_trans_id),
    )  # fmt: skip
    assert created["state"] == 1


async def test_perform_after_twelve_hours_cancels_with_reason_4(
    payme: PaymeCaller, db, clock: FakeClock
) -> None:
    order = await make_order(db, 405)
    create = {"id": "old", "time": clock.now, "amount": PLUS_PRICE,
              "account": account(order.merchant_trans_id)}  # fmt: skip
    await payme.result("CreateTransaction", **create)
    clock.advance(hours=12, seconds=1)
    answer = await payme.call("PerformTransaction", id="old")
    assert answer["error"]["message"]["en"] == "The transaction has expired"
    state = await payme.result("CheckTransaction", id="old")
    assert (state["state"], state["reason"], state["cancel_time"]) == (-1, 4, clock.now)
    assert (await load(db, order.merchant_trans_id, 405))[1].tariff is None
    # A repeated Create of the expired one is refused the same way, nothing more changes.
    answer = await payme.call("CreateTransaction", **create)
    assert error_of(answer) == (-31008, None)


async def test_new_transaction_after_the_active_one_expired(
    payme: PaymeCaller, db, clock: FakeClock
) -> None:
    order = await make_order(db, 406)
    mti = order.merchant_trans_id
    await payme.result("CreateTransaction", id="first", time=clock.now, amount=PLUS_PRICE,
                       account=account(mti))  # fmt: skip
    clock.advance(hours=13)
    second = await payme.result("CreateTransaction", id="second", time=clock.now,
                                amount=PLUS_PRICE, account=account(mti))  # fmt: skip
    assert second["state"] == 1
    first = await payme.result("CheckTransaction", id="first")
    assert (first["state"], first["reason"], first["cancel_time"]) == (-1, 4, clock.now)


async def test_check_after_the_active_one_expired_cancels_it_and_allows(
    payme: PaymeCaller, db, clock: FakeClock
) -> None:
    """The one CheckPerformTransaction that writes: it is answered from a snapshot
    otherwise, so this must reach the locked path and commit the cancel (reason 4)."""
    order = await make_order(db, 408)
    mti = order.merchant_trans_id
    await payme.result("CreateTransaction", id="stale", time=clock.now, amount=PLUS_PRICE,
                       account=account(mti))  # fmt: skip
    clock.advance(hours=11)
    busy = await payme.call("CheckPerformTransaction", amount=PLUS_PRICE, account=account(mti))
    assert error_of(busy)[0] == -31008
    clock.advance(hours=2)
    check = await payme.result("CheckPerformTransaction", amount=PLUS_PRICE,
                               account=account(mti))  # fmt: skip
    assert check["allow"] is True
    stale = await payme.result("CheckTransaction", id="stale")
    assert (stale["state"], stale["reason"], stale["cancel_time"]) == (-1, 4, clock.now)


async def test_click_pays_first_then_perform_is_refused(
    payme: PaymeCaller, db, clock: FakeClock
) -> None:
    order = await make_order(db, 407)
    mti = order.merchant_trans_id
    await payme.result("CreateTransaction", id="raced", time=clock.now, amount=PLUS_PRICE,
                       account=account(mti))  # fmt: skip
    await paid_by_click(db, mti, clock.now)
    clock.advance(seconds=1)
    answer = await payme.call("PerformTransaction", id="raced")
    assert error_of(answer) == (-31008, None)
    assert answer["error"]["message"]["en"] == "Unable to perform the operation"
    state = await payme.result("CheckTransaction", id="raced")
    assert (state["state"], state["reason"]) == (-1, 3)
    assert [row.kind for row in await notices(db, 407)] == ["payment_received"]


async def test_after_a_state_1_cancel_a_new_transaction_is_created(
    payme: PaymeCaller, db, clock: FakeClock
) -> None:
    order = await make_order(db, 408)
    mti = order.merchant_trans_id
    await payme.result("CreateTransaction", id="a1", time=clock.now, amount=PLUS_PRICE,
                       account=account(mti))  # fmt: skip
    await payme.result("CancelTransaction", id="a1", reason=2)
    created = await payme.result("CreateTransaction", id="a2", time=clock.now,
                                 amount=PLUS_PRICE, account=account(mti))  # fmt: skip
    assert created["state"] == 1


async def test_repeats_never_overwrite(payme: PaymeCaller, db, clock: FakeClock) -> None:
    order = await make_order(db, 409)
    mti = order.merchant_trans_id
    create = {"id": "r1", "time": clock.now, "amount": PLUS_PRICE, "account": account(mti)}
    await payme.result("CreateTransaction", **create)
    before = await snapshot(db)
    for changed in ({"amount": PLUS_PRICE + 100}, {"account": account("other")}):
        answer = await payme.call("CreateTransaction", **{**create, **changed})
        assert error_of(answer) == (-31008, None)
    assert await snapshot(db) == before
    first = await payme.result("CancelTransaction", id="r1", reason=1)
    clock.advance(seconds=3)
    assert await payme.result("CancelTransaction", id="r1", reason=5) == first
    assert (await payme.result("CheckTransaction", id="r1"))["reason"] == 1


async def test_unknown_transactions(payme: PaymeCaller, db) -> None:
    before = await snapshot(db)
    for method, extra in (("PerformTransaction", {}), ("CancelTransaction", {"reason": 1}),
                          ("CheckTransaction", {}),
                          ("SetFiscalData", {"type": "PERFORM", "fiscal_data": {}})):  # fmt: skip
        answer = await payme.call(method, id="nope", **extra)
        assert error_of(answer) == (-31003, None)
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    ("body", "code", "data", "request_id"),
    [
        ("{bad", -32700, None, None),
        (b"\xff\xfe{}", -32700, None, None),
        ('{"method": "CheckTransaction", "params": {}, "id": NaN}', -32700, None, None),
        ("[" * 30_000 + "]" * 30_000, -32700, None, None),
        ("[]", -32600, None, None),
        ('{"id": 5, "method": "Foo", "params": {}}', -32601, "Foo", 5),
        ('{"id": 5, "method": "ChangePassword", "params": {"password": "x"}}', -32601,
         "ChangePassword", 5),
        ('{"id": 5, "method": 7, "params": {}}', -32600, "method", 5),
        ('{"id": 5, "method": "CheckTransaction", "params": []}', -32600, "params", 5),
        ('{"id": "s", "method": "CheckPerformTransaction", "params": {"amount": "100", '
         '"account": {}}}', -32600, "amount", "s"),
        ('{"method": "CheckPerformTransaction", "params": {"amount": true, "account": {}}}',
         -32600, "amount", None),
        ('{"id": 1, "method": "CheckPerformTransaction", "params": {"amount": 1.5, '
         '"account": {}}}', -32600, "amount", 1),
        ('{"id": 1, "method": "CheckPerformTransaction", "params": {"amount": 1500000, '
         '"account": "x"}}', -32600, "account", 1),
        ('{"id": 1, "method": "CheckPerformTransaction", "params": {"amount": 1500000, '
         '"account": {"order_id": 5}}}', -31050, "order_id", 1),
        ('{"id": 1, "method": "CreateTransaction", "params": {"id": "a", "time": '
         + str(2**63) + ', "amount": 1, "account": {}}}', -32600, "time", 1),
        ('{"id": 1, "method": "CheckTransaction", "params": {"id": ""}}', -32600, "id", 1),
        ('{"id": 1, "method": "CheckTransaction", "params": {"id": "a b"}}', -32600, "id", 1),
        ('{"id": 1, "method": "SetFiscalData", "params": {"id": "a", "type": "X", '
         '"fiscal_data": {}}}', -32600, "type", 1),
        ('{"id": 1, "method": "GetStatement", "params": {"from": 1}}', -32600, "to", 1),
        ('{"id": 1, "method": "CheckTransaction", "params": {"id": "1"}, "x": ' + "9" * 5000
         + "}", -32700, None, None),
    ],
)  # fmt: skip
async def test_malformed_requests(
    payme: PaymeCaller, db, body: str | bytes, code: int, data: object, request_id: object
) -> None:
    before = await snapshot(db)
    answer = await payme.raw(body)
    assert error_of(answer) == (code, data)
    assert answer["id"] == request_id
    assert await snapshot(db) == before


async def test_transport(payme: PaymeCaller, db) -> None:
    before = await snapshot(db)
    answer = await payme.raw("{}", method="GET")
    assert (error_of(answer), answer["id"]) == ((-32300, None), None)
    big = json.dumps({"id": 1, "method": "CheckTransaction", "params": {"pad": "x" * 65_536}})
    answer = await payme.raw(big)
    assert (error_of(answer), answer["id"]) == ((-32600, None), None)
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "Bearer " + KEY,
        "Basic !!!notbase64",
        basic("paycom:" + KEY),
        basic("Paycom:" + KEY + "x"),
        basic("Paycom:" + "TEST_ONLY_KEY"),
        basic("Paycom:Uzcard:someRandomString1545343543545"),
        "Basic " + "gA==",  # valid base64, not UTF-8
    ],
)
async def test_wrong_credentials(payme: PaymeCaller, db, auth: str | None) -> None:
    before = await snapshot(db)
    answer = await payme.call("CheckTransaction", auth=auth, id="x")
    assert error_of(answer) == (-32504, None)
    assert await snapshot(db) == before


async def test_scheme_is_case_insensitive(payme: PaymeCaller) -> None:
    answer = await payme.call("CheckTransaction", auth=AUTH.replace("Basic", "BASIC"), id="x")
    assert error_of(answer) == (-31003, None)


async def test_test_key_is_accepted_only_while_set_and_marks_payments(
    make_settings, clock: FakeClock
) -> None:
    settings = make_settings(PAYME_TEST_KEY="TEST_ONLY_KEY")
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        payme, db = PaymeCaller(client), client.server.app[DATABASE]
        order = await make_order(db, 410)
        created = await payme.call(
            "CreateTransaction", auth=basic("Paycom:TEST_ONLY_KEY"), id="sandbox",
            time=clock.now, amount=PLUS_PRICE, account=account(order.merchant_trans_id),
        )  # fmt: skip
        assert (await payment(db, int(created["result"]["transaction"]))).test is True
        answer = await payme.call("CheckTransaction", id="sandbox")  # the production key:
        assert error_of(answer) == (-31003, None)  # not its kind (A1)


async def test_disabled_payme_refuses_everything(make_settings, clock: FakeClock) -> None:
    settings = make_settings(PAYME_MERCHANT_ID="", PAYME_KEY="")
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        answer = await PaymeCaller(client).call("CheckTransaction", id="x")
        assert error_of(answer) == (-32504, None)


async def test_database_failure_answers_system_error_then_recovers(
    payme: PaymeCaller, db, clock: FakeClock, monkeypatch
) -> None:
    order = await make_order(db, 411)
    create = {"id": "db", "time": clock.now, "amount": PLUS_PRICE,
              "account": account(order.merchant_trans_id)}  # fmt: skip
    await payme.result("CreateTransaction", **create)
    from web.providers.payme import decisions as payme_db

    async def broken(*args, **kwargs):
        raise OSError("database unavailable")

    monkeypatch.setattr(payme_db, "credit_payment", broken)
    before = await snapshot(db)
    answer = await payme.call("PerformTransaction", id="db")
    assert error_of(answer) == (-32400, None)
    assert await snapshot(db) == before
    monkeypatch.undo()
    assert (await payme.result("PerformTransaction", id="db"))["state"] == 2


async def test_set_fiscal_data_is_stored_per_type(payme: PaymeCaller, db, clock) -> None:
    order = await make_order(db, 412)
    created = await payme.result(
        "CreateTransaction", id="fiscal", time=clock.now, amount=PLUS_PRICE,
        account=account(order.merchant_trans_id),
    )  # fmt: skip
    receipt = {"receipt_id": 7, "fiscal_sign": "abc", "qr_code_url": "https://ofd.example/q"}
    for _ in range(2):
        assert await payme.result(
            "SetFiscalData", id="fiscal", type="PERFORM", fiscal_data=receipt
        ) == {"success": True}
    stored = await payment(db, int(created["transaction"]))
    assert stored.fiscal_data == {"PERFORM": receipt}
    other = {"receipt_id": 8}
    answers = await asyncio.gather(
        payme.result("SetFiscalData", id="fiscal", type="CANCEL", fiscal_data=other),
        payme.result("SetFiscalData", id="fiscal", type="PERFORM", fiscal_data=other),
    )
    assert answers == [{"success": True}] * 2
    stored = await payment(db, int(created["transaction"]))
    assert stored.fiscal_data == {"PERFORM": other, "CANCEL": other}


async def test_fiscal_detail_in_the_users_language(make_settings, clock: FakeClock) -> None:
    settings = make_settings(
        TARIFF_PLUS_IKPU="10305013001000000",
        TARIFF_PLUS_PACKAGE_CODE="1495086",
        TARIFF_PLUS_VAT_PERCENT="12",
    )
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        db = client.server.app[DATABASE]
        order = await make_order(db, 413, language="ru")
        result = await PaymeCaller(client).result(
            "CheckPerformTransaction", amount=PLUS_PRICE, account=account(order.merchant_trans_id)
        )
    assert result == {
        "allow": True,
        "detail": {
            "receipt_type": 0,
            "items": [
                {"title": "Подписка PLUS на 30 дней", "price": PLUS_PRICE, "count": 1,
                 "code": "10305013001000000", "package_code": "1495086", "vat_percent": 12},
            ],
        },
    }  # fmt: skip


def test_checkout_link_matches_the_reference() -> None:
    import base64
    from datetime import UTC, datetime

    from db.orders import Order
    from web.providers.payme.link import PaymeLink

    order = Order(1, "123456_PLUS_1730034567", 123456, "PLUS", 4_900_000, "pending",
                  datetime.now(UTC), None)  # fmt: skip
    link = PaymeLink("587f72c72cac0d162c722ae2").url(order, "uz", "example_bot")
    assert link == (
        "https://checkout.paycom.uz/bT01ODdmNzJjNzJjYWMwZDE2MmM3MjJhZTI7YWMub3JkZXJfaWQ9MTIzND"
        "U2X1BMVVNfMTczMDAzNDU2NzthPTQ5MDAwMDA7bD11ejtjPWh0dHBzOi8vdC5tZS9leGFtcGxlX2JvdA=="
    )
    sandbox = PaymeLink("587f72c72cac0d162c722ae2", "https://test.paycom.uz/").url(
        order, "ru", None
    )
    encoded = sandbox.removeprefix("https://test.paycom.uz/")
    assert "+" not in encoded and "/" not in encoded
    assert base64.b64decode(encoded).decode().endswith(";a=4900000;l=ru")


async def test_every_call_is_logged_without_the_key(
    make_settings, clock: FakeClock, tmp_path, caplog
) -> None:
    log_file = tmp_path / "callbacks.log"
    settings = make_settings(CALLBACK_LOG_FILE=str(log_file))
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        payme = PaymeCaller(client)
        order = await make_order(client.server.app[DATABASE], 414)
        await payme.result("CreateTransaction", id="logged", time=clock.now, amount=PLUS_PRICE,
                           account=account(order.merchant_trans_id))  # fmt: skip
        await payme.call("CheckTransaction", auth=basic("Paycom:wrong"), id="logged")
        await payme.raw("{bad")
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["route"] for line in lines] == ["/payme"] * 3
    assert lines[0]["fields"] == {
        "method": "CreateTransaction", "id": "logged", "order": order.merchant_trans_id,
    }  # fmt: skip
    assert lines[1]["fields"] == {"method": "CheckTransaction", "id": "logged", "order": None}
    assert lines[2]["body_size"] == 4 and "fields" not in lines[2]
    assert [line["error"] for line in lines] == [0, -32504, -32700]
    assert all(isinstance(line["duration_ms"], float) for line in lines)
    everything = log_file.read_text() + caplog.text
    for secret in (KEY, AUTH, AUTH.split()[1]):
        assert secret not in everything


async def test_body_arriving_in_chunks_is_read_whole(payme: PaymeCaller, db) -> None:
    """A body that reaches us in several pieces (chunked transfer) is parsed whole, and an
    oversized one is still -32600 however it is split: one `read(n)` returns only what
    has arrived, which would turn a valid request into -32700."""
    body = json.dumps(
        {"id": 7, "method": "CheckTransaction", "params": {"id": "nope", "pad": "x" * 40_000}}
    ).encode()

    async def pieces(data: bytes):
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]
            await asyncio.sleep(0.001)

    headers = {"Authorization": AUTH}
    response = await payme.client.post("/payme", data=pieces(body), headers=headers)
    answer = await response.json()
    assert (error_of(answer), answer["id"]) == ((-31003, None), 7)
    big = body.replace(b"x" * 40_000, b"x" * 70_000)
    response = await payme.client.post("/payme", data=pieces(big), headers=headers)
    answer = await response.json()
    assert (error_of(answer), answer["id"]) == ((-32600, None), None)


def test_checkout_link_never_has_plus_or_slash() -> None:
    """D16: every character our settings and ids allow, at each of the three base64
    alignments, in every field, for every language: the standard alphabet's `+` and `/`
    never appear, so the link equals its URL-safe form."""
    import base64
    import string
    from datetime import UTC, datetime

    from db.orders import Order
    from web.providers.payme.link import PaymeLink

    merchant_chars = string.ascii_letters + string.digits + "_.-"
    id_chars = string.ascii_uppercase + string.digits + "_"
    username_chars = string.ascii_letters + string.digits + "_"
    for shift in range(3):
        for char in merchant_chars:
            for language in ("uz", "ru", "en"):
                order = Order(1, "1" * shift + id_chars, 1, "PRO", 9_900_000, "pending",
                              datetime.now(UTC), None)  # fmt: skip
                link = PaymeLink("m" * shift + char * 3).url(
                    order, language, "b" * shift + username_chars
                )
                encoded = link.removeprefix("https://checkout.paycom.uz/")
                assert "+" not in encoded and "/" not in encoded, link
                assert base64.urlsafe_b64decode(encoded) == base64.b64decode(encoded)


async def test_reads_answer_while_a_payment_holds_the_write_lock(
    payme: PaymeCaller, db, clock: FakeClock
) -> None:
    """CheckTransaction and GetStatement never write, so they wait for no writer: Payme
    polls them while Performs are queued, and a long statement must not stall payments."""
    order = await make_order(db, 415)
    create = {"time": clock.now, "amount": PLUS_PRICE, "account": account(order.merchant_trans_id)}
    created = await payme.result("CreateTransaction", id="read", **create)
    async with db.transaction() as conn:
        await get_order(conn, order.merchant_trans_id, lock=True)
        state = await payme.result("CheckTransaction", id="read")
        listed = await payme.result("GetStatement", **{"from": clock.now, "to": clock.now})
    assert (state["transaction"], state["state"]) == (created["transaction"], 1)
    assert [item["id"] for item in listed["transactions"]] == ["read"]
