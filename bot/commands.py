"""The bot's command menus: per Telegram language at start, per chat once a language is chosen.

Telegram picks the most specific menu: a chat's own (`BotCommandScopeChat`) before the
one for the app's language before the default. At start every bot language gets its
menu, the region's other languages get the Russian one (bot/languages.py) and the
default is `DEFAULT_LANGUAGE`'s. When someone chooses a language in the bot, their chat
gets a menu in that language, so the menu follows the bot's language, not the app's; an
admin's chat menu also lists the admin commands, in the admin's language.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.languages import RUSSIAN_READERS

log = logging.getLogger(__name__)


def command_menu() -> list[BotCommand]:
    return [
        BotCommand(command="start", description=_("Start and main menu")),
        BotCommand(command="tariffs", description=_("Tariffs and prices")),
        BotCommand(command="myplan", description=_("My current plan")),
        BotCommand(command="paysupport", description=_("Help with a payment")),
        BotCommand(command="terms", description=_("Terms of service")),
        BotCommand(command="language", description=_("Change language")),
        BotCommand(command="help", description=_("Help")),
    ]


def admin_menu() -> list[BotCommand]:
    """The buyer's menu plus the admin console (bot/admin/handlers.py)."""
    return [
        *command_menu(),
        BotCommand(command="payments", description=_("Payments: search and refunds")),
        BotCommand(command="stats", description=_("Revenue and subscribers")),
        BotCommand(command="export", description=_("Payments as a CSV file")),
        BotCommand(command="user", description=_("A buyer's card: plan, payments, gifts")),
        BotCommand(command="shop", description=_("Tariffs: prices, days, texts")),
        BotCommand(command="broadcast", description=_("A message to all or some users")),
        BotCommand(command="notices", description=_("Payment notices: at once or daily")),
    ]


async def set_command_menus(bot: Bot, i18n: I18n) -> None:
    """One menu per language, Russian for the region's languages, the default for the rest."""
    with i18n.context():
        for language in i18n.available_locales:
            with i18n.use_locale(language):
                await bot.set_my_commands(command_menu(), language_code=language)
        with i18n.use_locale("ru"):
            for code in sorted(RUSSIAN_READERS):
                await bot.set_my_commands(command_menu(), language_code=code)
        with i18n.use_locale(i18n.default_locale):
            await bot.set_my_commands(command_menu())


async def set_chat_menu(bot: Bot, chat_id: int, admin: bool) -> None:
    """This chat's menu in the current language (call inside `i18n.use_locale`).

    Best effort: a menu that could not be set must not undo the language choice, and the
    next choice or /start sets it again.
    """
    commands = admin_menu() if admin else command_menu()
    try:
        await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=chat_id))
    except TelegramAPIError as error:
        log.warning("command menu for chat %s not set: %s", chat_id, error)
