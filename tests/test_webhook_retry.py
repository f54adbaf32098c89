"""An update the bot cannot handle for want of the database is not acknowledged: the
webhook answers non-200, Telegram sends it again, and then it is handled."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from tests.conftest import FakeClock, Telegram, message
from tests.fake_telegram import FakeTelegram
from web.app import create_app
from web.settings import Settings

USER = 515151


@asynccontextmanager
async def user_row_held_elsewhere(settings: Settings, user_id: int) -> AsyncIterator[None]:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(str(url.database), isolation_level=None, check_same_thread=False)
        # Waited for off the loop: the app may be finishing a write of its own (its start
        # in the background), which a blocked loop would never let go of.
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    other = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            yield
    finally:
        await other.close()


@pytest.fixture
async def app_client(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[tuple[TestClient, Settings]]:
    settings = make_settings(DATABASE_WAIT_SECONDS="1")
    async with TestClient(TestServer(create_app(settings, clock=clock), host="127.0.0.1")) as c:
        yield c, settings


async def test_an_update_is_answered_non_200_until_the_database_is_back(
    app_client: tuple[TestClient, Settings], telegram: FakeTelegram
) -> None:
    client, settings = app_client
    tg = Telegram(client, settings)
    assert await tg.message(USER, "/start") == 200  # the user's row exists
    update = {"update_id": 424242, "message": message(USER, "/help")}
    headers = {"X-Telegram-Bot-Api-Secret-Token": settings.webhook_secret}
    sent_before = len(telegram.of("sendMessage", USER))
    async with user_row_held_elsewhere(settings, USER):
        response = await client.post(settings.webhook_path, json=update, headers=headers)
        assert response.status >= 500
    assert len(telegram.of("sendMessage", USER)) == sent_before
    response = await client.post(settings.webhook_path, json=update, headers=headers)  # resent
    assert response.status == 200
    assert "/tariffs" in telegram.of("sendMessage", USER)[-1].text
