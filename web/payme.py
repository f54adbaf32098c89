"""Payme Merchant API: `POST /payme`, JSON-RPC 2.0 (payme-merchant-api.md).

The route takes every HTTP method and always answers HTTP 200 with a JSON-RPC body
(D1); the first failing step of §2 decides the answer. Parsing, authorization and
parameter checks are plain functions; the database decisions live in `db/payme.py`;
this module turns their outcomes into Payme's exact results and errors.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.texts import receipt_title
from db import payme as payme_db
from db.payments import Payment
from web.body import read_bounded
from web.callback_log import log_callback
from web.keys import CLOCK, DATABASE, I18N, SETTINGS
from web.settings import PaymeSettings, Settings

log = logging.getLogger(__name__)

BODY_LIMIT = 65_536
INT64 = range(-(2**63), 2**63)

MESSAGES: dict[str, tuple[int, str, str, str]] = {
    # key: (code, ru, uz, en) — §4, exact texts
    "method_not_post": (
        -32300,
        "Метод запроса должен быть POST",
        "So'rov usuli POST bo'lishi kerak",
        "Request method must be POST",
    ),
    "parse": (-32700, "Ошибка разбора JSON", "JSON tahlilida xatolik", "JSON parse error"),
    "invalid": (
        -32600,
        "Неверный JSON-RPC запрос",
        "JSON-RPC so'rovi noto'g'ri",
        "Invalid JSON-RPC request",
    ),
    "no_method": (-32601, "Метод не найден", "Metod topilmadi", "Method not found"),
    "auth": (
        -32504,
        "Недостаточно привилегий для выполнения метода",
        "Metodni bajarish uchun huquq yetarli emas",
        "Insufficient privileges to perform the method",
    ),
    "system": (-32400, "Системная ошибка", "Tizim xatosi", "System error"),
    "wrong_amount": (-31001, "Неверная сумма", "Noto'g'ri summa", "Incorrect amount"),
    "not_found": (
        -31003,
        "Транзакция не найдена",
        "Tranzaksiya topilmadi",
        "Transaction not found",
    ),
    "order_busy": (
        -31008,
        "Заказ уже оплачивается другой транзакцией",
        "Buyurtma boshqa tranzaksiya orqali to'lanmoqda",
        "The order is already being paid by another transaction",
    ),
    "expired": (
        -31008,
        "Время ожидания транзакции истекло",
        "Tranzaksiyani kutish muddati tugagan",
        "The transaction has expired",
    ),
    "conflict": (
        -31008,
        "Невозможно выполнить операцию",
        "Amalni bajarib bo'lmaydi",
        "Unable to perform the operation",
    ),
    "order_not_found": (-31050, "Заказ не найден", "Buyurtma topilmadi", "Order not found"),
    "order_paid": (
        -31051,
        "Заказ уже оплачен",
        "Buyurtma allaqachon to'langan",
        "The order is already paid",
    ),
    "order_closed": (
        -31052,
        "Заказ закрыт. Оформите новый заказ в боте",
        "Buyurtma yopilgan. Botda yangi buyurtma bering",
        "The order is closed. Place a new order in the bot",
    ),
}

ACCOUNT_ERRORS = {"order_not_found", "order_paid", "order_closed"}
OUTCOME_ERRORS = {
    payme_db.Outcome.ORDER_NOT_FOUND: "order_not_found",
    payme_db.Outcome.WRONG_AMOUNT: "wrong_amount",
    payme_db.Outcome.ORDER_PAID: "order_paid",
    payme_db.Outcome.ORDER_CLOSED: "order_closed",
    payme_db.Outcome.ORDER_BUSY: "order_busy",
    payme_db.Outcome.EXPIRED: "expired",
    payme_db.Outcome.CONFLICT: "conflict",
    payme_db.Outcome.NOT_FOUND: "not_found",
}


class RpcError(Exception):
    """An answer with Payme's error `key`; `data` is added where §4 lists it."""

    def __init__(self, key: str, data: Any = None) -> None:
        super().__init__(key)
        self.key, self.data = key, data

    def body(self, request_id: Any) -> dict[str, Any]:
        code, ru, uz, en = MESSAGES[self.key]
        error: dict[str, Any] = {"code": code, "message": {"ru": ru, "uz": uz, "en": en}}
        if self.data is not None:
            error["data"] = self.data
        return {"jsonrpc": "2.0", "id": request_id, "error": error}


@dataclass(frozen=True)
class Call:
    """What one authorized request asks, for the method handlers."""

    method: str
    params: dict[str, Any]
    test: bool  # authorized with PAYME_TEST_KEY


