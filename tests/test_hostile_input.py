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
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import BOT_TOKEN, FakeClock, message, telegram_url
from tests.providers.click.helpers import (
    ClickCaller,
    failed,
    make_order,
    ok_prepare,
    prepare_fields,
    snapshot,
)
from tests.providers.payme.helpers import AUTH, PaymeCaller, account, error_of
from web.accept_errors import ACCEPT_MESSAGE, RETRY_AFTER_CLOSE, AcceptErrorLog
from web.app import create_app
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
    server: Any, head: bytes, body: bytes = b"", *, close: bool = False
) -> tuple[int, bytes]:
    """One request over a raw socket: `head` is the request line and headers (without
    the blank line); returns the status and the body of the answer. `close` sends the
    request and hangs up without reading (a client that goes away)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        if close:
            await asyncio.sleep(0.2)  # the handler is reading the body when we hang up
            return 0, b""
        headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        length = 0
        for line in headers.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await asyncio.wait_for(reader.readexactly(length), 15)
    finally:
        writer.close()
    return int(headers.split()[1]), payload


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
    """Junk never comes from Telegram: a 4xx tells whoever sent it that it is theirs to
    fix, where a 500 said it was ours and logged a traceback."""
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


# --- stage 2: deadlines, clients that go away, descriptors, /health ------------------


@dataclass
class Served:
    host: str
    port: int
    app: web.Application


@pytest.fixture
async def quick(make_settings: Any, clock: FakeClock) -> AsyncIterator[Served]:
    """The app with a 0.5 s body deadline, served as `python -m web` serves it (aiohttp's
    TestServer cancels a handler whose client went away; `run_app` does not)."""
    settings = make_settings(REQUEST_BODY_TIMEOUT_SECONDS="0.5")
    app = create_app(settings, clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Served("127.0.0.1", runner.addresses[0][1], app)
    finally:
        await runner.cleanup()


def endpoints(settings: Settings) -> list[tuple[str, str, Any]]:
    """(path, extra header, check of the answer) for every route that reads a body."""

    def click(status: int, payload: bytes) -> None:
        assert status == 200 and json.loads(payload) == failed(-8)

    def payme(status: int, payload: bytes) -> None:
        answer = strict_json(payload)
        assert status == 200 and answer["id"] is None and error_of(answer) == (-32700, None)

    def webhook(status: int, payload: bytes) -> None:
        assert status == 400

    secret = f"{SECRET_HEADER}: {settings.webhook_secret}"
    return [
        ("/click/prepare", "Content-Type: application/x-www-form-urlencoded", click),
        ("/click/complete", "Content-Type: application/x-www-form-urlencoded", click),
        ("/payme", "Authorization: " + AUTH, payme),
        (settings.webhook_path, secret, webhook),
    ]


async def test_a_slow_or_endless_body_is_cut_at_the_deadline_and_answered_in_protocol(
    quick: Served, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for path, header, check in endpoints(settings):
        started = time.monotonic()
        status, payload = await raw_http(quick, post_head(path, 100, header), b"a=1&")
        assert time.monotonic() - started < 3, path
        check(status, payload)
        # A chunked body that never ends: a chunk every 50 ms, for ever.
        reader, writer = await asyncio.open_connection(quick.host, quick.port)
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{header}"
        writer.write(head.encode() + b"\r\n\r\n")
        started = time.monotonic()

        async def trickle(writer: asyncio.StreamWriter = writer) -> None:
            while True:
                writer.write(b"1\r\na\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)

        feeding = asyncio.create_task(trickle())
        try:
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        finally:
            feeding.cancel()
            writer.close()
        assert time.monotonic() - started < 3, path
        assert answer.split()[1] in (b"200", b"400"), answer
    clean_log(caplog)
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refused) == 8 and all("0.5 s" in line for line in refused), refused


async def test_a_client_that_goes_away_is_not_an_error(
    quick: Served, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = quick.app[DATABASE]
    before = await snapshot(db)
    for path, header, _ in endpoints(settings):
        await raw_http(quick, post_head(path, 1000, header), b"a=1", close=True)
    await asyncio.sleep(1.0)  # past the deadline: every handler has finished
    clean_log(caplog)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 4 and all(r.levelno == logging.INFO for r in gone), gone
    assert await snapshot(db) == before


async def test_a_webhook_body_over_a_megabyte_is_400(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"update_id": 1, "x": "' + b"a" * 1_048_576 + b'"}'
    response = await client.post(
        settings.webhook_path, data=body, headers={SECRET_HEADER: settings.webhook_secret}
    )
    assert response.status == 400
    clean_log(caplog)


async def test_health_answers_while_another_process_holds_the_sqlite_write_lock(
    telegram: Any, tmp_path: Path, clock: FakeClock
) -> None:
    """SQLite only: it is the database with one writer. /health took the write lock
    (BEGIN IMMEDIATE) and waited DATABASE_WAIT_SECONDS behind any other writer."""
    settings = load_settings(
        {
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": telegram_url(telegram),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db",
            "DATABASE_WAIT_SECONDS": "5",
        }
    )
    app = create_app(settings, clock=clock)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        other = sqlite3.connect(str(tmp_path / "bot.db"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE users SET first_name = first_name")
        try:
            started = time.monotonic()
            response = await client.get("/health")
            elapsed = time.monotonic() - started
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert response.status == 200 and (await response.json())["database"] == "ok"
        assert elapsed < 1.0, elapsed


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_running_out_of_descriptors_is_logged_once_per_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    passed_on: list[dict[str, Any]] = []
    clock = Clock()
    handler = AcceptErrorLog(lambda _loop, context: passed_on.append(context), clock=clock)
    loop = asyncio.new_event_loop()
    try:
        emfile = OSError(24, "Too many open files")
        for _burst in range(2):
            for _ in range(100):  # asyncio retries every second while the flood lasts
                handler(loop, {"message": ACCEPT_MESSAGE, "exception": emfile})
                clock.now += 1
            clock.now += 120  # quiet
        handler(loop, {"message": "something else", "exception": ValueError()})
        # The retry timer that fires after the server closed its socket, at a stop.
        closed = {"message": RETRY_AFTER_CLOSE + "(...)", "exception": ValueError("fd -1")}
        handler(loop, closed)
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "web.accept_errors"][:2]
    assert len(lines) == 2 and all("Too many open files" in line for line in lines), lines
    assert "(0 repeats" in lines[0] and "(99 repeats" in lines[1]
    assert [c["message"] for c in passed_on] == ["something else"]
    last = [r for r in caplog.records if r.name == "web.accept_errors"][-1]
    assert last.levelno == logging.INFO and not last.exc_info


# --- stage 3: the generated slice --------------------------------------------------------


async def test_a_generated_slice_is_answered_in_protocol_and_changes_nothing(
    database_url: str,
) -> None:
    """A few hundred of bench/hostile.py's requests (the full run is its command, in
    docs/hostile-input.md); its app runs in a thread, as the bench runs it."""
    from bench.hostile import run

    label = "SQLite" if database_url.startswith("sqlite") else "PostgreSQL"
    tally = await asyncio.to_thread(run, database_url, label, 300, 12)
    assert tally.requests == 300
    assert (tally.wrong, tally.db_changes, tally.crashes) == (0, 0, 0), tally.examples
    assert len(tally.by_label) >= 25, tally.by_label  # (nearly) every kind was made


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /payme HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc",
        b"POST /click/prepare HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\nContent-Length: 1\r\n\r\na",
        b"POST /payme HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ],
    ids=["chunk-size", "control-byte", "two-lengths"],
)
async def test_a_malformed_http_request_is_one_warning_line(
    quick: Served, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection(quick.host, quick.port)
    writer.write(request_bytes)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.split(b" ", 2)[1] == b"400", answer[:40]  # aiohttp answers; we log
    clean_log(caplog)
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 1 and lines[0].startswith("malformed HTTP request from"), lines


async def test_a_flood_beyond_the_descriptor_limit_logs_one_line_and_recovers(
    telegram: Any, tmp_path: Path
) -> None:
    """`python -m web` limited to 64 descriptors, and 120 clients whose bodies never end:
    accept() fails for seconds; the log says so once, without a traceback, and once the
    deadline has cut the bodies, /health answers again."""
    port = free_port()
    keep = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    env = {
        **keep,
        "PYTHONUNBUFFERED": "1",
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": telegram_url(telegram),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        "REQUEST_BODY_TIMEOUT_SECONDS": "2",
    }
    limited = (
        "import resource, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
        "runpy.run_module('web', run_name='__main__')"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", limited, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    clients: list[asyncio.StreamWriter] = []
    try:
        assert await health_status(port, wait=45) == 200
        head = post_head("/click/prepare", 100, "Content-Type: text/plain") + b"\r\n\r\na"
        for _ in range(120):  # within the listen backlog (128), beyond the descriptors
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head)
            clients.append(writer)
        await asyncio.sleep(4)  # the pause lasts a few accept retries
        for writer in clients:
            writer.close()
        assert await health_status(port, wait=20) == 200
    finally:
        process.terminate()
        output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if "cannot accept connections" in line]
    assert len(lines) == 1, output[-3000:]


def free_port() -> int:
    from tests.test_process import free_port

    return free_port()  # one that no parallel worker's server can take meanwhile


async def health_status(port: int, *, wait: float) -> int:
    """/health's status once it answers, trying for `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            status, _ = await raw_http(
                Served("127.0.0.1", port, web.Application()),
                b"GET /health HTTP/1.1\r\nHost: 127.0.0.1",
            )
            return status
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
