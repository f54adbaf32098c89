"""Click SHOP-API wire protocol: parse, validate, sign and answer (docs/providers/click.md).

Plain functions that tests call without HTTP; section numbers point into
docs/providers/click.md. The database decisions live in `decisions.py` and the aiohttp
route in `routes.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from db.money import parse_som
from web.providers.click import decisions
from web.providers.click.settings import ClickSettings

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
    decisions.Outcome.OK: OK,
    decisions.Outcome.WRONG_AMOUNT: WRONG_AMOUNT,
    decisions.Outcome.ALREADY_PAID: ALREADY_PAID,
    decisions.Outcome.NO_ORDER: NO_USER,
    decisions.Outcome.NO_PAYMENT: NO_TRANSACTION,
    decisions.Outcome.CANCELLED: CANCELLED,
    decisions.Outcome.FOREIGN_ATTEMPT: BAD_REQUEST,  # D9
    decisions.Outcome.CANCEL_ON_PAID: CANCELLED,  # A1
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

    def signs_as_complete(self, action: str) -> bool:
        """Which formula checks a request (A3): the received `action` chooses, so that a
        correctly signed request on the other route is told `-3`, not `-1`; an unknown
        `action` is checked with this route's own formula."""
        return {"0": False, "1": True}.get(action, self.is_complete)


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
    # Complete only (D2: a Prepare's is ignored); None when Click sent it empty with
    # error<0, a cancel after a refused Prepare (A2).
    merchant_prepare_id: int | None
    merchant_prepare_id_raw: str  # as received, for Complete's signature formula (A3)
    amount: str
    action: str
    error: int
    error_note: str | None
    sign_time: str
    sign_string: str

    def attempt(self) -> decisions.Attempt:
        return decisions.Attempt(
            click_trans_id=self.click_trans_id,
            click_paydoc_id=self.click_paydoc_id,
            merchant_trans_id=self.merchant_trans_id,
            amount=parse_som(self.amount),  # §5
            error=self.error,
            error_note=self.error_note,
            sign_time=self.sign_time,
        )


def parse_form(body: bytes) -> dict[str, str]:
    """Decode an `application/x-www-form-urlencoded` body strictly (§2).

    Refused: an empty body, invalid UTF-8 (raw or percent-encoded), a field without
    `=` (JSON bodies included), and a field given twice (which `parse_qsl` would keep).
    """
    if not body:
        raise Malformed("empty body")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except UnicodeDecodeError as error:
        raise Malformed("body is not UTF-8") from error
    except ValueError as error:
        raise Malformed("a field without '='") from error
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise Malformed("a field given twice")
    return fields


def parse_request(fields: dict[str, str], *, complete: bool) -> ClickRequest:
    """Validate the fields of §3 for the route; raises `Malformed` (`-8`).

    On the Complete route `merchant_prepare_id` is required unless the request is a
    Prepare (`action=0`, answered `-3` once signed, A3); it may be empty only with
    `error<0`, a cancel after a refused Prepare (A2).
    """
    for name in REQUIRED + REQUIRED_TOO:
        if not fields.get(name):
            raise Malformed(f"{name} is missing or empty")
    amount, error = fields["amount"], fields["error"]
    if len(amount) > AMOUNT_LIMIT or not AMOUNT.fullmatch(amount):
        raise Malformed("amount is not a decimal number")
    if not CLICK_ERROR.fullmatch(error) or int(error) > 0:
        raise Malformed("error is not zero or a negative number")
    if not ID.fullmatch(fields["service_id"]):
        raise Malformed("service_id is not a number")
    prepare_id: int | None = None
    if complete and fields["action"] != "0":
        if "merchant_prepare_id" not in fields:
            raise Malformed("merchant_prepare_id is missing")
        if fields["merchant_prepare_id"] or int(error) == 0:
            prepare_id = _bigint(fields, "merchant_prepare_id")
    return ClickRequest(
        click_trans_id=_bigint(fields, "click_trans_id"),
        click_trans_id_raw=fields["click_trans_id"],
        service_id=fields["service_id"],
        click_paydoc_id=_bigint(fields, "click_paydoc_id"),
        merchant_trans_id=fields["merchant_trans_id"],
        merchant_prepare_id=prepare_id,
        merchant_prepare_id_raw=fields.get("merchant_prepare_id", ""),
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
