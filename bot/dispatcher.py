"""Builds the Dispatcher: routers, middlewares, i18n and the start-up hook."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiogram import Dispatcher, F, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.enums import ChatType
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import I18n
from sqlalchemy.exc import SQLAlchemyError

from bot.admin import handlers as admin
from bot.admin import shop
from bot.handlers import fallback, membership, plan, receipt, start
from bot.handlers import support as support_handlers
from bot.handlers import tariffs as tariff_handlers
from bot.handlers.support import Support
from bot.middlewares import CatalogueMiddleware, UserLocaleMiddleware, UserMiddleware
from bot.payment_methods import PaymentMethod
from db.clock import Clock
from db.database import Database
from db.tariffs import Tariff

log = logging.getLogger(__name__)

# Errors of the infrastructure, not of the update: the update should be delivered again.
UNAVAILABLE = (SQLAlchemyError, OSError, TimeoutError)


def create_dispatcher(
    *,
    db: Database,
    i18n: I18n,
    clock: Clock,
    tariffs: Mapping[str, Tariff],
    payment_methods: Sequence[PaymentMethod],
    provider_titles: Mapping[str, str],
    admin_ids: frozenset[int],
    support: Support | None = None,
) -> Dispatcher:
    """Everything a handler needs arrives as workflow data, by parameter name; `tariffs`
    (what buyers are offered) is the file's `catalogue` with the /shop changes, per event."""
    dispatcher = Dispatcher(
        db=db,
        i18n=i18n,
        clock=clock,
        catalogue=tariffs,
        payment_methods=payment_methods,
        provider_titles=provider_titles,
        admin_ids=admin_ids,
        support=support or Support(),
    )
    dispatcher.update.outer_middleware(UserMiddleware())
    UserLocaleMiddleware(i18n).setup(dispatcher)
    CatalogueMiddleware().setup(dispatcher)

    private = Router(name="private")
    private.message.filter(F.chat.type == ChatType.PRIVATE)
    private.include_routers(
        start.create_router(),
        tariff_handlers.create_router(),
        plan.create_router(),
        receipt.create_router(),
        admin.create_router(),
        shop.create_router(),
        support_handlers.create_router(),
        fallback.create_router(),
    )
    dispatcher.include_router(private)
    dispatcher.include_router(membership.create_router())
    dispatcher.errors.register(log_error)
    return dispatcher


async def log_error(event: ErrorEvent) -> Any:
    """A failing handler is logged with its update and never takes the bot down.

    A database that cannot be reached is not the update's fault: that error goes on up,
    so the webhook answers non-200 and Telegram delivers the update again later.
    """
    if isinstance(event.exception, UNAVAILABLE):
        log.warning(
            "update %s not handled, the database is unavailable (%s); Telegram will resend it",
            event.update.update_id,
            type(event.exception).__name__,
        )
        return UNHANDLED
    log.error(
        "update %s failed: %r", event.update.update_id, event.exception, exc_info=event.exception
    )
    return True
