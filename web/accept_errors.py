"""Running out of file descriptors is logged once per burst, not once per accept.

When `accept()` fails for want of descriptors, asyncio reports it through the loop's
exception handler with a traceback, pauses the listening socket for a second and tries
again: under a flood of clients that is one traceback per second per socket, on top of
whatever the clients cause, until the flood ends. This handler turns a burst (failures
less than `quiet_seconds` apart) into one warning line, with the count of the previous
burst's repeats, and passes every other report on unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)
ACCEPT_MESSAGE = "socket.accept() out of system resource"
# asyncio's retry of a paused listening socket, when it fires after the server closed it
# (a stop within a second of a burst): a ValueError with a traceback, and nothing lost.
RETRY_AFTER_CLOSE = "Exception in callback BaseSelectorEventLoop._start_serving"
ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class AcceptErrorLog:
    def __init__(
        self,
        previous: ExceptionHandler | None,
        *,
        quiet_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.previous, self.quiet_seconds, self.clock = previous, quiet_seconds, clock
        self.last: float | None = None
        self.repeats = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith(RETRY_AFTER_CLOSE) and isinstance(
            context.get("exception"), ValueError
        ):
            log.info("a paused listening socket was closed before its retry; nothing to do")
            return
        if message != ACCEPT_MESSAGE:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = self.clock()
        if self.last is None or now - self.last > self.quiet_seconds:
            error = context.get("exception")
            log.warning(
                "cannot accept connections: %s; asyncio retries every second; "
                "logged once per burst (%d repeats in the previous one)",
                getattr(error, "strerror", None) or error,
                self.repeats,
            )
            self.repeats = 0
        else:
            self.repeats += 1
        self.last = now


async def accept_errors_logged_once(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: installs the handler on the serving loop, once per loop.

    It stays after the app's cleanup: asyncio's accept retry can fire after the server
    closed (see `RETRY_AFTER_CLOSE`), while the loop winds down; a second app on the same
    loop finds it there and does not wrap it again."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    if not isinstance(previous, AcceptErrorLog):
        loop.set_exception_handler(AcceptErrorLog(previous))
    yield
