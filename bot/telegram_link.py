"""The bot's link to Telegram: check the token, register the webhook or poll, and keep
trying in the background while Telegram cannot be reached.

The HTTP routes never wait for this: payments are answered while Telegram is down. One
log line per change of state ("unreachable … retrying", "reachable again"), never a
traceback per attempt. A token Telegram rejects is the one fatal answer: checked once
before serving (`check_token`), it stops the start with one line.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramNotFound,
    TelegramUnauthorizedError,
)
from aiogram.utils.i18n import I18n

from bot.commands import set_command_menus

log = logging.getLogger(__name__)

RETRY_SECONDS = 30.0
CHECK_TIMEOUT_SECONDS = 5
# What Telegram answers for a token it does not know (404 for a malformed one).
REJECTED = (TelegramUnauthorizedError, TelegramNotFound)


class TokenRejected(RuntimeError):
    """Telegram refuses BOT_TOKEN: nothing the bot does can work until it is fixed."""


async def check_token(bot: Bot) -> bool:
    """True when Telegram accepts the token, False when it cannot be reached now.

    Raises `TokenRejected` when Telegram answers that the token is wrong.
    """
    try:
        await bot.get_me(request_timeout=CHECK_TIMEOUT_SECONDS)
    except REJECTED as error:
        raise TokenRejected(
            "BOT_TOKEN: Telegram rejects this token; copy it again from @BotFather"
        ) from error
    except Exception:  # network, 5xx, timeouts: the link says so once, and retries
        return False
    return True


@dataclass
class TelegramLink:
    """Runs as one background task for the app's lifetime (see `run`)."""

    bot: Bot
    dispatcher: Dispatcher
    i18n: I18n
    webhook_url: str | None
    webhook_secret: str
    retry_seconds: float = RETRY_SECONDS
    # Set once the menus and the webhook are registered (tests and /health read it).
    registered: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Register with Telegram until it works; in polling mode, then poll until
        cancelled. Cancellation (shutdown) always propagates."""
        unreachable = False
        while True:
            try:
                await self._register()
                self.registered.set()
                if unreachable:
                    log.info("Telegram reachable again")
                unreachable = False
                if self.webhook_url is not None:
                    return
                await self.dispatcher.start_polling(
                    self.bot, handle_signals=False, close_bot_session=False
                )
                return
            except REJECTED as error:
                log.error(
                    "BOT_TOKEN: Telegram rejects this token (%s); the bot is off, "
                    "payments are still answered",
                    _reason(error),
                )
                return
            except Exception as error:
                if not unreachable:
                    log.warning(
                        "Telegram unreachable: %s; retrying every %.0f s",
                        _reason(error),
                        self.retry_seconds,
                    )
                unreachable = True
            await asyncio.sleep(self.retry_seconds)

    async def _register(self) -> None:
        """The command menus, and the webhook only when Telegram's differs (no 429 storms).

        The webhook is never deleted on shutdown: on Render the new instance starts before
        the old one stops, and deleting would silence the new one.
        """
        await set_command_menus(self.bot, self.i18n)
        info = await self.bot.get_webhook_info()
        if self.webhook_url is None:
            if info.url:
                log.error(
                    "a webhook is set for this BOT_TOKEN (%s), so polling receives nothing: "
                    "use a separate development token, or set BASE_URL",
                    info.url,
                )
            return
        if info.url != self.webhook_url:
            await self.bot.set_webhook(
                self.webhook_url,
                secret_token=self.webhook_secret,
                allowed_updates=self.dispatcher.resolve_used_update_types(),
            )
            log.info("webhook set to %s", self.webhook_url)


def _reason(error: BaseException) -> str:
    """One line: the error's kind and first line, never a URL (it would hold the token)."""
    text = str(error).splitlines()[0] if str(error) else ""
    if "/bot" in text:
        text = text.split("/bot")[0] + "/bot<token>…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