def parse_body(body: bytes) -> dict[str, Any]:
    """§2 steps 2-4: bounded, strict UTF-8 JSON, one object (no batches)."""
    if len(body) > BODY_LIMIT:
        raise RpcError("invalid")
    try:
        parsed = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise RpcError("parse") from error
    if not isinstance(parsed, dict):
        raise RpcError("invalid")
    return parsed


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def authorize(header: str | None, settings: PaymeSettings | None) -> bool:
    """§2 step 5: True for the production key, False for the test key; else -32504.

    Compares the whole decoded `Paycom:<key>` with every accepted key in constant time.
    """
    if settings is None or header is None:
        raise RpcError("auth")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise RpcError("auth")
    try:
        credentials = base64.b64decode(token.strip(), validate=True)
        credentials.decode("utf-8")
    except (binascii.Error, ValueError) as error:
        raise RpcError("auth") from error
    production = hmac.compare_digest(credentials, f"Paycom:{settings.key}".encode())
    test = settings.test_key is not None and hmac.compare_digest(
        credentials, f"Paycom:{settings.test_key}".encode()
    )
    if not (production or test):
        raise RpcError("auth")
    return not production


def integer(params: Mapping[str, Any], name: str, *, positive: bool = False) -> int:
    value = params.get(name)
    if type(value) is not int or value not in INT64 or (positive and value <= 0):
        raise RpcError("invalid", name)
    return value


def payme_id(params: Mapping[str, Any]) -> str:
    value = params.get("id")
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise RpcError("invalid", "id")
    if not all(0x21 <= ord(char) <= 0x7E for char in value):
        raise RpcError("invalid", "id")
    return value


def order_id(params: Mapping[str, Any], field: str) -> str:
    """The account's order reference (D4): a bad value in a valid account is -31050."""
    account = params.get("account")
    if not isinstance(account, dict):
        raise RpcError("invalid", "account")
    value = account.get(field)
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 64
        or not all(0x20 <= ord(char) <= 0x7E for char in value)
    ):
        raise RpcError("order_not_found", field)
    return value


def fail(outcome: payme_db.Outcome, field: str) -> RpcError:
    key = OUTCOME_ERRORS[outcome]
    return RpcError(key, field if key in ACCOUNT_ERRORS else None)


def transaction_state(payment: Payment) -> dict[str, Any]:
    """The CheckTransaction result: stored times, 0 while unset; reason null until cancelled."""
    return {
        "create_time": payment.create_time,
        "perform_time": payment.perform_time or 0,
        "cancel_time": payment.cancel_time or 0,
        "transaction": str(payment.id),
        "state": payme_db.payme_state(payment),
        "reason": payment.cancel_reason,
    }


Method = Callable[[web.Application, Call, int], Awaitable[dict[str, Any]]]


async def check_perform_transaction(app: web.Application, call: Call, now: int) -> dict[str, Any]:
    settings = app[SETTINGS]
    field = _account_field(settings)
    amount = integer(call.params, "amount", positive=True)
    mti = order_id(call.params, field)
    result = await payme_db.check_perform(app[DATABASE], mti, amount, now)
    if result.outcome is not payme_db.Outcome.OK or result.order is None:
        raise fail(result.outcome, field)
    tariff = settings.tariffs[result.order.tariff]
    if tariff.fiscal is None:
        return {"allow": True}
    i18n = app[I18N]
    with i18n.context(), i18n.use_locale(result.language or settings.default_language):
        title = receipt_title(tariff)
    item = {
        "title": title,
        "price": result.order.amount,
        "count": 1,
        "code": tariff.fiscal.ikpu,
        "package_code": tariff.fiscal.package_code,
        "vat_percent": tariff.fiscal.vat_percent,
    }
    return {"allow": True, "detail": {"receipt_type": 0, "items": [item]}}


async def create_transaction(app: web.Application, call: Call, now: int) -> dict[str, Any]:
    field = _account_field(app[SETTINGS])
    transaction_id = payme_id(call.params)
    payme_time = integer(call.params, "time", positive=True)
    amount = integer(call.params, "amount", positive=True)
    mti = order_id(call.params, field)
    result = await payme_db.create(
        app[DATABASE], transaction_id, payme_time, amount, mti, now, call.test
    )
    if result.outcome is not payme_db.Outcome.OK or result.payment is None:
        raise fail(result.outcome, field)
    payment = result.payment
    return {"create_time": payment.create_time, "transaction": str(payment.id), "state": 1}


async def perform_transaction(app: web.Application, call: Call, now: int) -> dict[str, Any]:
    transaction_id = payme_id(call.params)
    result = await payme_db.perform(app[DATABASE], transaction_id, app[SETTINGS].tariffs, now)
    if result.outcome is not payme_db.Outcome.OK or result.payment is None:
        raise fail(result.outcome, _account_field(app[SETTINGS]))
    payment = result.payment
    return {"transaction": str(payment.id), "perform_time": payment.perform_time, "state": 2}


