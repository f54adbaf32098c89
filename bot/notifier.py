"""The outbox worker: delivers notices through the bot, each at most once in practice.

A notice is leased (claimed) in one transaction, sent, then marked sent in another.
If the process dies between Telegram's OK and the mark, the lease runs out and the
notice is sent again; that window is one HTTP round trip plus one UPDATE. Telegram's
errors decide what happens next: blocked users are marked unreachable and their notice
closed, `retry_after` is honoured exactly, outages back off and keep the notice queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.utils.i18n import I18n

from bot import notices
from db import outbox
from db.clock import Clock, to_datetime
from db.database import Database
from db.users import set_reachable

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_BACKOFF_SECONDS = 300
UNREACHABLE_MARKERS = ("chat not found", "user is deactivated", "bot was blocked")


class Notifier:
    def __init__(
        self,
        db: Database,
        bot: Bot,
        i18n: I18n,
        clock: Clock,
        rate_per_second: float,
        idle_seconds: float = 1.0,
        batch: int = 50,
    ) -> None:
        self.db, self.bot, self.i18n, self.clock = db, bot, i18n, clock
        self.interval = 1.0 / rate_per_second
        self.idle_seconds = idle_seconds
        self.batch = batch
        self.wakeup = asyncio.Event()

    async def run(self) -> None:
        """Drain forever; a failure of one round is logged and the loop goes on."""
        while True:
            try:
                delivered = await self.drain_once()
            except Exception:
                log.exception("notifier round failed; retrying")
                delivered = 0
            if not delivered:
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.idle_seconds)

    async def drain_once(self) -> int:
        """Claim one batch of due notices and try each; returns how many were handled."""
        async with self.db.transaction() as conn:
            batch = await outbox.claim_due(conn, to_datetime(self.clock()), self.batch, LEASE)
        for notice in batch:
            await self.deliver(notice)
            await asyncio.sleep(self.interval)
        return len(batch)

    async def deliver(self, notice: outbox.Notice) -> None:
        language = notice.language or self.i18n.default_locale
        with self.i18n.context(), self.i18n.use_locale(language):
            text, markup = notices.render(notice.kind, notice.payload)
        while True:
            try:
                await self.bot.send_message(notice.user_id, text, reply_markup=markup)
            except TelegramRetryAfter as error:
                await asyncio.sleep(error.retry_after)
                continue
            except (TelegramForbiddenError, TelegramBadRequest) as error:
                await self._close_unreachable(notice, error)
                return
            except (TelegramServerError, TelegramNetworkError, TimeoutError) as error:
                await self._retry_later(notice, str(error))
                return
            break
        async with self.db.transaction() as conn:
            await outbox.mark_sent(conn, notice.id, to_datetime(self.clock()))

    async def _close_unreachable(self, notice: outbox.Notice, error: Exception) -> None:
        message = str(error)
        unreachable = isinstance(error, TelegramForbiddenError) or any(
            marker in message.lower() for marker in UNREACHABLE_MARKERS
        )
        async with self.db.transaction() as conn:
            if unreachable:
                await set_reachable(conn, notice.user_id, False)
            await outbox.mark_failed(conn, notice.id, message)
        log.warning("notice %s to user %s closed: %s", notice.id, notice.user_id, message)

    async def _retry_later(self, notice: outbox.Notice, reason: str) -> None:
        delay = min(2 ** (notice.attempts + 1), MAX_BACKOFF_SECONDS)
        when = to_datetime(self.clock()) + timedelta(seconds=delay)
        async with self.db.transaction() as conn:
            await outbox.retry_later(conn, notice.id, when, reason)
        log.warning("notice %s: Telegram unavailable (%s); retry in %ss", notice.id, reason, delay)
