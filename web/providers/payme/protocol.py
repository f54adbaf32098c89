"""Payme Merchant API wire protocol: JSON-RPC parsing, Basic auth, parameter checks and
Payme's exact errors (docs/providers/payme.md §2–§4).

Plain functions that tests call without HTTP. The methods are in `methods.py`, the
database decisions in `decisions.py`, the route in `routes.py`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from db.payments import Payment
from web.providers.payme import decisions
from web.providers.payme.settings import PaymeSettings

BODY_LIMIT = 65_536
INT64 = range(-(2**63), 2**63)
INT32 = range(-(2**31), 2**31)
# Where the database column is narrower than BIGINT (`payments.cancel_reason` is INTEGER):
# a wider value is a mistyped param (-32600), not a database error (-32400, retried).
PARAM_RANGES = {"reason": INT32}

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
    decisions.Outcome.ORDER_NOT_FOUND: "order_not_found",
    decisions.Outcome.WRONG_AMOUNT: "wrong_amount",
    decisions.Outcome.ORDER_PAID: "order_paid",
    decisions.Outcome.ORDER_CLOSED: "order_closed",
    decisions.Outcome.ORDER_BUSY: "order_busy",
    decisions.Outcome.EXPIRED: "expired",
    decisions.Outcome.CONFLICT: "conflict",
    decisions.Outcome.NOT_FOUND: "not_found",
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
        parsed = json.loads(
            body.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise RpcError("parse") from error
    if not isinstance(parsed, dict):
        raise RpcError("invalid")
    return parsed


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """`1e309` parses as infinity, which our answer would echo as `Infinity` (not JSON)
    and PostgreSQL refuses to store: a huge number is a parser failure (§2 step 3)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def request_id(message: Mapping[str, Any]) -> Any:
    """The id to echo: a JSON-RPC id is a string, a number or null; any other value
    (an object, a list, a boolean) is unusable and answered with `null`."""
    value = message.get("id")
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return None


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
    valid = PARAM_RANGES.get(name, INT64)
    if type(value) is not int or value not in valid or (positive and value <= 0):
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


def fail(outcome: decisions.Outcome, field: str) -> RpcError:
    key = OUTCOME_ERRORS[outcome]
    return RpcError(key, field if key in ACCOUNT_ERRORS else None)


def transaction_state(payment: Payment) -> dict[str, Any]:
    """The CheckTransaction result: stored times, 0 while unset; reason null until cancelled."""
    return {
        "create_time": payment.create_time,
        "perform_time": payment.perform_time or 0,
        "cancel_time": payment.cancel_time or 0,
        "transaction": str(payment.id),
        "state": decisions.payme_state(payment),
        "reason": payment.cancel_reason,
    }
