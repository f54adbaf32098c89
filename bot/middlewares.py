"""Middlewares: load the Telegram user's row once per update, pick their language, then
the catalogue as admins changed it (/shop)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.types import TelegramObject
from aiogram.types import User as TelegramUser
from aiogram.utils.i18n import I18n, I18nMiddleware

from bot.languages import suggested_language
from db.clock import Clock, to_datetime
from db.database import Database
from db.shop import load_overrides
from db.tariffs import Tariff, offered
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


class CatalogueMiddleware(BaseMiddleware):
    """Puts what buyers are offered now into handler data as `tariffs`: the file's
    catalogue (workflow data `catalogue`) with the admins' /shop changes, hidden tariffs
    left out, titles in the reader's language.

    Read from the database for every event, so a change made on one instance is offered
    by all of them at once. Not cached: the read is one primary-key table of a row per
    changed tariff, the same single round trip a version check would cost, and a cache
    would be per-process state to keep right."""

    def setup(self, router: Router) -> None:
        """Inside the language middleware on every event observer (as I18nMiddleware
        registers itself), so the language is known here."""
        for name, observer in router.observers.items():
            if name not in ("update", "error"):
                observer.outer_middleware(self)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        database: Database = data["db"]
        catalogue: Mapping[str, Tariff] = data["catalogue"]
        i18n: I18n = data["i18n"]
        async with database.read() as conn:
            overrides = await load_overrides(conn)
        data["tariffs"] = offered(catalogue, overrides, i18n.current_locale)
        return await handler(event, data)
