"""Click SHOP-API callbacks: `POST /click/prepare` and `POST /click/complete`.

The law is `click-shop-api.md`; section numbers below point into it. The wire work is
plain functions (parse, validate, sign, answer) that tests call without HTTP; the
database decisions live in `db/click.py`. The route itself only adds what HTTP needs:
its own bounded body read, so aiohttp's 413 page never reaches Click (§2); a catch-all
that turns any failure into `-7` (§7); and the callback log line (§10).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from db import click as click_db
from db.database import Database
from web.body import read_bounded
from web.callback_log import log_callback
from web.keys import CLOCK, DATABASE, SETTINGS
from web.settings import ClickSettings, Settings

log = logging.getLogger(__name__)

BODY_LIMIT = 65_536
MAX_BIGINT = 2**63 - 1

OK = 0
SIGN_FAILED = -1
WRONG_AMOUNT = -2
NO_ACTION = -3
ALREADY_PAID = -4
NO_USER = -5
NO_TRANSACTION = -6
FAILED = -7
BAD_REQUEST = -8
CANCELLED = -9

NOTES = {
    OK: "Success",
    SIGN_FAILED: "SIGN CHECK FAILED!",
    WRONG_AMOUNT: "Incorrect parameter amount",
    NO_ACTION: "Action not found",
    ALREADY_PAID: "Already paid",
    NO_USER: "User does not exist",
    NO_TRANSACTION: "Transaction does not exist",
    FAILED: "Failed to update user",
    BAD_REQUEST: "Error in request from click",
    CANCELLED: "Transaction cancelled",
}

CODES = {
    click_db.Outcome.OK: OK,
    click_db.Outcome.WRONG_AMOUNT: WRONG_AMOUNT,
    click_db.Outcome.ALREADY_PAID: ALREADY_PAID,
    click_db.Outcome.NO_ORDER: NO_USER,
    click_db.Outcome.NO_PAYMENT: NO_TRANSACTION,
    click_db.Outcome.CANCELLED: CANCELLED,
    click_db.Outcome.FOREIGN_ATTEMPT: BAD_REQUEST,  # D9
}

# §3 formats. `[0-9]`, never `\d` (which takes any Unicode digit), and always with
# `re.fullmatch`, because `$` would also match before a trailing newline.
ID = re.compile(r"[0-9]{1,19}")
AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")
AMOUNT_LIMIT = 32
CLICK_ERROR = re.compile(r"-?[0-9]{1,10}")
REQUIRED = ("click_trans_id", "service_id", "click_paydoc_id", "merchant_trans_id", "amount")
REQUIRED_TOO = ("action", "error", "sign_time", "sign_string")


class Malformed(ValueError):
    """The body or a field is not what Click sends: the answer is `-8`."""


@dataclass(frozen=True)
class Route:
    """One callback route: its path, the `action` it takes and its signature formula."""

    path: str
    action: str
    id_key: str  # the key that carries our payment id in a success answer

    @property
    def is_complete(self) -> bool:
        return self.action == "1"


PREPARE = Route("/click/prepare", "0", "merchant_prepare_id")
COMPLETE = Route("/click/complete", "1", "merchant_confirm_id")


@dataclass(frozen=True)
class ClickRequest:
    """A validated callback: raw strings where they are hashed, integers where they are ids."""

    click_trans_id: int
    click_trans_id_raw: str
    service_id: str
    click_paydoc_id: int
    merchant_trans_id: str
    merchant_prepare_id: int | None  # Complete only (D2: a Prepare's is ignored)
    merchant_prepare_id_raw: str
    amount: str
    action: str
    error: int
    error_note: str | None
    sign_time: str
    sign_string: str

    def attempt(self) -> click_db.Attempt:
        return click_db.Attempt(
            click_trans_id=self.click_trans_id,
            click_paydoc_id=self.click_paydoc_id,
            merchant_trans_id=self.merchant_trans_id,
            amount=tiyin(self.amount),
            error=self.error,
            error_note=self.error_note,
            sign_time=self.sign_time,
        )


def parse_form(body: bytes) -> dict[str, str]:
    """Decode an `application/x-www-form-urlencoded` body strictly (§2).

    Refused: an empty body, invalid UTF-8 (raw or percent-encoded), a field without
    `=` (JSON bodies included), and a field given twice.
    """
    if not body:
        raise Malformed("empty body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Malformed("body is not UTF-8") from error
    fields: dict[str, str] = {}
    for part in text.split("&"):
        name, sep, value = part.partition("=")
        if not sep:
            raise Malformed("a field without '='")
        try:
            name, value = _unquote(name), _unquote(value)
        except UnicodeDecodeError as error:
            raise Malformed("a field is not UTF-8") from error
        if name in fields:
            raise Malformed(f"field {name!r} given twice")
        fields[name] = value
    return fields


def _unquote(raw: str) -> str:
    """`+` is a space, then %-escapes; the bytes must be UTF-8."""
    return unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")


def parse_request(fields: dict[str, str], *, complete: bool) -> ClickRequest:
    """Validate the fields of §3 for the route; raises `Malformed` (`-8`)."""
    required = REQUIRED + (("merchant_prepare_id",) if complete else ()) + REQUIRED_TOO
    for name in required:
        if not fields.get(name):
            raise Malformed(f"{name} is missing or empty")
    amount, error = fields["amount"], fields["error"]
    if len(amount) > AMOUNT_LIMIT or not AMOUNT.fullmatch(amount):
        raise Malformed("amount is not a decimal number")
    if not CLICK_ERROR.fullmatch(error) or int(error) > 0:
        raise Malformed("error is not zero or a negative number")
    if not ID.fullmatch(fields["service_id"]):
        raise Malformed("service_id is not a number")
    return ClickRequest(
        click_trans_id=_bigint(fields, "click_trans_id"),
        click_trans_id_raw=fields["click_trans_id"],
        service_id=fields["service_id"],
        click_paydoc_id=_bigint(fields, "click_paydoc_id"),
        merchant_trans_id=fields["merchant_trans_id"],
        merchant_prepare_id=_bigint(fields, "merchant_prepare_id") if complete else None,
        merchant_prepare_id_raw=fields.get("merchant_prepare_id", "") if complete else "",
        amount=amount,
        action=fields["action"],
        error=int(error),
        error_note=fields.get("error_note") or None,
        sign_time=fields["sign_time"],
        sign_string=fields["sign_string"],
    )


def _bigint(fields: dict[str, str], name: str) -> int:
    raw = fields[name]
    if not ID.fullmatch(raw) or int(raw) > MAX_BIGINT:
        raise Malformed(f"{name} is not a 64-bit id")
    return int(raw)


def tiyin(amount: str) -> int | None:
    """A well-formed so'm amount in exact integer tiyin, or None if not whole tiyin (§5).

    String arithmetic rather than `Decimal(amount) * 100`: the default decimal context
    rounds to 28 digits, which would turn a 32-character `15000.000…01` into a whole
    number of tiyin.
    """
    whole, _, fraction = amount.partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > 2:
        return None
    return int(whole) * 100 + int(fraction.ljust(2, "0"))


def signature(request: ClickRequest, secret_key: str, *, complete: bool) -> str:
    """The MD5 Click computes (§4): the raw received strings, no separator, UTF-8."""
    parts = [
        request.click_trans_id_raw,
        request.service_id,
        secret_key,
        request.merchant_trans_id,
        request.merchant_prepare_id_raw if complete else "",
        request.amount,
        request.action,
        request.sign_time,
    ]
    return hashlib.md5("".join(parts).encode("utf-8")).hexdigest()


def signature_matches(
    request: ClickRequest, click: ClickSettings | None, *, complete: bool
) -> bool:
    """Our service and the right MD5, compared in constant time as bytes (§4, D6)."""
    if click is None or request.service_id != click.service_id:
        return False
    expected = signature(request, click.secret_key, complete=complete)
    return hmac.compare_digest(expected.encode(), request.sign_string.lower().encode("utf-8"))


def answer(
    code: int,
    request: ClickRequest | None = None,
    route: Route | None = None,
    payment_id: int | None = None,
) -> dict[str, Any]:
    """The JSON body of §3: ids are echoed once the fields are valid; ours only on success."""
    body: dict[str, Any] = {}
    if request is not None and code != BAD_REQUEST:
        body["click_trans_id"] = request.click_trans_id
        body["merchant_trans_id"] = request.merchant_trans_id
        if code == OK and route is not None:
            body[route.id_key] = payment_id
    body["error"] = code
    body["error_note"] = NOTES[code]
    return body


@dataclass(frozen=True)
class Handled:
    """The answer and what the callback log may show about the request."""

    answer: dict[str, Any]
    fields: dict[str, str] | None = None
    sign_ok: bool | None = None


async def process(
    body: bytes, route: Route, settings: Settings, db: Database, now_ms: int
) -> Handled:
    """Everything between the body bytes and the answer, in the order of §7."""
    if len(body) > BODY_LIMIT:
        return Handled(answer(BAD_REQUEST))
    try:
        fields = parse_form(body)
    except Malformed:
        return Handled(answer(BAD_REQUEST))
    try:
        request = parse_request(fields, complete=route.is_complete)
    except Malformed:
        return Handled(answer(BAD_REQUEST), fields)
    sign_ok = signature_matches(request, settings.click, complete=route.is_complete)
    if not sign_ok:
        return Handled(answer(SIGN_FAILED, request), fields, sign_ok)
    if request.action != route.action:
        return Handled(answer(NO_ACTION, request), fields, sign_ok)
    try:
        if route.is_complete:
            assert request.merchant_prepare_id is not None
            result = await click_db.complete(
                db, request.attempt(), request.merchant_prepare_id, settings.tariffs, now_ms
            )
        else:
            result = await click_db.prepare(db, request.attempt(), now_ms)
    except Exception:
        log.exception("click %s: failed; answering -7", route.path)
        return Handled(answer(FAILED, request), fields, sign_ok)
    return Handled(
        answer(CODES[result.outcome], request, route, result.payment_id), fields, sign_ok
    )


Handler = Callable[[web.Request], Awaitable[web.Response]]


def route_handler(route: Route) -> Handler:
    """The aiohttp handler of one route; every POST gets HTTP 200 JSON, whatever happens."""

    async def handler(request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        started = time.perf_counter()
        settings = request.app[SETTINGS]
        body = b""
        try:
            body = await read_bounded(request.content, BODY_LIMIT)
            handled = await process(
                body, route, settings, request.app[DATABASE], request.app[CLOCK]()
            )
        except Exception:
            log.exception("click %s: unexpected failure; answering -7", route.path)
            handled = Handled(answer(FAILED))
        log_callback(
            settings.callback_log_file,
            route=route.path,
            remote=request.remote,
            started=started,
            fields=_loggable(handled.fields),
            body_size=len(body),
            answer=handled.answer,
            extra={"sign_ok": handled.sign_ok},
        )
        return web.json_response(handled.answer)

    handler.__name__ = f"click_{route.action}"
    return handler


def _loggable(fields: dict[str, str] | None) -> dict[str, str] | None:
    """The received fields minus `sign_string` (§10: only whether it matched)."""
    if fields is None:
        return None
    return {name: value for name, value in fields.items() if name != "sign_string"}
