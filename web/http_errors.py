"""A request that is not valid HTTP is the client's error: one warning line, no traceback.

aiohttp answers a malformed request (bad chunk framing, an invalid header byte) with its
own 400 and logs it at ERROR with a traceback, one per request: anyone could fill the log
with them, and an operator would read each as our failure. This filter, on aiohttp's
server logger, rewrites those records (and only those: an exception in a handler keeps
its traceback) into one warning line naming the fault.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class MalformedHttpFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            first_line = (error.message or type(error).__name__).strip().splitlines()[0]
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "malformed HTTP request from %s answered %s: %s"
            record.args = (remote, error.code, first_line[:200])
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


async def malformed_http_logged_as_one_line(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the filter is on aiohttp's logger while the app runs."""
    logger = logging.getLogger(SERVER_LOGGER)
    installed = MalformedHttpFilter()
    logger.addFilter(installed)
    yield
    logger.removeFilter(installed)
