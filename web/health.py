"""GET /health: liveness for Render, with a real database round trip.

The round trip is a read that takes no write lock (`Database.read`: on SQLite a plain
deferred BEGIN, outside this process's writer queue), bounded by DATABASE_WAIT_SECONDS:
a probe stuck behind a payment's or another process's write lock would time out and get
a live instance restarted for being busy. A transaction of this process that has held
SQLite's writer for longer than that bound is reported instead: it hangs, and only a
restart ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from sqlalchemy import text

from web.keys import DATABASE

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    database = request.app[DATABASE]
    if database.writer_held_seconds() > database.wait_seconds:
        # A transaction hangs in this process: payments get retryable errors until it
        # ends, and a restart (what a failing check brings) is what ends it.
        log.warning(
            "health check: a transaction has held the writer for over %g s", database.wait_seconds
        )
        return web.json_response({"status": "error", "database": "writer stuck"}, status=503)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(database.wait_seconds), database.read() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # the check must answer, whatever the database does
        log.warning("health check: database unavailable: %s", type(error).__name__)
        return web.json_response({"status": "error", "database": "unavailable"}, status=503)
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return web.json_response({"status": "ok", "database": "ok", "database_ms": elapsed})
