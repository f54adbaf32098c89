"""Which of the bot's languages a person gets before (or without) choosing one.

Telegram tells us the app's interface language. The bot speaks uz, ru and en; people
whose app is in another language of the region (Kazakh, Kyrgyz, Tajik, Turkmen,
Azerbaijani, Belarusian, Ukrainian, Armenian, Georgian) read Russian more easily than
Uzbek, so they get Russian; everyone else gets `DEFAULT_LANGUAGE`. A language chosen in
the bot (saved in `users.language`) always wins over both.
"""

from __future__ import annotations

from aiogram.types import User as TelegramUser

from bot.i18n import LANGUAGES

RUSSIAN_READERS = frozenset({"kk", "ky", "tg", "tk", "az", "be", "uk", "hy", "ka"})


def language_for(telegram_code: str | None, default: str) -> str:
    """`ru-RU`/`ru` -> `ru`; `kk` -> `ru`; `de`, `pt-br` or none -> `default`."""
    code = (telegram_code or "").split("-")[0].split("_")[0].lower()
    if code in LANGUAGES:
        return code
    if code in RUSSIAN_READERS:
        return "ru"
    return default


def suggested_language(sender: TelegramUser | None, default: str) -> str:
    return language_for(sender.language_code if sender else None, default)
