"""Hostile input over the real app: hypothesis-generated requests, a tally per database.

    python -m bench.hostile --examples 10000 --seed 1 [--postgres URL]

Each example is one request over a raw loopback socket (so that headers no client
library would send, such as non-ASCII secrets, go out as bytes) to `/click/prepare`,
`/click/complete`, `/payme` or the webhook: mutated valid bodies, forged signatures,
wrong Basic auth, replays of a paid attempt with another amount or another user's order,
wrong content types, bodies over 1 MB, deep JSON, invalid UTF-8, numbers at the limits,
duplicated fields and bad encodings. Every request is made so that no correct app may
act on it; so the run checks that each answer is the protocol's own (HTTP 200 JSON with
a non-retryable error family for Click and Payme; 401 without the webhook's secret, 400
for junk with it), that the database is unchanged (a snapshot before and after) and that
nothing was logged at ERROR or with a traceback, and prints

    database  requests  wrong answers  DB changes  crashes  seconds

SQLite runs always; PostgreSQL when `--postgres` or `TEST_DATABASE_URL` names a server
(a scratch database is created and dropped). The app runs as `python -m web` serves it
(aiohttp's `AppRunner`), in a thread of its own; hypothesis drives the requests with
generation only (no shrinking: a wrong answer is counted and the first ones printed).
tests/test_hostile_input.py runs a slice of a few hundred examples per database.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

import asyncpg
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from tests.fake_telegram import FakeTelegram
from tests.providers.click.helpers import (
    complete_fields,
    make_order,
    prepare_fields,
    snapshot,
)
from web.app import create_app
from web.keys import DATABASE
from web.settings import load_settings

T = TypeVar("T")
BOT_TOKEN = "123456789:AAE_hostile_token_for_the_fake_bot_api_01"
SECRET = "hostile-webhook-secret"
PAYME_KEY = "TEST_KEY_example"
ENV = {
    "CLICK_SERVICE_ID": "28420",
    "CLICK_MERCHANT_ID": "20000",
    "CLICK_SECRET_KEY": "s3cr3tK3y",
    "PAYME_MERCHANT_ID": "587f72c72cac0d162c722ae2",
    "PAYME_KEY": PAYME_KEY,
    "BASE_URL": "https://bot.example.test",
    "WEBHOOK_SECRET": SECRET,
    "REQUEST_BODY_TIMEOUT_SECONDS": "2",
    "LOG_LEVEL": "WARNING",
}
WEBHOOK = "/webhook/telegram"
AUTH = "Basic " + base64.b64encode(f"Paycom:{PAYME_KEY}".encode()).decode()
PAID_CLICK = 7_700_001  # click_trans_id of the order Click paid at setup
PAID_PAYME = "hostile-paid-by-payme"
CLICK_CODES = {-1, -2, -3, -4, -5, -6, -8, -9}  # never 0 (nothing may pass), never -7
PAYME_CODES = {-32300, -32504, -32600, -32601, -32700, -31001, -31003, -31008, -31050, -31051}
READ_METHODS = {"CheckTransaction", "GetStatement"}  # a result is fine: they change nothing


# --- requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request and what family of answer it must get."""

    path: str
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    kind: str  # "click", "payme", "webhook-401", "webhook-400"
    label: str  # which generator made it, for the report


@dataclass(frozen=True)
class Fixture:
    """The rows every probe aims at: two paid orders (one per provider), one pending."""

    paid_click_mti: str
    paid_click_payment: int
    paid_payme_mti: str
    pending_mti: str


def header(name: str, value: str | bytes) -> tuple[bytes, bytes]:
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    return name.encode(), raw


