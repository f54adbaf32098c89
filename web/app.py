"""The application factory: one aiohttp app with the bot, the providers' routes and the
background workers, shared by `python -m web` and the tests (as in aiohttp's polls demo).

Everything is built here and passed in: the dispatcher gets the database as workflow
data, each provider's routes object gets the services it needs, and `cleanup_ctx`
only opens and closes what it owns (the database's migrations and pool, the workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
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
from bot.payment_methods import PaymentMethod
from bot.workers.notifier import Notifier
from bot.workers.pacing import Pacer, ReplyPacing
from bot.workers.scheduler import Scheduler
from db.clock import Clock, system_clock
from db.database import Database
from web.callback_log import CallbackLog
from web.health import health
from web.keys import (
    BOT,
    CALLBACK_LOG,
    CLOCK,
    DATABASE,
    DISPATCHER,
    I18N,
    NOTIFIER,
    PACER,
    SCHEDULER,
    SETTINGS,
)
from web.providers import PROVIDERS
from web.providers.base import AnyProvider, Services
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


def create_storage(settings: Settings) -> BaseStorage | None:
    """FSM state in Redis when configured (several instances), else aiogram's memory."""
    return RedisStorage.from_url(settings.redis_url) if settings.redis_url else None


def create_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    handle_in_background: bool = True,
    providers: Sequence[AnyProvider] = PROVIDERS,
) -> web.Application:
    """`handle_in_background=False` makes the webhook answer after the handler ran (tests);
    `providers` is the registry unless a test brings its own."""
    try:
        database = Database.from_url(settings.database_url)
    except (ValueError, SQLAlchemyError) as error:
        raise StartupError(f"DATABASE_URL: cannot use it: {_first_line(error)}") from error
    enabled = [(p, settings.providers[p.name]) for p in providers if p.name in settings.providers]
    i18n = create_i18n(settings.default_language)
    bot = create_bot(settings)
    pacer = Pacer(settings.notifier.rate_per_second)
    bot.session.middleware(ReplyPacing(pacer))
    dispatcher = create_dispatcher(
        db=database,
        storage=create_storage(settings),
        i18n=i18n,
        clock=clock,
        tariffs=settings.tariffs,
        payment_methods=[
            PaymentMethod(p.name, p.title, p.link(section), p.manual_reversal)
            for p, section in enabled
        ],
        provider_titles={provider.name: provider.title for provider in providers},
        admin_ids=settings.admin_ids,
        webhook_url=settings.webhook_url,
        webhook_secret=settings.webhook_secret,
    )
    app = web.Application()
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[DATABASE] = database
    app[BOT] = bot
    app[DISPATCHER] = dispatcher
    app[I18N] = i18n
    app[PACER] = pacer
    app[CALLBACK_LOG] = CallbackLog(settings.callback_log_file)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_notifier)
    app.cleanup_ctx.append(_scheduler)
    app.router.add_get("/health", health)
    services = Services(
        db=database,
        clock=clock,
        tariffs=settings.tariffs,
        i18n=i18n,
        default_language=settings.default_language,
        callback_log=app[CALLBACK_LOG],
        admin_ids=settings.admin_ids,
    )
    for provider in providers:
        provider.routes(settings.providers.get(provider.name), services).register(app)
    if settings.webhook_url:
        SimpleRequestHandler(
            dispatcher,
            bot,
            handle_in_background=handle_in_background,
            secret_token=settings.webhook_secret,
        ).register(app, path=settings.webhook_path)
        setup_application(app, dispatcher, bot=bot)
    _log_providers(providers, settings)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Migrate the database before the bot starts; close its pool and the callback log
    after it stops."""
    database = app[DATABASE]
    try:
        await database.migrate()
    except (OSError, SQLAlchemyError) as error:
        await database.close()
        raise StartupError(
            f"DATABASE_URL: cannot open the database: {_first_line(error)}"
        ) from error
    yield
    await database.close()
    app[CALLBACK_LOG].close()


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


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


def _log_providers(providers: Sequence[AnyProvider], settings: Settings) -> None:
    for provider in providers:
        section = settings.providers.get(provider.name)
        if section is None:
            log.warning(
                "%s is off: its settings are not set; its pay button is hidden", provider.title
            )
            continue
        for warning in provider.start_warnings(section):
            log.warning("%s", warning)
