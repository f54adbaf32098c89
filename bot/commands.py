"""The bot's command menu, set once per language at start."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _


def command_menu() -> list[BotCommand]:
    return [
        BotCommand(command="start", description=_("Start and main menu")),
        BotCommand(command="tariffs", description=_("Tariffs and prices")),
        BotCommand(command="myplan", description=_("My current plan")),
        BotCommand(command="language", description=_("Change language")),
        BotCommand(command="help", description=_("Help")),
    ]


async def set_command_menus(bot: Bot, i18n: I18n) -> None:
    """One menu per language, plus the default language's menu for everyone else."""
    with i18n.context():
        for language in i18n.available_locales:
            with i18n.use_locale(language):
                await bot.set_my_commands(command_menu(), language_code=language)
        with i18n.use_locale(i18n.default_locale):
            await bot.set_my_commands(command_menu())