SAFE_HEADER_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\r\n"), max_size=80
)
HEADER_BYTES = st.one_of(
    SAFE_HEADER_TEXT.map(lambda text: text.encode("utf-8")),
    # What an HTTP parser takes in a header value: tab, visible ASCII, and any byte >= 0x80.
    st.binary(max_size=40).map(lambda raw: bytes(b for b in raw if b == 9 or 32 <= b != 127)),
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/x-www-form-urlencoded",
        "application/json",
        "text/json; charset=UTF-8",
        "multipart/form-data; boundary=x",
        "text/plain; charset=koi8-r",
        "application/octet-stream",
        "ï»¿/ÿ",
    ]
)
ENCODINGS = st.sampled_from(["br", "zstd", "compress", "gzip, gzip", "x-unknown", "gzip"])
NUMBERS = st.sampled_from(
    [
        "0", "-0", "-1", "1e309", "-1e309", "1E400", "2147483648", "-2147483649",
        "9223372036854775807", "9223372036854775808", "-9223372036854775809",
        "18446744073709551616", "1" + "0" * 400, "1.5", "1e-400", "0.1e1", "NaN",
        "Infinity", "-Infinity", "1" * 5000,
    ]
)  # fmt: skip
JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
PADDING = st.sampled_from([65_537, 1_048_577, 1_500_000])


def _mutate_bytes(body: bytes, data: st.DataObject) -> bytes:
    """Invalid UTF-8, a cut, or a stray byte at a drawn place."""
    where = data.draw(st.integers(0, max(len(body), 1)))
    how = data.draw(st.sampled_from(["invalid-utf8", "cut", "byte"]))
    if how == "invalid-utf8":
        return (
            body[:where]
            + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
            + body[where:]
        )
    if how == "cut":
        return body[:where]
    return body[:where] + bytes([data.draw(st.integers(0, 255))]) + body[where + 1 :]


def click_probe(data: st.DataObject, fx: Fixture) -> Probe:
    path = data.draw(st.sampled_from(["/click/prepare", "/click/complete"]))
    complete = path == "/click/complete"
    mti, trans = fx.paid_click_mti, PAID_CLICK
    how = data.draw(
        st.sampled_from(
            ["forged", "replay-amount", "replay-order", "duplicate", "junk", "random-form",
             "bytes", "padding", "encoding", "content-type", "unknown-order"]
        )
    )  # fmt: skip

    def signed(**changes: str) -> dict[str, str]:
        if complete:
            return complete_fields(
                changes.pop("mti", mti), changes.pop("trans", trans), fx.paid_click_payment,
                **changes,
            )  # fmt: skip
        return prepare_fields(changes.pop("mti", mti), changes.pop("trans", trans), **changes)

    fields = signed()
    headers = [header("Content-Type", "application/x-www-form-urlencoded")]
    if how == "forged":  # a signed field changed, the signature left as it was
        name = data.draw(
            st.sampled_from(["click_trans_id", "service_id", "merchant_trans_id", "amount",
                             "action", "sign_time", "sign_string"]
                            + (["merchant_prepare_id"] if complete else []))
        )  # fmt: skip
        value = data.draw(st.one_of(st.text(max_size=40), NUMBERS))
        fields[name] = value if value != fields[name] else value + "x"
    elif how == "replay-amount":  # the paid attempt again, correctly signed, another amount
        amount = data.draw(st.integers(1, 10**12)).__str__() + ".00"
        fields = signed(amount=amount if amount != "15000.00" else "15001.00")
    elif how == "replay-order":  # the paid attempt's id, for another user's order
        fields = signed(mti=data.draw(st.sampled_from([fx.paid_payme_mti, fx.pending_mti])))
    elif how == "unknown-order":  # a correctly signed new attempt for an order that is not
        fields = signed(mti=data.draw(st.text(min_size=1, max_size=64)), trans="7700999")
    body = urlencode(fields).encode()
    if how == "duplicate":
        name = data.draw(st.sampled_from(sorted(fields)))
        body += b"&" + urlencode({name: data.draw(st.text(max_size=20))}).encode()
    elif how == "junk":
        body = data.draw(st.binary(max_size=300))
    elif how == "random-form":
        pairs = data.draw(
            st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=12)
        )
        body = urlencode(pairs).encode()
    elif how == "bytes":
        body = _mutate_bytes(body, data)
    elif how == "padding":
        body += b"&pad=" + b"a" * data.draw(PADDING)
    elif how == "encoding":
        encoding = data.draw(ENCODINGS)
        headers.append(header("Content-Encoding", encoding))
        if encoding == "gzip":
            body = gzip.compress(body)[: data.draw(st.integers(0, 30))]  # never whole
    elif how == "content-type":
        content_type = data.draw(CONTENT_TYPES)
        headers = [] if content_type is None else [header("Content-Type", content_type)]
        if how == "content-type" and data.draw(st.booleans()):
            body = json.dumps(fields).encode()
    return Probe(path, body, tuple(headers), "click", how)


