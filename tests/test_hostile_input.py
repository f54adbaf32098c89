"""Hostile input and connections (issue 12): each defect found by the hostile run has its
regression test here, on the real app over loopback HTTP, on SQLite and PostgreSQL.

Every answer must be the protocol's own (Click `-8`, Payme `-32700`/`-32600`, webhook
401/400), the database unchanged, and the log free of tracebacks and errors. Requests
that an HTTP client library would refuse to send (non-ASCII headers, half bodies) go over
a raw socket.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import BOT_TOKEN, FakeClock, message
from tests.providers.click.helpers import (
    ClickCaller,
    failed,
    make_order,
    ok_prepare,
    prepare_fields,
    snapshot,
)
from tests.providers.payme.helpers import AUTH, PaymeCaller, account, error_of
from web.env import SettingsError
from web.keys import DATABASE
from web.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def strict_json(text: str | bytes) -> Any:
    """JSON as RFC 8259 has it: `Infinity` and `NaN` are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def clean_log(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback and nothing at ERROR or above, from any logger."""
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def raw_http(
    client: TestClient, head: bytes, body: bytes = b"", *, close: bool = False
) -> tuple[int, bytes]:
    """One request over a raw socket: `head` is the request line and headers (without
    the blank line); returns the status and the body of the answer. `close` sends the
    request and hangs up without reading (a client that goes away)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        if close:
            return 0, b""
        answer = await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


def post_head(path: str, length: int, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}", *extra]
    return "\r\n".join(lines).encode("latin-1")


@pytest.fixture
def db(client: TestClient) -> Any:
    return client.server.app[DATABASE]


# --- the webhook ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    ["ключ".encode(), "naïve".encode("latin-1"), b"\xff\xfe", "oʻzbek".encode()],
    ids=["cyrillic-utf8", "latin1", "invalid-utf8", "modifier-letter"],
)
async def test_a_non_ascii_secret_header_is_401_not_500(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture, secret: bytes
) -> None:
    caplog.set_level(logging.INFO)
    body = json.dumps({"update_id": 1, "message": message(42, "/start")}).encode()
    head = post_head(settings.webhook_path, len(body), "Content-Type: application/json")
    status, _ = await raw_http(
        client, head + b"\r\n" + SECRET_HEADER.encode() + b": " + secret, body
    )
    assert status == 401
    clean_log(caplog)
    async with client.server.app[DATABASE].transaction() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM users")).scalar() == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{bad",
        b"",
        b"[]",
        b"42",
        b'{"update_id": "not a number"}',
        b'{"update_id": 1e309}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"update_id": 5, "message": {"chat": 1}}',
    ],
    ids=["bad", "empty", "list", "number", "str-id", "huge", "utf8", "deep", "no-message"],
)
async def test_junk_with_the_right_secret_is_400_logged_once(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    """Telegram resends every non-200 except... none: a 400 is resent too, but junk never
    comes from Telegram, and a 4xx tells whoever sent it that it is theirs to fix."""
    caplog.set_level(logging.INFO)
    response = await client.post(
        settings.webhook_path, data=body, headers={SECRET_HEADER: settings.webhook_secret}
    )
    assert response.status == 400
    clean_log(caplog)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].name == "web.webhook", warnings
    async with client.server.app[DATABASE].transaction() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM users")).scalar() == 0


async def test_a_good_update_still_works_after_the_guard(
    client: TestClient, settings: Settings, telegram: Any
) -> None:
    update = {"update_id": 77, "message": message(4242, "/start")}
    response = await client.post(
        settings.webhook_path, json=update, headers={SECRET_HEADER: settings.webhook_secret}
    )
    assert response.status == 200
    assert telegram.of("sendMessage", 4242)


