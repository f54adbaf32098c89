"""The Telegram webhook route: aiogram's handler, hardened against what is not Telegram.

aiogram compares the secret header as `str` with `compare_digest`, which raises
`TypeError` on non-ASCII text: anyone, no secret needed, got a 500 with a traceback. And it
reads the body with `request.json()`, so invalid JSON or a body that is not an update was
a 500 too. Telegram resends every non-200, so junk gets a 400 (logged once, as a
warning), while an update we failed to handle (the database is down) keeps its 5xx and
is resent.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from web.request_limits import BodyRefused, ClientGone, read_body

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's updates are far smaller; aiohttp's own default request limit is the same.
BODY_LIMIT = 1_048_576


def secret_matches(received: str, expected: str) -> bool:
    """Constant time on bytes, so that any header text compares and none raises
    (`surrogateescape` keeps bytes aiohttp could not decode as they came)."""
    return hmac.compare_digest(
        received.encode("utf-8", "surrogateescape"), expected.encode("utf-8")
    )


class WebhookHandler(SimpleRequestHandler):
    """aiogram's single-bot handler with its own secret check and body reading."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        secret_token: str,
        handle_in_background: bool = False,
    ) -> None:
        super().__init__(
            dispatcher, bot, handle_in_background=handle_in_background, secret_token=secret_token
        )

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        return secret_matches(telegram_secret_token, self.secret_token or "")

    async def handle(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), bot):
            return web.Response(body="Unauthorized", status=401)
        update = await self._read_update(request, bot)
        if update is None:
            return web.Response(body="Bad Request", status=400)
        if self.handle_in_background:
            task = asyncio.create_task(self._background_feed_update(bot, update[0]))
            self._background_feed_update_tasks.add(task)
            task.add_done_callback(self._background_feed_update_tasks.discard)
            return web.json_response({})
        result: TelegramMethod[Any] | None = await self.dispatcher.feed_webhook_update(
            bot, update[1], **self.data
        )
        return web.Response(body=self._build_response_writer(bot=bot, result=result))

    async def _read_update(
        self, request: web.Request, bot: Bot
    ) -> tuple[dict[str, Any], Update] | None:
        """The body as a raw update and as aiogram's `Update`; None (answer 400) for
        anything else, with one line saying why."""
        try:
            body = await read_body(request, BODY_LIMIT)
        except BodyRefused as error:
            log.warning("webhook: body refused (%s); answering 400", error.reason)
            return None
        except ClientGone as error:
            log.info("webhook: the client went away before its body arrived (%s)", error)
            return None
        try:
            raw = json.loads(body.decode("utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not an object")
            update = Update.model_validate(raw, context={"bot": bot})
        except (ValueError, RecursionError) as error:  # ValidationError is a ValueError
            log.warning(
                "webhook: a %d-byte body that is not a Telegram update (%s); answering 400",
                len(body),
                type(error).__name__,
            )
            return None
        return raw, update