def payme_probe(data: st.DataObject, fx: Fixture) -> Probe:
    how = data.draw(
        st.sampled_from(
            ["wrong-auth", "bad-params", "replay-amount", "replay-order", "numbers", "deep",
             "json", "bytes", "padding", "encoding", "duplicate", "not-post-ish"]
        )
    )  # fmt: skip
    auth: str | bytes | None = AUTH
    request_id: Any = data.draw(st.one_of(st.integers(), st.text(max_size=10), st.none()))
    message: dict[str, Any] = {
        "method": "CreateTransaction",
        "params": {
            "id": PAID_PAYME, "time": 1_730_034_600_000, "amount": 1_500_000,
            "account": {"order_id": fx.paid_payme_mti},
        },
        "id": request_id,
    }  # fmt: skip
    text: str | None = None
    if how == "wrong-auth":  # any method, even a valid refund, with the wrong credentials
        message["method"] = data.draw(
            st.sampled_from(["CancelTransaction", "PerformTransaction", "SetFiscalData",
                             "CreateTransaction", "CheckPerformTransaction"])
        )  # fmt: skip
        message["params"] |= {"reason": 5, "type": "PERFORM", "fiscal_data": {"a": 1}}
        auth = data.draw(
            st.one_of(
                st.none(),
                HEADER_BYTES,
                st.text(max_size=30).map(
                    lambda key: "Basic " + base64.b64encode(f"Paycom:{key}x".encode()).decode()
                ),
                st.just("Basic " + base64.b64encode(b"Paycom:Uzcard:someRandomString15").decode()),
                st.just("Bearer " + PAYME_KEY),
            )
        )
    elif how == "bad-params":  # a param of the wrong type or range: refused before any write
        method = data.draw(
            st.sampled_from(["CancelTransaction", "SetFiscalData", "CreateTransaction",
                             "PerformTransaction", "CheckPerformTransaction"])
        )  # fmt: skip
        message["method"] = method
        params = message["params"]
        bad = data.draw(
            st.one_of(st.text(max_size=8), st.floats(), st.lists(st.integers(), max_size=2),
                      st.just(2**63), st.just(-(2**31) - 1), st.just(True))
        )  # fmt: skip
        if method == "CancelTransaction":
            params["reason"] = (
                bad
                if not isinstance(bad, int)
                or bad >= 2**31
                or bad < -(2**31)
                or isinstance(bad, bool)
                else 2**31
            )
        elif method == "SetFiscalData":
            params["type"], params["fiscal_data"] = "PERFORM", bad
        elif method == "PerformTransaction":
            params["id"] = data.draw(st.one_of(st.just(""), st.just("x" * 65), st.integers()))
        else:
            params["amount"] = (
                bad if not isinstance(bad, int) or isinstance(bad, bool) or bad > 2**62 else "1"
            )
    elif how == "replay-amount":
        message["params"]["amount"] = data.draw(
            st.integers(1, 2**62).filter(lambda a: a != 1_500_000)
        )
    elif how == "replay-order":
        message["params"]["account"] = {
            "order_id": data.draw(st.sampled_from([fx.paid_click_mti, "nope"]))
        }
        message["params"]["id"] = data.draw(st.sampled_from([PAID_PAYME, "hostile-new"]))
    elif how == "numbers":  # numbers at the limits in a refund that must not happen
        message["method"] = "CancelTransaction"
        number = data.draw(NUMBERS)
        where = data.draw(st.sampled_from(["id", "reason", "time"]))
        # On a transaction that does not exist, so that a number that fits changes nothing.
        params = {**message["params"], "id": "hostile-unknown", "reason": "@R@"}
        call = {**message, "params": params}
        text = json.dumps(call).replace('"@R@"', number if where == "reason" else '"x"')
        if where != "reason":
            text = text.replace(f'"id": {json.dumps(request_id)}', f'"id": {number}', 1)
            text = (
                text.replace('"time": 1730034600000', f'"time": {number}')
                if where == "time"
                else text
            )
    elif how == "deep":
        depth = data.draw(st.integers(1000, 200_000))
        text = '{"method": "CheckTransaction", "id": ' + "[" * depth + "]" * depth + "}"
    elif how == "json":
        message = data.draw(
            st.dictionaries(
                st.sampled_from(["method", "params", "id", "jsonrpc", "x"]), JSON_VALUES
            )
        )
        if isinstance(message.get("method"), str) and message["method"] in {
            "CancelTransaction",
            "PerformTransaction",
            "SetFiscalData",
            "CreateTransaction",
        }:
            message["method"] = "ChangePassword"
    elif how == "duplicate":  # the last of two members wins in Python; both must be refused
        text = json.dumps(message)[:-1] + ', "method": "ChangePassword"}'
    elif how == "not-post-ish":
        text = data.draw(st.sampled_from(["", "[]", "null", "1", '"x"', "[{}]"]))
    if text is None:
        text = json.dumps(message)
    body = text.encode("utf-8", "surrogatepass")
    headers = [header("Content-Type", "text/json; charset=UTF-8")]
    if how == "bytes":
        body = _mutate_bytes(json.dumps({**message, "method": "CheckTransaction"}).encode(), data)
        body = (
            body
            if body != json.dumps({**message, "method": "CheckTransaction"}).encode()
            else b"\xff" + body
        )
    elif how == "padding":
        body = json.dumps({**message, "pad": "a" * data.draw(PADDING)}).encode()
    elif how == "encoding":
        encoding = data.draw(ENCODINGS)
        headers.append(header("Content-Encoding", encoding))
        if encoding == "gzip":
            body = gzip.compress(body)[: data.draw(st.integers(0, 30))]
    if auth is not None:
        headers.append(header("Authorization", auth))
    return Probe("/payme", body, tuple(headers), "payme", how)


