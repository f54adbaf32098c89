"""Which language a person gets, and the command menus that follow the chosen language."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.languages import language_for
from tests.conftest import FakeClock, Telegram
from tests.fake_telegram import Call, FakeTelegram

USER = 321321
ADMIN = 900001  # ADMIN_IDS in tests/conftest.py
BUYER_COMMANDS = ["start", "tariffs", "myplan", "paysupport", "terms", "language", "help"]
ADMIN_COMMANDS = [
    *BUYER_COMMANDS,
    "payments",
    "stats",
    "export",
    "user",
    "shop",
    "broadcast",
    "notices",
]


@pytest.mark.parametrize(
    ("telegram_code", "expected"),
    [
        ("uz", "uz"), ("ru", "ru"), ("en", "en"), ("ru-RU", "ru"), ("en-GB", "en"),
        ("kk", "ru"), ("ky", "ru"), ("tg", "ru"), ("tk", "ru"), ("az", "ru"), ("be", "ru"),
        ("uk", "ru"), ("hy", "ru"), ("ka", "ru"), ("KK", "ru"),
        ("de", "uz"), ("tr", "uz"), ("pt-br", "uz"), ("", "uz"), (None, "uz"),
    ],
)  # fmt: skip
def test_telegram_language_to_bot_language(telegram_code: str | None, expected: str) -> None:
    assert language_for(telegram_code, "uz") == expected
    if expected == "uz" and telegram_code != "uz":  # neither ours nor the region's: default
        assert language_for(telegram_code, "en") == "en"


def chat_menus(telegram: FakeTelegram, chat_id: int) -> list[Call]:
    return [
        call
        for call in telegram.of("setMyCommands")
        if (call.params.get("scope") or {}) == {"type": "chat", "chat_id": chat_id}
    ]


def commands(call: Call) -> list[str]:
    return [command["command"] for command in call.params["commands"]]


def described(call: Call) -> dict[str, str]:
    return {command["command"]: command["description"] for command in call.params["commands"]}


def marked(call: Call) -> str:
    [choice] = [button["text"] for button in call.buttons if button["text"].startswith("✅")]
    return choice


async def test_region_languages_get_russian_others_the_default(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    await tg.message(USER, "/start", language="kk")
    prompt = telegram.of("sendMessage", USER)[-1]
    assert prompt.text == "Добро пожаловать! Пожалуйста, выберите язык:"
    assert marked(prompt) == "✅ Русский"
    await tg.message(USER + 1, "/start", language="de")
    prompt = telegram.of("sendMessage", USER + 1)[-1]
    assert prompt.text == "Xush kelibsiz! Iltimos, tilni tanlang:"
    assert marked(prompt) == "✅ Oʻzbekcha"
    await tg.message(USER + 2, "/help", language="uk")
    assert telegram.of("sendMessage", USER + 2)[-1].text.startswith("Что я умею:")


async def test_default_language_setting_serves_everyone_else(
    make_settings: Any, clock: FakeClock, telegram: FakeTelegram
) -> None:
    settings = make_settings(DEFAULT_LANGUAGE="en")
    from web.app import create_app

    app = create_app(settings, clock=clock, handle_in_background=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        tg = Telegram(client, settings)
        await tg.message(USER, "/start", language="de")
        assert marked(telegram.of("sendMessage", USER)[-1]) == "✅ English"
        await tg.message(USER + 1, "/start", language="tg")
        assert marked(telegram.of("sendMessage", USER + 1)[-1]) == "✅ Русский"


async def test_start_sets_russian_menus_for_the_region(
    client: TestClient, telegram: FakeTelegram
) -> None:
    menus = {
        call.params.get("language_code"): call
        for call in telegram.of("setMyCommands")
        if not call.params.get("scope")
    }
    assert set(menus) == {"uz", "ru", "en", None, "kk", "ky", "tg", "tk", "az", "be", "uk",
                          "hy", "ka"}  # fmt: skip
    for code in ("kk", "ka", "uk"):
        assert menus[code].params["commands"] == menus["ru"].params["commands"]
    assert described(menus[None])["tariffs"] == "Tariflar va narxlar"  # DEFAULT_LANGUAGE uz


async def test_choosing_a_language_sets_the_chats_menu_in_it(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    await tg.message(USER, "/start", language="en")
    assert chat_menus(telegram, USER) == []  # until a choice, the app language's menu
    await tg.press(USER, "lang:ru", language="en")
    [menu] = chat_menus(telegram, USER)
    assert commands(menu) == BUYER_COMMANDS
    assert described(menu)["tariffs"] == "Тарифы и цены"
    await tg.message(USER, "/language", language="en")
    await tg.press(USER, "lang:uz", language="en")
    menu = chat_menus(telegram, USER)[-1]
    assert commands(menu) == BUYER_COMMANDS
    assert described(menu)["language"] == "Tilni oʻzgartirish"
    await tg.message(USER, "/start", language="en")  # a buyer's /start leaves the menu alone
    assert len(chat_menus(telegram, USER)) == 2


async def test_admins_menu_lists_admin_commands_in_their_language(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    await tg.message(ADMIN, "/start", language="ru")
    [menu] = chat_menus(telegram, ADMIN)
    assert commands(menu) == ADMIN_COMMANDS
    assert described(menu)["payments"] == "Платежи: поиск и возвраты"
    # Choosing a language keeps the admin commands, now in the chosen language.
    await tg.press(ADMIN, "lang:en", language="ru")
    menu = chat_menus(telegram, ADMIN)[-1]
    assert commands(menu) == ADMIN_COMMANDS
    assert described(menu)["payments"] == "Payments: search and refunds"
    await tg.press(ADMIN, "lang:uz", language="ru")
    menu = chat_menus(telegram, ADMIN)[-1]
    assert commands(menu) == ADMIN_COMMANDS
    assert described(menu)["stats"] == "Tushum va obunachilar"
    assert all(commands(call) == ADMIN_COMMANDS for call in chat_menus(telegram, ADMIN))


async def test_help_lists_admin_commands_to_admins_only(
    tg: Telegram, telegram: FakeTelegram
) -> None:
    await tg.message(ADMIN, "/help", language="en")
    text = telegram.of("sendMessage", ADMIN)[-1].text
    assert "Admin commands:\n/payments — " in text
    assert "\n/stats — " in text and "\n/export — " in text and "\n/shop — " in text
    assert "\n/notices — " in text
    await tg.message(USER, "/help", language="en")
    text = telegram.of("sendMessage", USER)[-1].text
    assert "/tariffs" in text
    assert "/payments" not in text and "/stats" not in text and "/export" not in text
    assert "/shop" not in text
    await tg.message(ADMIN, "/help", language="ru")
    assert "Команды администратора:\n/payments — " in telegram.of("sendMessage", ADMIN)[-1].text
