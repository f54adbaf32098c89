"""Pacing of outgoing messages: at most `rate` per second in total, one per second per chat.

Telegram allows a bot about 30 messages per second overall and one per second in a chat.
Sleeping a fixed interval after each send stays below the limit (the round trip is added
to every interval); instead every sender reserves its own slot on a shared timeline, so
many sends run concurrently while their starts are spaced exactly `1 / rate` apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

PER_CHAT_SECONDS = 1.0


class Pacer:
    """Shared by every send of one process; `pause` holds everyone back (429, outages)."""

    def __init__(
        self,
        rate_per_second: float,
        per_chat_seconds: float = PER_CHAT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 1.0 / rate_per_second
        self.per_chat_seconds = per_chat_seconds
        self._monotonic = monotonic
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._chat_ready: dict[int, float] = {}

    async def wait_turn(self, chat_id: int) -> None:
        """Return when a message to `chat_id` may be sent, and count it as sent now."""
        while True:
            now = self._monotonic()
            ready = max(self._chat_ready.get(chat_id, 0.0), self._paused_until)
            if ready > now:
                await asyncio.sleep(ready - now)
                continue
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            if self._paused_until <= self._monotonic():
                break  # else a pause began while this sender waited: queue again after it
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