def webhook_probe(data: st.DataObject, fx: Fixture) -> Probe:
    with_secret = data.draw(st.booleans())
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1, "date": 1_730_000_000, "chat": {"id": 4242, "type": "private"},
            "from": {"id": 4242, "is_bot": False, "first_name": "H"}, "text": "/start",
        },
    }  # fmt: skip
    headers = [header("Content-Type", "application/json")]
    if not with_secret:  # a real update, with a wrong, missing or non-ASCII secret
        secret = data.draw(st.one_of(st.none(), HEADER_BYTES))
        if secret is not None and secret != SECRET.encode():
            headers.append((b"X-Telegram-Bot-Api-Secret-Token", secret))
        return Probe(
            WEBHOOK, json.dumps(update).encode(), tuple(headers), "webhook-401", "no-secret"
        )
    headers.append(header("X-Telegram-Bot-Api-Secret-Token", SECRET))
    how = data.draw(
        st.sampled_from(["json", "no-update-id", "bytes", "deep", "padding", "encoding"])
    )
    if how == "json":
        value = data.draw(
            JSON_VALUES.filter(lambda v: not isinstance(v, dict) or "update_id" not in v)
        )
        body = json.dumps(value).encode("utf-8", "surrogatepass")
    elif how == "no-update-id":  # an update_id pydantic cannot take as an integer
        no_digits = st.text(max_size=5).filter(lambda text: not any(c.isdigit() for c in text))
        fractions = st.floats(allow_nan=False).filter(lambda f: not math.isfinite(f) or f != int(f))
        update_id = data.draw(st.one_of(no_digits, fractions, st.none(), st.lists(st.integers())))
        body = json.dumps({**update, "update_id": update_id}).encode()
    elif how == "bytes":
        body = b"\xff" + _mutate_bytes(json.dumps(update).encode(), data)
    elif how == "deep":
        depth = data.draw(st.integers(1000, 200_000))
        body = b'{"update_id": ' + b"[" * depth + b"]" * depth + b"}"
    elif how == "padding":
        body = json.dumps({**update, "update_id": "x", "pad": "a" * data.draw(PADDING)}).encode()
    else:
        encoding = data.draw(ENCODINGS)
        headers.append(header("Content-Encoding", encoding))
        body = (
            gzip.compress(json.dumps(update).encode())[:20]
            if encoding == "gzip"
            else json.dumps(update).encode()
        )
    return Probe(WEBHOOK, body, tuple(headers), "webhook-400", how)