# --- Payme: numbers JSON cannot carry, narrow columns ---------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"method": "CheckTransaction", "params": {"id": "x"}, "id": 1e309}',
        '{"method": "CheckTransaction", "params": {"id": "x"}, "id": -1e309}',
        '{"method": "CheckTransaction", "params": {"id": "x", "n": 1e999999}, "id": 5}',
        '{"method": "CheckTransaction", "params": {"id": "x"}, "id": 1' + "0" * 5000 + "}",
    ],
    ids=["id-inf", "id-minus-inf", "param-inf", "id-5000-digits"],
)
async def test_payme_huge_numbers_are_a_parse_error_in_valid_json(
    client: TestClient, db: Any, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    caplog.set_level(logging.INFO)
    response = await client.post(
        "/payme", data=text, headers={"Authorization": AUTH, "Content-Type": "text/json"}
    )
    assert response.status == 200
    answer = strict_json(await response.read())
    assert answer["id"] is None and error_of(answer) == (-32700, None)
    clean_log(caplog)


@pytest.mark.parametrize(
    ("request_id", "echoed"),
    [([1], None), ({"a": 1}, None), (True, None), ("s", "s"), (7, 7), (1.5, 1.5)],
)
async def test_payme_echoes_only_a_usable_id(
    client: TestClient, request_id: Any, echoed: Any
) -> None:
    body = json.dumps({"method": "Nope", "params": {}, "id": request_id})
    answer = await PaymeCaller(client).raw(body)
    assert answer["id"] == echoed and type(answer["id"]) is type(echoed)
    assert error_of(answer) == (-32601, "Nope")


async def test_payme_reason_and_fiscal_numbers_beyond_the_columns_are_not_retryable(
    client: TestClient, db: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL these were -32400 on every retry: `cancel_reason` is INTEGER and a
    JSON column refuses `Infinity`."""
    caplog.set_level(logging.INFO)
    payme = PaymeCaller(client)
    order = await make_order(db, 7301)
    await payme.result(
        "CreateTransaction", id="hostile-1", time=clock.now, amount=order.amount,
        account=account(order.merchant_trans_id),
    )  # fmt: skip
    before = await snapshot(db)
    for reason in (2**31, -(2**31) - 1, 2**63 - 1):
        answer = await payme.call("CancelTransaction", id="hostile-1", reason=reason)
        assert error_of(answer) == (-32600, "reason"), reason
    for number in ("1e309", "-1e309", "1E400"):
        text = (
            '{"method": "SetFiscalData", "id": 9, "params": {"id": "hostile-1", '
            '"type": "PERFORM", "fiscal_data": {"receipt_id": ' + number + "}}}"
        )
        answer = await payme.raw(text)
        assert error_of(answer) == (-32700, None) and answer["id"] is None
    assert await snapshot(db) == before
    # The edge that fits is taken: nothing above was refused for being merely large.
    answer = await payme.call("CancelTransaction", id="hostile-1", reason=2**31 - 1)
    assert answer["result"]["state"] == -1
    clean_log(caplog)


# --- encodings ------------------------------------------------------------------------


BOMB = gzip.compress(b"a" * 2_000_000)  # a small gzip bomb: 2 MB from 2 KB


def bad_encodings(valid: bytes) -> list[tuple[str, bytes]]:
    good_gzip = gzip.compress(valid)
    return [
        ("br", valid),
        ("zstd", valid),
        ("gzip, gzip", good_gzip),
        ("compress", valid),
        ("gzip", b"not gzip at all"),
        ("gzip", good_gzip[: len(good_gzip) // 2]),  # cut short
        ("gzip", good_gzip + b"trailing junk"),
        ("deflate", b"\x78\x9c garbage"),
        ("gzip", BOMB),
    ]


async def test_click_unsupported_or_undecodable_encoding_is_minus_8(
    client: TestClient, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    click = ClickCaller(client)
    order = await make_order(db, 7302)
    fields = prepare_fields(order.merchant_trans_id, 880001)
    valid = urlencode(fields).encode()
    before = await snapshot(db)
    for encoding, body in bad_encodings(valid):
        for path in ("/click/prepare", "/click/complete"):
            caplog.clear()
            answer = await click.post(path, body, headers={"Content-Encoding": encoding})
            assert answer == failed(-8), (encoding, path)
            clean_log(caplog)
            assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert await snapshot(db) == before
    # gzip and deflate that decode are read as the body they carry.
    for encoding, body in (("gzip", gzip.compress(valid)), ("deflate", zlib.compress(valid))):
        answer = await click.post("/click/prepare", body, headers={"Content-Encoding": encoding})
        assert answer["error"] == 0 and answer == ok_prepare(
            880001, order.merchant_trans_id, answer["merchant_prepare_id"]
        )


async def test_payme_unsupported_or_undecodable_encoding_is_a_parse_error(
    client: TestClient, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    valid = json.dumps({"method": "CheckTransaction", "params": {"id": "zz"}, "id": 3}).encode()
    before = await snapshot(db)
    for encoding, body in bad_encodings(valid):
        caplog.clear()
        response = await client.post(
            "/payme", data=body, headers={"Authorization": AUTH, "Content-Encoding": encoding}
        )
        assert response.status == 200
        answer = strict_json(await response.read())
        assert answer["id"] is None
        # Too large once decoded is D3's -32600; every other failure is step 3's -32700.
        assert error_of(answer) == (-32600 if body is BOMB else -32700, None), encoding
        clean_log(caplog)
    assert await snapshot(db) == before
    response = await client.post(
        "/payme",
        data=gzip.compress(valid),
        headers={"Authorization": AUTH, "Content-Encoding": "gzip"},
    )
    answer = strict_json(await response.read())
    assert answer["id"] == 3 and error_of(answer) == (-31003, None)


async def test_webhook_with_an_unsupported_encoding_is_400(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = json.dumps({"update_id": 1, "message": message(42, "/start")}).encode()
    headers = {SECRET_HEADER: settings.webhook_secret}
    for encoding, data in bad_encodings(body):
        response = await client.post(
            settings.webhook_path, data=data, headers={**headers, "Content-Encoding": encoding}
        )
        assert response.status == 400, encoding
    clean_log(caplog)


# --- settings -------------------------------------------------------------------------


def test_a_postgresql_url_with_a_port_that_is_not_a_number_is_one_line_exit_2() -> None:
    url = "postgresql://u:pw@127.0.0.1:notaport/x"
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings({"BOT_TOKEN": BOT_TOKEN, "DATABASE_URL": url})
    keep = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    done = subprocess.run(
        [sys.executable, "-m", "web"],
        cwd=ROOT,
        env={**keep, "BOT_TOKEN": BOT_TOKEN, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: DATABASE_URL")
    assert "pw" not in lines[0].replace("pw@host", "")
