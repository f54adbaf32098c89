"""Payme's one route, `/payme`: every answer is HTTP 200 JSON-RPC, whatever happens (D1).

The first failing step of §2 decides the answer; the route adds the bounded body read,
the catch-all `-32400` and the call log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from web.providers.base import Services
from web.providers.payme.methods import METHODS, Context
from web.providers.payme.protocol import (
    BODY_LIMIT,
    Call,
    RpcError,
    authorize,
    parse_body,
    request_id,
)
from web.providers.payme.settings import PaymeSettings
from web.request_limits import BodyRefused, ClientGone, read_body

log = logging.getLogger(__name__)
PATH = "/payme"


class PaymeRoutes:
    """Holds Payme's settings and the app's services; `register(app)` adds `/payme`.

    With no settings (Payme is off) every call fails authorization: `-32504`.
    """

    def __init__(self, settings: PaymeSettings | None, services: Services) -> None:
        self.settings, self.services = settings, services
        self.context = Context(settings or PaymeSettings(merchant_id="", key=""), services)

    def register(self, app: web.Application) -> None:
        app.router.add_route("*", PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        echo_id: Any = None
        message: dict[str, Any] | None = None
        body_size = 0
        try:
            if request.method != "POST":
                raise RpcError("method_not_post")
            try:
                body = await read_body(request, BODY_LIMIT)
            except (BodyRefused, ClientGone) as error:
                body_size = error.size if isinstance(error, BodyRefused) else 0
                raise _refused(error) from error
            body_size = len(body)
            message = parse_body(body)
            echo_id = request_id(message)
            test = authorize(request.headers.get("Authorization"), self.settings)
            method = message.get("method")
            if not isinstance(method, str):
                raise RpcError("invalid", "method")
            if method not in METHODS:
                raise RpcError("no_method", method)
            params = message.get("params")
            if not isinstance(params, dict):
                raise RpcError("invalid", "params")
            now = self.services.clock()  # read once per request
            answer = {
                "jsonrpc": "2.0",
                "id": echo_id,
                "result": await METHODS[method](self.context, Call(method, params, test), now),
            }
        except RpcError as error:
            answer = error.body(echo_id)
        except Exception:
            log.exception("payme: unexpected failure; answering -32400")
            answer = RpcError("system").body(echo_id)
        self._log(request, message, answer, started, body_size)
        return web.json_response(answer)

    def _log(
        self,
        request: web.Request,
        message: Mapping[str, Any] | None,
        answer: Mapping[str, Any],
        started: float,
        body_size: int,
    ) -> None:
        """One line per call: method, Payme id, order, our code; never a key or the header.

        Whatever a parsed body names is logged, refused calls included (a wrong-key probe
        is worth seeing); an unparsable body only by its size.
        """
        fields = None
        if message is not None:
            params = message.get("params")
            params = params if isinstance(params, dict) else {}
            account = params.get("account")
            fields = {
                "method": message.get("method"),
                "id": params.get("id"),
                "order": account.get(self.context.field) if isinstance(account, dict) else None,
            }
        error = answer.get("error")
        self.services.callback_log.write(
            route=PATH,
            remote=request.remote,
            started=started,
            fields=fields,
            body_size=body_size,
            answer={"error": error["code"] if error else 0, "error_note": None},
        )


def _refused(error: BodyRefused | ClientGone) -> RpcError:
    """The §2 error for a body that cannot be used, with one log line: -32600 when too
    large (D3), else -32700 (it does not decode or never arrived; not retryable, unlike
    -32400)."""
    if isinstance(error, ClientGone):
        log.info("payme: the client went away mid-body (%s)", error)
        return RpcError("parse")
    log.warning("payme: body refused (%s)", error.reason)
    return RpcError("invalid" if error.too_large else "parse")
