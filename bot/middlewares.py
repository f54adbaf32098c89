"""Middlewares: load the Telegram user's row once per update, then pick their language."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18nMiddleware

from bot.languages import suggested_language
from db.clock import Clock, to_datetime
from db.database import Database
from db.users import User, upsert_user

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UserMiddleware(BaseMiddleware):
    """Puts the sender's `users` row into handler data as `user` (created on first contact)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: TelegramUser | None = data.get("event_from_user")
        if sender is not None and not sender.is_bot:
            database: Database = data["db"]
            clock: Clock = data["clock"]
            async with database.transaction() as conn:
                data["user"] = await upsert_user(
                    conn, sender.id, sender.full_name, sender.username, to_datetime(clock())
                )
        return await handler(event, data)


class UserLocaleMiddleware(I18nMiddleware):
    """The saved language, else the one Telegram's `language_code` suggests (bot/languages.py)."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user: User | None = data.get("user")
        if user is not None and user.language:
            return user.language
        return suggested_language(data.get("event_from_user"), self.i18n.default_locale)