PROBES: tuple[Callable[[st.DataObject, Fixture], Probe], ...] = (
    click_probe,
    payme_probe,
    webhook_probe,
)


# --- checking an answer ---------------------------------------------------------------


def verdict(probe: Probe, status: int, headers: dict[str, str], body: bytes) -> str | None:
    """None when the answer is the protocol's own; else what is wrong with it."""
    if probe.kind.startswith("webhook"):
        expected = 401 if probe.kind == "webhook-401" else 400
        return None if status == expected else f"HTTP {status}, expected {expected}"
    if status != 200:
        return f"HTTP {status}"
    if headers.get("content-type") != "application/json; charset=utf-8":
        return f"Content-Type {headers.get('content-type')!r}"
    try:
        answer = json.loads(body, parse_constant=_not_json)
    except ValueError as error:
        return f"not JSON: {error}"
    if probe.kind == "click":
        code = answer.get("error") if isinstance(answer, dict) else None
        return None if type(code) is int and code in CLICK_CODES else f"Click error {code!r}"
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0" or "id" not in answer:
        return f"not JSON-RPC: {body[:80]!r}"
    if "result" in answer:
        try:
            method = json.loads(probe.body).get("method")
        except (ValueError, AttributeError, RecursionError):
            method = None
        return None if method in READ_METHODS else f"a result for {method!r}"
    code = answer.get("error", {}).get("code")
    return None if code in PAYME_CODES else f"Payme error {code!r}"


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# --- the app in a thread, and a raw HTTP client -----------------------------------------


class LogWatch(logging.Handler):
    """Counts what must never be logged: a traceback, or anything at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(f"{record.name}: {record.getMessage()[:200]}")


class Served:
    """The fake Bot API and the app on one event loop in a thread of their own."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    async def _start(self) -> None:
        telegram = FakeTelegram()
        self.telegram_runner = web.AppRunner(telegram.app, access_log=None)
        await self.telegram_runner.setup()
        telegram_site = web.TCPSite(self.telegram_runner, "127.0.0.1", 0)
        await telegram_site.start()
        telegram_port = self.telegram_runner.addresses[0][1]
        env = {
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": f"http://127.0.0.1:{telegram_port}",
            "DATABASE_URL": self.database_url,
            **ENV,
        }
        self.app = create_app(load_settings(env))
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.telegram_runner.cleanup()

    @contextmanager
    def running(self) -> Iterator[Served]:
        self.thread.start()
        try:
            self.call(self._start())
            yield self
        finally:
            try:
                self.call(self._stop())
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(10)

    async def send(self, probe: Probe) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            head = [f"POST {probe.path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
            head += [name + b": " + value for name, value in probe.headers]
            head += [f"Content-Length: {len(probe.body)}".encode(), b"Connection: close"]
            writer.write(b"\r\n".join(head) + b"\r\n\r\n" + probe.body)
            await writer.drain()
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            lines = raw.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await asyncio.wait_for(reader.readexactly(length), 30)
            return int(lines[0].split()[1]), headers, body
        finally:
            writer.close()


# --- one run ----------------------------------------------------------------------------


@dataclass
class Tally:
    database: str
    requests: int = 0
    wrong: int = 0
    db_changes: int = 0
    crashes: int = 0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)
    by_label: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"{self.database:<10} {self.requests:>8} {self.wrong:>13} {self.db_changes:>10} "
            f"{self.crashes:>7} {self.seconds:>7.1f}"
        )


HEADER_LINE = "database   requests  wrong answers  DB changes  crashes  seconds"


