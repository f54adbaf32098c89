"""The application factory: one aiohttp app with the bot, the callbacks and the notifier."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.dispatcher import create_dispatcher
from bot.i18n import create_i18n
from bot.links import ClickLink, PayLinks, PaymeLink
from bot.notifier import Notifier
from bot.pacing import Pacer, ReplyPacing
from bot.scheduler import Scheduler
from db.clock import Clock, system_clock
from db.database import Database
from web import click, payme
from web.health import health
from web.keys import BOT, CLOCK, DATABASE, DISPATCHER, I18N, NOTIFIER, PACER, SCHEDULER, SETTINGS
from web.settings import Settings

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The process cannot start serving; the message names the setting at fault."""


def create_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(
        settings.bot_token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def pay_links(settings: Settings) -> PayLinks:
    click, payme = settings.click, settings.payme
    return PayLinks(
        click=ClickLink(click.service_id, click.merchant_id, click.return_url) if click else None,
        payme=PaymeLink(payme.merchant_id, payme.checkout_url, payme.account_field)
        if payme
        else None,
    )


def create_storage(settings: Settings) -> BaseStorage | None:
    """FSM state in Redis when configured (several instances), else aiogram's memory."""
    return RedisStorage.from_url(settings.redis_url) if settings.redis_url else None


def create_app(
    settings: Settings, *, clock: Clock = system_clock, handle_in_background: bool = True
) -> web.Application:
    """`handle_in_background=False` makes the webhook answer after the handler ran (tests)."""
    i18n = create_i18n(settings.default_language)
    bot = create_bot(settings)
    pacer = Pacer(settings.notifier.rate_per_second)
    bot.session.middleware(ReplyPacing(pacer))
    dispatcher = create_dispatcher(
        storage=create_storage(settings),
        i18n=i18n,
        clock=clock,
        tariffs=settings.tariffs,
        pay_links=pay_links(settings),
        admin_ids=settings.admin_ids,
        webhook_url=settings.webhook_url,
        webhook_secret=settings.webhook_secret,
    )
    app = web.Application()
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[BOT] = bot
    app[DISPATCHER] = dispatcher
    app[I18N] = i18n
    app[PACER] = pacer
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_notifier)
    app.cleanup_ctx.append(_scheduler)
    app.router.add_get("/health", health)
    app.router.add_route("*", click.PREPARE.path, click.route_handler(click.PREPARE))
    app.router.add_route("*", click.COMPLETE.path, click.route_handler(click.COMPLETE))
    app.router.add_route("*", "/payme", payme.handle)
    if settings.webhook_url:
        SimpleRequestHandler(
            dispatcher,
            bot,
            handle_in_background=handle_in_background,
            secret_token=settings.webhook_secret,
        ).register(app, path=settings.webhook_path)
        setup_application(app, dispatcher, bot=bot)
    _log_providers(settings)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Open (and migrate) the database before the bot starts; close it after it stops."""
    try:
        database = await Database.connect(app[SETTINGS].database_url)
    except (OSError, SQLAlchemyError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StartupError(f"DATABASE_URL: cannot open the database: {reason}") from error
    app[DATABASE] = app[DISPATCHER]["db"] = database
    yield
    await database.close()


async def _notifier(app: web.Application) -> AsyncIterator[None]:
    notifier = Notifier(app[DATABASE], app[BOT], app[I18N], app[CLOCK], app[PACER])
    app[NOTIFIER] = notifier
    async with _background(notifier.run(), "notifier"):
        yield


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """Every instance runs one; the database decides which of them does each run."""
    scheduler = Scheduler(app[DATABASE], app[CLOCK], app[SETTINGS].notifier.reminder_days)
    app[SCHEDULER] = scheduler
    async with _background(scheduler.run(), "scheduler"):
        yield


@contextlib.asynccontextmanager
async def _background(job: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run `job` as a task for the app's lifetime; cancel and await it on shutdown."""
    task = asyncio.create_task(job, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _log_providers(settings: Settings) -> None:
    for name, enabled in (("Click", settings.click), ("Payme", settings.payme)):
        if enabled is None:
            log.warning("%s is off: its settings are not set; its pay button is hidden", name)
    if settings.payme and settings.payme.test_key:
        log.warning(
            "PAYME_TEST_KEY is set: sandbox requests are accepted; unset it after certification"
        )
