"""Pacing of outgoing messages: at most `rate` per second in total, one per second per chat.

Telegram allows a bot about 30 messages per second overall and one per second in a chat.
Sleeping a fixed interval after each send stays below the limit (the round trip is added
to every interval); instead senders take turns on a shared timeline and send
concurrently, so their starts are spaced exactly `1 / rate` apart whatever the round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod

if TYPE_CHECKING:
    from aiogram import Bot

PER_CHAT_SECONDS = 1.0
# Set inside the notifier's delivery tasks: their sends took a slot already.
PACED: ContextVar[bool] = ContextVar("paced", default=False)


class Pacer:
    """Shared by every send of one process; `pause` holds everyone back (429, outages)."""

    def __init__(
        self,
        rate_per_second: float,
        per_chat_seconds: float = PER_CHAT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.interval = 1.0 / rate_per_second
        self.per_chat_seconds = per_chat_seconds
        self._monotonic = monotonic
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._chat_ready: dict[int, float] = {}
        self._queue = asyncio.Lock()

    async def wait_turn(self, chat_id: int) -> None:
        """Return when a message to `chat_id` may be sent, and count it as sent now.

        Senders queue on a FIFO lock and each takes the slot only when it is due, so a
        reply that jumps in (`reserve`) or a pause delays the queue instead of adding to
        slots handed out earlier: no one-second window ever holds more than the limit.
        """
        chat_wait = self._chat_ready.get(chat_id, 0.0) - self._monotonic()
        if chat_wait > 0:
            await asyncio.sleep(chat_wait)
        async with self._queue:
            while True:  # a reply or a pause may move the slot while this sender sleeps
                wait = max(self._next_slot, self._paused_until) - self._monotonic()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            # The next slot is a full interval after this send, even when this timer fired
            # late: making lateness up would put two sends closer than `interval`, and a
            # window could then hold one more than the limit. Lateness costs a millisecond
            # or so per send; the full interval is the margin that absorbs the jitter
            # between this moment and the request reaching Telegram.
            now = self._monotonic()
            self._next_slot = max(self._next_slot, now) + self.interval
        self.sent(chat_id)

    def sent(self, chat_id: int) -> None:
        """Record a send to `chat_id` that did not go through `wait_turn` (a 429 retry)."""
        now = self._monotonic()
        self._chat_ready[chat_id] = now + self.per_chat_seconds
        if len(self._chat_ready) > 10_000:  # forget chats whose second has passed
            self._chat_ready = {
                chat: ready for chat, ready in self._chat_ready.items() if ready > now
            }

    def pause(self, seconds: float) -> None:
        """Hold every sender back for `seconds`; the first slot after it stays free.

        The caller (the sender Telegram answered 429) takes that free slot itself, so it
        sends exactly `retry_after` later instead of queueing behind the others.
        """
        until = self._monotonic() + seconds
        self._paused_until = max(self._paused_until, until)
        self._next_slot = max(self._next_slot, until + self.interval)

    def reserve(self, chat_id: int) -> None:
        """Count a message that must not wait (a reply to a user) against the limit.

        It takes the next slot without sleeping; queued notices give way by one interval.
        """
        self._next_slot = max(self._next_slot, self._monotonic()) + self.interval
        self.sent(chat_id)


class ReplyPacing(BaseRequestMiddleware):
    """Bot session middleware: the bot's own replies count against the notifier's limit.

    Telegram's limit is the bot's, replies and notices together; with this the setting
    is the total. Replies are never delayed (a user is waiting); notices slow down.
    """

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Any:
        chat_id = getattr(method, "chat_id", None)
        is_message = method.__api_method__.startswith("send") and isinstance(chat_id, int)
        replying = is_message and not PACED.get()
        if replying and isinstance(chat_id, int):
            self.pacer.reserve(chat_id)
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as error:
            if replying:  # the bot is over Telegram's limit: queued notices hold back too
                self.pacer.pause(error.retry_after)
            raise
