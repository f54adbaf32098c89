"""The application factory: one aiohttp app with the bot, the providers' routes and the
background workers, shared by `python -m web` and the tests (as in aiohttp's polls demo).

Everything is built here and passed in: the dispatcher gets the database as workflow
data, each provider's routes object gets the services it needs, and `cleanup_ctx`
only opens and closes what it owns (the database's migrations and pool, the workers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.webhook.aiohttp_server import setup_application
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.dispatcher import create_dispatcher
from bot.i18n import create_i18n
from bot.payment_methods import PaymentMethod
from bot.telegram_link import TelegramLink
from bot.workers.notifier import Notifier
from bot.workers.pacing import Pacer, ReplyPacing
from bot.workers.scheduler import Scheduler
from db.clock import Clock, system_clock
from db.database import Database
from web.accept_errors import accept_errors_logged_once
from web.callback_log import CallbackLog
from web.health import health
from web.http_errors import malformed_http_logged_as_one_line
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
    TELEGRAM_LINK,
    WORKERS,
)
from web.providers import PROVIDERS
from web.providers.base import AnyProvider, Services
from web.request_limits import BODY_TIMEOUT, HANDLER_ARGS
from web.settings import Settings
from web.webhook import WebhookHandler

log = logging.getLogger(__name__)

NOTIFIER_GRACE_SECONDS = 5.0  # sends already on the wire get this long at shutdown


class StartupError(RuntimeError):
    """The process cannot start serving; the message names the setting at fault."""


def create_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(
        settings.bot_token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def create_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    handle_in_background: bool = False,
    providers: Sequence[AnyProvider] = PROVIDERS,
) -> web.Application:
    """`providers` is the registry unless a test brings its own.

    The webhook answers Telegram after the update was handled (`handle_in_background`
    False): an update that fails for want of the database gets a non-200, and Telegram
    sends it again, instead of an early 200 that drops it.
    """
    try:
        database = Database.from_url(
            settings.database_url,
            wait_seconds=settings.database_wait_seconds,
            pool_size=settings.database_pool_size,
        )
    except (ValueError, SQLAlchemyError) as error:
        raise StartupError(f"DATABASE_URL: cannot use it: {_first_line(error)}") from error
    enabled = [(p, settings.providers[p.name]) for p in providers if p.name in settings.providers]
    i18n = create_i18n(settings.default_language)
    bot = create_bot(settings)
    pacer = Pacer(settings.notifier.rate_per_second)
    bot.session.middleware(ReplyPacing(pacer))
    dispatcher = create_dispatcher(
        db=database,
        i18n=i18n,
        clock=clock,
        tariffs=settings.tariffs,
        payment_methods=[
            PaymentMethod(p.name, p.title, p.link(section), p.manual_reversal)
            for p, section in enabled
        ],
        provider_titles={provider.name: provider.title for provider in providers},
        admin_ids=settings.admin_ids,
        support=settings.support,
    )
    # Bodies are read, decoded and bounded by `web.request_limits`, not by aiohttp.
    app = web.Application(handler_args=HANDLER_ARGS)
    app[SETTINGS] = settings
    app[BODY_TIMEOUT] = settings.request_body_timeout_seconds
    app[CLOCK] = clock
    app[DATABASE] = database
    app[BOT] = bot
    app[DISPATCHER] = dispatcher
    app[I18N] = i18n
    app[PACER] = pacer
    app[CALLBACK_LOG] = CallbackLog(settings.callback_log_file)
    app[NOTIFIER] = Notifier(database, bot, i18n, clock, pacer)
    # Every instance runs a scheduler; the database decides which of them does each run.
    app[SCHEDULER] = Scheduler(
        database, clock, settings.notifier.reminder_days, admin_ids=settings.admin_ids
    )
    app[TELEGRAM_LINK] = TelegramLink(
        bot, dispatcher, i18n, settings.webhook_url, settings.webhook_secret
    )
    app.cleanup_ctx.append(accept_errors_logged_once)
    app.cleanup_ctx.append(malformed_http_logged_as_one_line)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_workers)
    # Registered before the webhook handler's own shutdown hook, which closes the bot's
    # HTTP session: the notifier's sends in flight finish first, so none is sent twice.
    app.on_shutdown.append(_stop_workers)
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
        WebhookHandler(
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


async def _workers(app: web.Application) -> AsyncIterator[None]:
    """The background tasks: the notifier, the scheduler and the link to Telegram, which
    registers the webhook (or polls) and retries in the background, so the HTTP routes
    answer payments from the first second whatever Telegram does."""
    app[WORKERS] = {
        "telegram": asyncio.create_task(app[TELEGRAM_LINK].run(), name="telegram"),
        "notifier": asyncio.create_task(app[NOTIFIER].run(), name="notifier"),
        "scheduler": asyncio.create_task(app[SCHEDULER].run(), name="scheduler"),
    }
    yield
    await _stop_workers(app)
    if app[SETTINGS].webhook_url is None:  # in webhook mode the webhook handler closes it
        await app[BOT].session.close()


async def _stop_workers(app: web.Application) -> None:
    """Stop polling and the scheduler, and let the notifier finish its sends on the wire;
    bounded, so SIGTERM ends the process in a few seconds whatever the state."""
    tasks = app[WORKERS]
    for name in ("telegram", "scheduler"):
        tasks[name].cancel()
    await app[NOTIFIER].stop(NOTIFIER_GRACE_SECONDS)
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


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