async def _setup(served: Served) -> Fixture:
    """Two paid orders (Click, Payme) and a pending one, paid through the real routes."""
    db = served.app[DATABASE]
    click_order = await make_order(db, 9_100_001, mti="9100001_PLUS_1730034567")
    payme_order = await make_order(db, 9_100_002, mti="9100002_PLUS_1730034567")
    pending = await make_order(db, 9_100_003, mti="9100003_PLUS_1730034567")
    form = [header("Content-Type", "application/x-www-form-urlencoded")]
    _, _, body = await served.send(
        Probe(
            "/click/prepare",
            urlencode(prepare_fields(click_order.merchant_trans_id, PAID_CLICK)).encode(),
            tuple(form),
            "click",
            "setup",
        )
    )
    prepare_id = json.loads(body)["merchant_prepare_id"]
    fields = complete_fields(click_order.merchant_trans_id, PAID_CLICK, prepare_id)
    _, _, body = await served.send(
        Probe("/click/complete", urlencode(fields).encode(), tuple(form), "click", "setup")
    )
    assert json.loads(body)["error"] == 0, body
    auth = (header("Authorization", AUTH),)
    now = int(time.time() * 1000)
    for method, params in (
        ("CreateTransaction", {"id": PAID_PAYME, "time": now, "amount": payme_order.amount,
                               "account": {"order_id": payme_order.merchant_trans_id}}),
        ("PerformTransaction", {"id": PAID_PAYME}),
    ):  # fmt: skip
        message = json.dumps({"method": method, "params": params, "id": 1}).encode()
        _, _, body = await served.send(Probe("/payme", message, auth, "payme", "setup"))
        assert "result" in json.loads(body), body
    return Fixture(
        click_order.merchant_trans_id,
        prepare_id,
        payme_order.merchant_trans_id,
        pending.merchant_trans_id,
    )


def _changed_rows(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> int:
    """Rows added, removed or changed, over every table (rows compared by their text)."""
    return sum(
        len({repr(row) for row in before[name]} ^ {repr(row) for row in after[name]})
        for name in before
    )


def run(database_url: str, label: str, examples: int, seed_value: int) -> Tally:
    """`examples` generated requests against a fresh app on `database_url`."""
    tally = Tally(label)
    watch = LogWatch()
    root = logging.getLogger()
    served = Served(database_url)
    with served.running():
        fixture = served.call(_setup(served))
        served.call(asyncio.sleep(1))  # the setup's notices go out; delivery is not ours
        before = served.call(snapshot(served.app[DATABASE]))
        root.addHandler(watch)
        started = time.perf_counter()
        try:

            @seed(seed_value)
            @settings(
                max_examples=examples,
                phases=[Phase.generate],
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(st.data())
            def one(data: st.DataObject) -> None:
                make = data.draw(st.sampled_from(PROBES))
                probe = make(data, fixture)
                tally.requests += 1
                kind = f"{probe.kind}:{probe.label}"
                tally.by_label[kind] = tally.by_label.get(kind, 0) + 1
                try:
                    status, headers, body = served.call(served.send(probe))
                    wrong = verdict(probe, status, headers, body)
                except Exception as error:  # no answer at all is a wrong answer too
                    wrong = f"no answer: {type(error).__name__}: {error}"
                if wrong is not None:
                    tally.wrong += 1
                    if len(tally.examples) < 10:
                        tally.examples.append(
                            f"{probe.path} {probe.label}: {wrong}; body {probe.body[:120]!r}"
                        )

            one()
        finally:
            root.removeHandler(watch)
            tally.seconds = time.perf_counter() - started
        after = served.call(snapshot(served.app[DATABASE]))
    tally.db_changes = _changed_rows(before, after)
    tally.crashes = len(watch.bad)
    tally.examples += watch.bad[:10]
    return tally


@contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
    """A new database on the server, dropped afterwards: the run must not touch a real one."""
    url = make_url(load_settings({"BOT_TOKEN": BOT_TOKEN, "DATABASE_URL": server_url}).database_url)
    name = f"hostile_{uuid.uuid4().hex[:12]}"
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="requests per database")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL", ""))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # the refusals' warnings are expected
        handler.setLevel(logging.ERROR)
    tallies = []
    with tempfile.TemporaryDirectory() as directory:
        tallies.append(
            run(f"sqlite+aiosqlite:///{directory}/hostile.db", "SQLite", args.examples, args.seed)
        )
    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            tallies.append(run(url, "PostgreSQL", args.examples, args.seed))
    print(HEADER_LINE)
    for tally in tallies:
        print(tally.line())
    for tally in tallies:
        for example in tally.examples:
            print(f"{tally.database}: {example}")
    if any(t.wrong or t.db_changes or t.crashes for t in tallies):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