async def cancel_transaction(app: web.Application, call: Call, now: int) -> dict[str, Any]:
    transaction_id = payme_id(call.params)
    reason = integer(call.params, "reason")
    result = await payme_db.cancel(app[DATABASE], transaction_id, reason, now)
    if result.outcome is not payme_db.Outcome.OK or result.payment is None:
        raise fail(result.outcome, _account_field(app[SETTINGS]))
    payment = result.payment
    return {
        "transaction": str(payment.id),
        "cancel_time": payment.cancel_time,
        "state": payme_db.payme_state(payment),
    }


async def check_transaction(app: web.Application, call: Call, now: int) -> dict[str, Any]:
    result = await payme_db.check(app[DATABASE], payme_id(call.params))
    if result.payment is None:
        raise fail(result.outcome, _account_field(app[SETTINGS]))
    return transaction_state(result.payment)


async def get_statement(app: web.Application, call: Call, now: int) -> dict[str, Any]:
    start = integer(call.params, "from")
    end = integer(call.params, "to")
    field = _account_field(app[SETTINGS])
    rows = await payme_db.statement(app[DATABASE], start, end) if start <= end else []
    return {
        "transactions": [
            {
                "id": payment.provider_id,
                "time": payment.payme_time,
                "amount": payment.amount,
                "account": {field: mti},
                **transaction_state(payment),
                "receivers": None,
            }
            for payment, mti in rows
        ]
    }


async def set_fiscal_data(app: web.Application, call: Call, now: int) -> dict[str, Any]:
    transaction_id = payme_id(call.params)
    kind = call.params.get("type")
    if kind not in ("PERFORM", "CANCEL"):
        raise RpcError("invalid", "type")
    fiscal_data = call.params.get("fiscal_data")
    if not isinstance(fiscal_data, dict):
        raise RpcError("invalid", "fiscal_data")
    result = await payme_db.set_fiscal_data(app[DATABASE], transaction_id, kind, fiscal_data)
    if result.outcome is not payme_db.Outcome.OK:
        raise fail(result.outcome, _account_field(app[SETTINGS]))
    return {"success": True}


METHODS: dict[str, Method] = {
    "CheckPerformTransaction": check_perform_transaction,
    "CreateTransaction": create_transaction,
    "PerformTransaction": perform_transaction,
    "CancelTransaction": cancel_transaction,
    "CheckTransaction": check_transaction,
    "GetStatement": get_statement,
    "SetFiscalData": set_fiscal_data,
}


def _account_field(settings: Settings) -> str:
    return settings.payme.account_field if settings.payme else "order_id"


async def handle(request: web.Request) -> web.Response:
    """The one route; every answer is HTTP 200 JSON-RPC, whatever happens (D1)."""
    started = time.perf_counter()
    app = request.app
    request_id: Any = None
    message: dict[str, Any] | None = None
    body = b""
    try:
        if request.method != "POST":
            raise RpcError("method_not_post")
        body = await read_bounded(request.content, BODY_LIMIT)
        message = parse_body(body)
        request_id = message.get("id")
        test = authorize(request.headers.get("Authorization"), app[SETTINGS].payme)
        method = message.get("method")
        if not isinstance(method, str):
            raise RpcError("invalid", "method")
        if method not in METHODS:
            raise RpcError("no_method", method)
        params = message.get("params")
        if not isinstance(params, dict):
            raise RpcError("invalid", "params")
        now = app[CLOCK]()  # read once per request
        answer = {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": await METHODS[method](app, Call(method, params, test), now),
        }
    except RpcError as error:
        answer = error.body(request_id)
    except Exception:
        log.exception("payme: unexpected failure; answering -32400")
        answer = RpcError("system").body(request_id)
    _log(request, message, answer, started, len(body))
    return web.json_response(answer)


def _log(
    request: web.Request,
    message: Mapping[str, Any] | None,
    answer: Mapping[str, Any],
    started: float,
    body_size: int,
) -> None:
    """One line per call: method, Payme id, order, our code; never a key or the header.

    Whatever a parsed body names is logged, refused calls included (a wrong-key probe is
    worth seeing); an unparsable body only by its size.
    """
    settings = request.app[SETTINGS]
    fields = None
    if message is not None:
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        account = params.get("account")
        fields = {
            "method": message.get("method"),
            "id": params.get("id"),
            "order": account.get(_account_field(settings)) if isinstance(account, dict) else None,
        }
    error = answer.get("error")
    log_callback(
        settings.callback_log_file,
        route="/payme",
        remote=request.remote,
        started=started,
        fields=fields,
        body_size=body_size,
        answer={"error": error["code"] if error else 0, "error_note": None},
    )
