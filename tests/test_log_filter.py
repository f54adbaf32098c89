"""The log filter (web/log_filter.py) and the secrets scan (tests/secrets_scan.py).

Why: the bot token reached the log when the Bot API answered with a redirect loop
(aiohttp's TooManyRedirects prints the URL, which holds the token). The end-to-end test
recreates exactly that against the real app and reads what a log handler writes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import BOT_TOKEN, CLICK_ENV, PAYME_ENV, message
from tests.test_process import free_port
from web import log_filter
from web.app import create_app
from web.log_filter import MASK, SecretsFilter
from web.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
FORMAT = "%(levelname)s %(name)s: %(message)s"


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return load_settings(
        {
            "BOT_TOKEN": BOT_TOKEN,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db",
            "BASE_URL": "https://bot.example.test",
            "PAYME_TEST_KEY": "TEST_KEY_sandbox_only",
            **CLICK_ENV,
            **PAYME_ENV,
            **env,
        }
    )


def record(msg: str, *args: Any, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("t", logging.ERROR, __file__, 1, msg, args, exc_info)


def formatted(secrets_filter: SecretsFilter, rec: logging.LogRecord) -> str:
    assert secrets_filter.filter(rec) is True  # never drops a record
    return logging.Formatter(FORMAT).format(rec)


def test_every_secret_of_the_settings_is_collected(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    secrets = set(log_filter.secrets_of(settings))
    assert {
        BOT_TOKEN,
        BOT_TOKEN.partition(":")[2],
        settings.webhook_secret,
        CLICK_ENV["CLICK_SECRET_KEY"],
        PAYME_ENV["PAYME_KEY"],
        "TEST_KEY_sandbox_only",
    } <= secrets
    assert CLICK_ENV["CLICK_SERVICE_ID"] not in secrets  # ids are not secrets


def test_message_args_exception_and_stack_are_scrubbed() -> None:
    secrets_filter = SecretsFilter([BOT_TOKEN, "s3cr3tK3y"])
    url = f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"
    assert (
        formatted(secrets_filter, record(f"GET {url}"))
        == f"ERROR t: GET https://api.telegram.org/bot{MASK}/sendMessage"
    )
    assert "s3cr3tK3y" not in formatted(
        secrets_filter, record("key %s, %r", "s3cr3tK3y", {"k": "s3cr3tK3y"})
    )
    try:
        raise RuntimeError(f"redirected from {url}")
    except RuntimeError as error:
        text = formatted(secrets_filter, record("send failed", exc=error))
    assert "RuntimeError: redirected from" in text and BOT_TOKEN not in text
    stacked = record("here")
    stacked.stack_info = f"Stack: {url}"
    assert BOT_TOKEN not in formatted(secrets_filter, stacked)
    encoded = BOT_TOKEN.replace(":", "%3A")
    assert encoded not in formatted(secrets_filter, record(f"bot{encoded}/getMe"))


def test_an_exception_text_already_formatted_by_an_earlier_handler_is_scrubbed() -> None:
    try:
        raise RuntimeError(BOT_TOKEN)
    except RuntimeError as error:
        rec = record("failed", exc=error)
    logging.Formatter().format(rec)  # caches exc_text, as a handler before the filter does
    assert BOT_TOKEN in str(rec.exc_text)
    assert BOT_TOKEN not in formatted(SecretsFilter([BOT_TOKEN]), rec)


def test_a_record_without_a_secret_is_left_as_it_was() -> None:
    rec = record("user %s paid %s", 42, 1_500_000)
    assert formatted(SecretsFilter([BOT_TOKEN]), rec) == "ERROR t: user 42 paid 1500000"
    assert rec.args == (42, 1_500_000) and rec.msg == "user %s paid %s"


def test_short_values_are_not_treated_as_secrets() -> None:
    assert formatted(SecretsFilter(["key", ""]), record("a key")) == "ERROR t: a key"


@pytest.fixture
def root_log() -> Iterator[tuple[io.StringIO, io.StringIO, logging.Handler]]:
    """Two handlers on the root logger, first in line: one as `python -m web` has it
    (the filter installed) and, ahead of it, a bare one that shows what would leak."""
    raw, scrubbed = io.StringIO(), io.StringIO()
    bare, filtered = logging.StreamHandler(raw), logging.StreamHandler(scrubbed)
    for handler in (bare, filtered):
        handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    level = root.level
    root.handlers[0:0] = [bare, filtered]
    root.setLevel(logging.INFO)
    try:
        yield raw, scrubbed, filtered
    finally:
        root.removeHandler(bare)
        root.removeHandler(filtered)
        root.setLevel(level)


async def test_a_bot_api_redirect_loop_never_puts_the_token_in_the_log(
    tmp_path: Path,
    aiohttp_server: Any,
    root_log: tuple[io.StringIO, io.StringIO, logging.Handler],
) -> None:
    raw, scrubbed, filtered = root_log
    hits = 0

    async def redirect_loop(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        raise web.HTTPFound(str(request.rel_url))  # aiohttp follows it: TooManyRedirects

    loop_app = web.Application()
    loop_app.router.add_route("*", "/{tail:.*}", redirect_loop)
    server = await aiohttp_server(loop_app)
    settings = settings_for(tmp_path, TELEGRAM_API_URL=f"http://{server.host}:{server.port}")
    log_filter.install(settings, [filtered])

    app = create_app(settings, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await client.post(
            settings.webhook_path,
            json={"update_id": 1, "message": message(4242, "/start")},
            headers={"X-Telegram-Bot-Api-Secret-Token": settings.webhook_secret},
        )
        for _ in range(200):  # up to 20 s for the link's retry to log too
            if "TooManyRedirects" in raw.getvalue():
                break
            await asyncio.sleep(0.1)

    leaked, written = raw.getvalue(), scrubbed.getvalue()
    assert hits > 10 and "TooManyRedirects" in leaked and BOT_TOKEN in leaked  # the old leak
    assert "TooManyRedirects" in written and MASK in written
    assert BOT_TOKEN not in written and BOT_TOKEN.partition(":")[2] not in written
    assert written.count("\n") >= leaked.count("\n") // 2  # lines scrubbed, not dropped


def test_the_secrets_scan_fails_a_session_whose_output_holds_a_credential(
    tmp_path: Path,
) -> None:
    """A child pytest with the plugin: a logged secret is masked by the filter (passes);
    a printed one is found and fails the session, named by label, never by value."""
    secret = "SECRET_value_123456"
    (tmp_path / "conftest.py").write_text(
        "from tests.secrets_scan import SecretsScan\n"
        "def pytest_configure(config):\n"
        f"    config.pluginmanager.register(SecretsScan({{'the test key': {secret!r}}}))\n"
    )
    (tmp_path / "test_child.py").write_text(
        "import logging\n"
        f"def test_logs_it():\n    logging.getLogger('x').warning('key %s', {secret!r})\n"
        f"def test_prints_it():\n    print('oops', {secret!r})\n"
    )
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*args, *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    clean = run("-k", "logs_it")
    assert clean.returncode == 0, clean.stdout
    assert "no credential found" in clean.stdout and secret not in clean.stdout
    leaky = run()
    assert leaky.returncode == 1, leaky.stdout
    assert "2 passed" in leaky.stdout
    assert "test_child.py::test_prints_it (Captured stdout call): the test key" in leaky.stdout
    assert "test_logs_it" not in leaky.stdout.split("secrets scan")[-1]
    # Under pytest-xdist (README's command runs so) the scan still sees every worker's output.
    parallel = run("-n", "2")
    assert parallel.returncode == 1, parallel.stdout
    assert "2 passed" in parallel.stdout
    assert "test_child.py::test_prints_it (Captured stdout call): the test key" in parallel.stdout
    assert "test_logs_it" not in parallel.stdout.split("secrets scan")[-1]


@pytest.mark.slow
async def test_python_m_web_installs_the_filter_on_its_log(
    tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any
) -> None:
    """The real process: a redirect-looping Bot API, one webhook update whose reply fails;
    its stdout (the log) names TooManyRedirects and never the token."""

    async def redirect_loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.rel_url))

    loop_app = web.Application()
    loop_app.router.add_route("*", "/{tail:.*}", redirect_loop)
    server = await aiohttp_server(loop_app)
    port = free_port()  # out of the range a parallel worker's server may be given
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": f"http://{server.host}:{server.port}",
        "BASE_URL": "https://bot.example.test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **CLICK_ENV,
        **PAYME_ENV,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "web",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    settings = settings_for(tmp_path)
    try:
        status = 0
        for _ in range(300):  # the app imports slowly on a loaded machine
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"http://127.0.0.1:{port}{settings.webhook_path}",
                json={"update_id": 1, "message": message(4242, "/start")},
                headers={"X-Telegram-Bot-Api-Secret-Token": settings.webhook_secret},
            )
            status = response.status
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    log = output.decode()
    assert status == 200, log
    assert "TooManyRedirects" in log, log
    assert BOT_TOKEN not in log and BOT_TOKEN.partition(":")[2] not in log
