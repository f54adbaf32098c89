"""`python -m web`: load settings, then serve on a webhook (BASE_URL set) or by polling."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from aiohttp import web
from dotenv import load_dotenv

from web.env import SettingsError
from web.settings import Settings, load_settings

SHUTDOWN_TIMEOUT = 20  # Render kills 30 s after SIGTERM


def main() -> None:
    load_dotenv()
    try:
        settings = load_settings(os.environ)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    from web.app import StartupError, create_app  # after the settings check: aiogram is slow

    try:
        _serve(create_app(settings), settings)
    except StartupError as error:
        print(f"start-up error: {error}", file=sys.stderr)
        sys.exit(1)


def _serve(app: web.Application, settings: Settings) -> None:
    if settings.webhook_url:
        logging.getLogger(__name__).info("webhook mode on %s:%s", settings.host, settings.port)
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            print=None,
        )
    else:
        asyncio.run(_serve_with_polling(app, settings))


async def _serve_with_polling(app: web.Application, settings: Settings) -> None:
    """Local development: the same HTTP routes, and the bot by long polling."""
    from web.keys import BOT, DISPATCHER

    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        logging.getLogger(__name__).info(
            "polling mode (BASE_URL not set); HTTP on %s:%s", settings.host, settings.port
        )
        await app[DISPATCHER].start_polling(app[BOT])
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    main()
