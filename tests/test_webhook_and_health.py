"""The webhook's secret check, start-up calls to Telegram, and /health."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import BASE_URL, message
from tests.fake_telegram import FakeTelegram
from web.app import create_app
from web.keys import DATABASE, TELEGRAM_LINK


async def test_wrong_or_missing_secret_is_refused_and_nothing_runs(
    client: TestClient, settings, telegram: FakeTelegram
) -> None:
    before = len(telegram.calls)
    update = {"update_id": 1, "message": message(42, "/start")}
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        response = await client.post(settings.webhook_path, json=update, headers=headers)
        assert response.status == 401
    assert len(telegram.calls) == before
    async with client.app[DATABASE].transaction() as conn:
        assert (await conn.exec_driver_sql("SELECT count(*) FROM users")).scalar() == 0


async def test_start_sets_menus_per_language_and_the_webhook_once(
    make_settings, clock, telegram: FakeTelegram
) -> None:
    settings = make_settings()
    app = create_app(settings, clock=clock)
    async with TestClient(TestServer(app, host="127.0.0.1")):
        await asyncio.wait_for(app[TELEGRAM_LINK].registered.wait(), 10)  # in the background
    menus = {call.params.get("language_code"): call for call in telegram.of("setMyCommands")}
    assert {"uz", "ru", "en", None} <= set(menus)  # + the region's, tests/test_language.py
    assert [c["command"] for c in menus["ru"].params["commands"]] == [
        "start", "tariffs", "myplan", "paysupport", "terms", "language", "help",
    ]  # fmt: skip
    assert menus["ru"].params["commands"][1]["description"] == "Тарифы и цены"
    assert menus[None].params["commands"][1]["description"] == "Tariflar va narxlar"
    [set_webhook] = telegram.of("setWebhook")
    assert set_webhook.params["url"] == BASE_URL + "/webhook/telegram"
    assert set_webhook.params["secret_token"] == settings.webhook_secret
    assert "message" in set_webhook.params["allowed_updates"]
    # A restart finds the same URL and leaves the webhook alone; shutdown never deletes it.
    app = create_app(settings, clock=clock)
    async with TestClient(TestServer(app, host="127.0.0.1")):
        await asyncio.wait_for(app[TELEGRAM_LINK].registered.wait(), 10)
    assert len(telegram.of("getWebhookInfo")) == 2
    assert len(telegram.of("setWebhook")) == 1
    assert telegram.of("deleteWebhook") == []


async def test_health_reports_a_real_database_round_trip(client: TestClient) -> None:
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert isinstance(body["database_ms"], float)


async def test_health_answers_503_when_the_database_is_down() -> None:
    from aiohttp import web
    from sqlalchemy.ext.asyncio import create_async_engine

    from db.database import Database
    from web.health import health

    app = web.Application()
    app[DATABASE] = Database(create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none"))
    app.router.add_get("/health", health)
    async with TestClient(TestServer(app, host="127.0.0.1")) as broken:
        response = await broken.get("/health")
        assert response.status == 503
        assert await response.json() == {"status": "error", "database": "unavailable"}
