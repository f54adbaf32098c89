"""Shared fixtures: a real database per test, the fake Bot API, the real app over HTTP."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from tests import pg_server
from tests.fake_telegram import FakeTelegram
from tests.secrets_scan import PLUGIN_NAME, SecretsScan
from web.app import create_app
from web.keys import TELEGRAM_LINK
from web.settings import Settings, load_settings

BOT_TOKEN = "123456789:AAE_test_token_for_the_fake_bot_api_0123"
BASE_URL = "https://bot.example.test"
CLICK_ENV = {
    "CLICK_SERVICE_ID": "28420",
    "CLICK_MERCHANT_ID": "20000",
    "CLICK_SECRET_KEY": "s3cr3tK3y",
}
PAYME_ENV = {
    "PAYME_MERCHANT_ID": "587f72c72cac0d162c722ae2",
    "PAYME_KEY": "TEST_KEY_example",
}
_update_ids = itertools.count(1)


class FakeClock:
    """A clock tests move by hand (integer ms), starting at the real time."""

    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, *, days: float = 0, hours: float = 0, seconds: float = 0) -> None:
        self.now += int((days * 86400 + hours * 3600 + seconds) * 1000)


def pytest_configure(config: pytest.Config) -> None:
    """The session's plugins: a throwaway PostgreSQL when none is given (tests/pg_server.py)."""
    config.pluginmanager.register(pg_server.PostgresPlugin(), "tariffbot-pg-server")
    config.pluginmanager.register(SecretsScan(scanned_secrets()), PLUGIN_NAME)


# Tests that measure sends per second or race for SQLite's write lock within a short
# wait: on a small machine two of them side by side starve each other (seen with four
# workers: two 500-message broadcasts at once missed their deadline). Under pytest-xdist
# (README's command, `--dist loadgroup`) they form one work unit, run one after another on
# one worker; that unit, the largest, is handed out first. Other tests run beside them.
# xdist's own `xdist_group` marker does nothing with pytest 9 (xdist 3.8 renames the item
# through `item._nodeid`, which pytest 9 no longer reads), so the scheduler groups them.
PACED_TESTS = {
    "tests/admin/test_broadcast.py": {
        "test_500_messages_go_at_the_rate_with_the_status_edited_every_few_seconds",
        "test_cancelled_half_way_nothing_more_is_sent_and_payment_notices_go_first",
    },
    "tests/test_instances.py": {
        "test_instances_started_together_share_one_send_rate",
        "test_sigterm_to_the_sender_during_a_stream_sends_nothing_twice",
    },
    "tests/workers/test_sender_lock.py": {
        "test_a_holder_that_loses_its_lock_session_stops_and_the_standby_takes_over",
    },
    "tests/test_sqlite_inloop.py": {
        "test_a_busy_database_is_waited_for_without_stopping_the_loop",
        "test_a_writer_held_past_the_bound_fails_the_transaction",
    },
    "tests/test_sqlite_writers_at_once.py": {
        "test_the_bot_the_notifier_and_payments_write_at_the_same_moment",
        "test_a_stuck_transaction_gives_retryable_errors_and_health_says_so",
    },
}


