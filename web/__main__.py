"""`python -m web`: load settings, check the token, then serve until SIGTERM or Ctrl-C.

Webhook mode when BASE_URL (or Render's RENDER_EXTERNAL_URL) is set, else long polling;
both serve the same HTTP routes. Every way the start can fail ends in one line naming
the setting or input at fault: exit 2 for a setting (BOT_TOKEN included), 1 for the
environment (an unreachable database, a busy port).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
from typing import NoReturn

from aiohttp import web
from dotenv import load_dotenv

from web import log_filter
from web.env import SettingsError
from web.settings import Settings, load_settings

SHUTDOWN_TIMEOUT = 5  # seconds for requests in flight; Render kills 30 s after SIGTERM


def main() -> None:
    load_dotenv()
    try:
        settings = load_settings(os.environ)
    except SettingsError as error:
        _stop(f"configuration error: {error}", 2)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    # Before anything can log a URL or an exception holding the token or a key.
    log_filter.install(settings)
    # After the settings check: aiogram is slow to import.
    from bot.telegram_link import TokenRejected
    from web.app import StartupError, create_app

    try:
        asyncio.run(_check_token(settings))
        _serve(create_app(settings), settings)
    except TokenRejected as error:
        _stop(f"configuration error: {error}", 2)
    except StartupError as error:
        _stop(f"start-up error: {error}", 1)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            _stop(f"start-up error: PORT: {settings.port} is already in use", 1)
        _stop(f"start-up error: HOST/PORT: cannot listen: {error.strerror or error}", 1)


def _stop(line: str, status: int) -> NoReturn:
    print(line, file=sys.stderr)
    sys.exit(status)


async def _check_token(settings: Settings) -> None:
    """A token Telegram rejects stops the start; an unreachable Telegram does not."""
    from bot.telegram_link import check_token
    from web.app import create_bot

    bot = create_bot(settings)
    try:
        await check_token(bot)
    finally:
        await bot.session.close()


def _serve(app: web.Application, settings: Settings) -> None:
    mode = "webhook" if settings.webhook_url else "polling (BASE_URL not set)"
    logging.getLogger(__name__).info("%s mode; HTTP on %s:%s", mode, settings.host, settings.port)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        print=None,
    )


if __name__ == "__main__":
    main()
