"""Builds the Dispatcher: routers, middlewares, i18n and the start-up hook."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from aiogram import Bot, Dispatcher, F, Router
from aiogram.enums import ChatType
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import I18n

from bot.admin import handlers as admin
from bot.commands import set_command_menus
from bot.handlers import fallback, membership, plan, start
from bot.handlers import tariffs as tariff_handlers
from bot.middlewares import UserLocaleMiddleware, UserMiddleware
from bot.payment_methods import PaymentMethod
from db.clock import Clock
from db.database import Database
from db.tariffs import Tariff

log = logging.getLogger(__name__)


def create_dispatcher(
    *,
    db: Database,
    storage: BaseStorage | None,
    i18n: I18n,
    clock: Clock,
    tariffs: Mapping[str, Tariff],
    payment_methods: Sequence[PaymentMethod],
    provider_titles: Mapping[str, str],
    admin_ids: frozenset[int],
    webhook_url: str | None,
    webhook_secret: str,
) -> Dispatcher:
    """Everything a handler needs arrives as workflow data, by parameter name."""
    dispatcher = Dispatcher(
        db=db,
        storage=storage,
        i18n=i18n,
        clock=clock,
        tariffs=tariffs,
        payment_methods=payment_methods,
        provider_titles=provider_titles,
        admin_ids=admin_ids,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    dispatcher.update.outer_middleware(UserMiddleware())
    UserLocaleMiddleware(i18n).setup(dispatcher)

    private = Router(name="private")
    private.message.filter(F.chat.type == ChatType.PRIVATE)
    private.include_routers(
        start.create_router(),
        tariff_handlers.create_router(),
        plan.create_router(),
        admin.create_router(),
        fallback.create_router(),
    )
    dispatcher.include_router(private)
    dispatcher.include_router(membership.create_router())
    dispatcher.startup.register(on_startup)
    dispatcher.errors.register(log_error)
    return dispatcher


async def log_error(event: ErrorEvent) -> bool:
    """A failing handler is logged with its update and never takes the bot down."""
    log.error(
        "update %s failed: %r", event.update.update_id, event.exception, exc_info=event.exception
    )
    return True


async def on_startup(
    bot: Bot, dispatcher: Dispatcher, i18n: I18n, webhook_url: str | None, webhook_secret: str
) -> None:
    """Set the command menus, and the webhook only when Telegram's differs (no 429 storms).

    The webhook is never deleted on shutdown: on Render the new instance starts before
    the old one stops, and deleting would silence the new one.
    """
    await set_command_menus(bot, i18n)
    info = await bot.get_webhook_info()
    if webhook_url is None:
        if info.url:
            log.error(
                "a webhook is set for this BOT_TOKEN (%s), so polling receives nothing: "
                "use a separate development token, or set BASE_URL",
                info.url,
            )
        return
    if info.url != webhook_url:
        await bot.set_webhook(
            webhook_url,
            secret_token=webhook_secret,
            allowed_updates=dispatcher.resolve_used_update_types(),
        )
        log.info("webhook set to %s", webhook_url)