def is_paced(nodeid: str) -> bool:
    path, _, name = nodeid.partition("::")
    return name.partition("[")[0] in PACED_TESTS.get(path, ())


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`: xdist's group scheduling, the paced tests being one group."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class PacedScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "paced tests" if is_paced(nodeid) else super()._split_scope(nodeid)

    return PacedScheduling(config, log)


def scanned_secrets() -> dict[str, str]:
    """The credentials the tests run with, as the secrets scan looks for them."""
    settings = load_settings({"BOT_TOKEN": BOT_TOKEN, **CLICK_ENV, **PAYME_ENV})
    basic = base64.b64encode(f"Paycom:{PAYME_ENV['PAYME_KEY']}".encode()).decode()
    return {
        "BOT_TOKEN": BOT_TOKEN,
        "BOT_TOKEN's secret half": BOT_TOKEN.partition(":")[2],
        "the webhook secret": settings.webhook_secret,
        "CLICK_SECRET_KEY": CLICK_ENV["CLICK_SECRET_KEY"],
        "PAYME_KEY": PAYME_ENV["PAYME_KEY"],
        "Payme's Basic authorization": basic,
    }


@pytest.fixture(scope="session")
def postgres_server_url(request: pytest.FixtureRequest) -> str:
    """The PostgreSQL server the session runs on (TEST_DATABASE_URL, or the throwaway one).

    A test that cannot have one says why: skipped with the reason, or failed under CI."""
    reason = pg_server.unavailable(request.config)
    if reason:
        if pg_server.must_run():
            pytest.fail(f"PostgreSQL required (CI): {reason}", pytrace=False)
        pytest.skip(f"PostgreSQL run skipped: {reason}")
    return os.environ[pg_server.ENV]


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """A fresh database per test: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/bot.db"
        return
    server = request.getfixturevalue("postgres_server_url")
    name = f"t_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    admin_dsn = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield (
            make_url(server)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def telegram(aiohttp_server: Any) -> FakeTelegram:
    fake = FakeTelegram()
    fake.server = await aiohttp_server(fake.app)  # type: ignore[attr-defined]
    return fake


def telegram_url(fake: FakeTelegram) -> str:
    server = fake.server  # type: ignore[attr-defined]
    return f"http://{server.host}:{server.port}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(database_url: str, telegram: FakeTelegram) -> Callable[..., Settings]:
    """Settings for the app under test; keyword arguments override environment variables."""

    def build(**overrides: str) -> Settings:
        env = {
            "BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": telegram_url(telegram),
            "BASE_URL": BASE_URL,
            "DATABASE_URL": database_url,
            "ADMIN_IDS": "900001",
            **CLICK_ENV,
            **PAYME_ENV,
        }
        env.update(overrides)
        return load_settings({key: value for key, value in env.items() if value is not None})

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def client(
    settings: Settings, clock: FakeClock, telegram: FakeTelegram
) -> AsyncIterator[TestClient]:
    """The real app on a loopback port; updates are handled before the webhook answers.

    Yields once the app has registered with the fake Telegram (a background task), so
    tests start from a settled state."""
    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        await asyncio.wait_for(app[TELEGRAM_LINK].registered.wait(), 10)
        yield test_client


class Telegram:
    """Sends updates to the app's webhook the way Telegram does (secret header included)."""

    def __init__(
        self, client: TestClient, settings: Settings, fake: FakeTelegram | None = None
    ) -> None:
        self.client, self.settings, self.fake = client, settings, fake

    async def send(self, update: dict[str, Any]) -> int:
        response = await self.client.post(
            self.settings.webhook_path,
            json={"update_id": next(_update_ids), **update},
            headers={"X-Telegram-Bot-Api-Secret-Token": self.settings.webhook_secret},
        )
        return response.status

    async def message(
        self, user_id: int, text: str, *, language: str | None = "en", chat_type: str = "private"
    ) -> int:
        return await self.send({"message": message(user_id, text, language, chat_type)})

    async def press(
        self, user_id: int, data: str, *, language: str | None = "en", message_id: int = 100
    ) -> int:
        """A tap on a button of message `message_id`, which the chat then shows (the fake
        Bot API, when given, lets the bot edit it)."""
        if self.fake is not None:
            self.fake.show(user_id, message_id)
        return await self.send(
            {
                "callback_query": {
                    "id": str(next(_update_ids)),
                    "from": sender(user_id, language),
                    "chat_instance": "ci",
                    "data": data,
                    "message": {
                        "message_id": message_id,
                        "date": int(time.time()),
                        "chat": {"id": user_id, "type": "private"},
                        "text": "…",
                    },
                }
            }
        )


def sender(user_id: int, language: str | None = "en") -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
    user["username"] = f"user{user_id}"
    if language:
        user["language_code"] = language
    return user


def message(
    user_id: int, text: str, language: str | None = "en", chat_type: str = "private"
) -> dict[str, Any]:
    chat_id = user_id if chat_type == "private" else -1000000000000 - user_id
    return {
        "message_id": next(_update_ids),
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": chat_type},
        "from": sender(user_id, language),
        "text": text,
        **(
            {"entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]}
            if text.startswith("/")
            else {}
        ),
    }


@pytest.fixture
def tg(client: TestClient, settings: Settings, telegram: FakeTelegram) -> Telegram:
    return Telegram(client, settings, telegram)
