"""GET /health: liveness for Render, with a real database round trip."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from web.keys import DATABASE

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    started = time.perf_counter()
    try:
        await request.app[DATABASE].ping()
    except Exception as error:  # the check must answer, whatever the database does
        log.warning("health check: database unavailable: %s", type(error).__name__)
        return web.json_response({"status": "error", "database": "unavailable"}, status=503)
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return web.json_response({"status": "ok", "database": "ok", "database_ms": elapsed})
