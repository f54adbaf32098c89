"""Click's two callback routes: `POST /click/prepare` and `POST /click/complete`.

The route only adds what HTTP needs to the protocol functions: its own bounded body read,
so aiohttp's 413 page never reaches Click (§2); a catch-all that turns any failure into
`-7` (§7); and the callback log line (§10).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from web.providers.base import Services
from web.providers.click import decisions
from web.providers.click.protocol import (
    BAD_REQUEST,
    BODY_LIMIT,
    CODES,
    COMPLETE,
    FAILED,
    NO_ACTION,
    PREPARE,
    SIGN_FAILED,
    Malformed,
    Route,
    answer,
    parse_form,
    parse_request,
    signature_matches,
)
from web.providers.click.settings import ClickSettings
from web.request_limits import BodyRefused, ClientGone, read_body

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Handled:
    """The answer and what the callback log may show about the request."""

    answer: dict[str, Any]
    fields: dict[str, str] | None = None
    sign_ok: bool | None = None
    alert: str | None = None  # marks the log line of a call admins are told about (A1)


class ClickRoutes:
    """Holds Click's settings and the app's services; `register(app)` adds both routes.

    With no settings (Click is off) every signature check fails: Click gets `-1`.
    """

    def __init__(self, settings: ClickSettings | None, services: Services) -> None:
        self.settings, self.services = settings, services

    def register(self, app: web.Application) -> None:
        for route in (PREPARE, COMPLETE):
            app.router.add_route("*", route.path, self._handler(route))

    async def process(self, body: bytes, route: Route, now_ms: int) -> Handled:
        """Everything between the body bytes and the answer, in the order of §7."""
        if len(body) > BODY_LIMIT:
            return Handled(answer(BAD_REQUEST))
        try:
            fields = parse_form(body)
        except Malformed:
            return Handled(answer(BAD_REQUEST))
        try:
            request = parse_request(fields, complete=route.is_complete)
        except Malformed:
            return Handled(answer(BAD_REQUEST), fields)
        formula = route.signs_as_complete(request.action)
        sign_ok = signature_matches(request, self.settings, complete=formula)
        if not sign_ok:
            return Handled(answer(SIGN_FAILED, request), fields, sign_ok)
        if request.action != route.action:
            return Handled(answer(NO_ACTION, request), fields, sign_ok)
        db, tariffs = self.services.db, self.services.tariffs
        try:
            if route.is_complete:
                result = await decisions.complete(
                    db,
                    request.attempt(),
                    request.merchant_prepare_id,
                    tariffs,
                    now_ms,
                    self.services.admin_ids,
                )
            else:
                result = await decisions.prepare(db, request.attempt(), now_ms)
        except Exception:
            log.exception("click %s: failed; answering -7", route.path)
            return Handled(answer(FAILED, request), fields, sign_ok)
        alert = "cancel_on_paid" if result.outcome is decisions.Outcome.CANCEL_ON_PAID else None
        return Handled(
            answer(CODES[result.outcome], request, route, result.payment_id),
            fields,
            sign_ok,
            alert,
        )

    def _handler(self, route: Route) -> Handler:
        """The aiohttp handler of one route; every POST gets HTTP 200 JSON, whatever happens."""

        async def handler(request: web.Request) -> web.StreamResponse:
            if request.method != "POST":
                return web.Response(status=405, headers={"Allow": "POST"})
            started = time.perf_counter()
            body_size = 0
            try:
                body = await read_body(request, BODY_LIMIT)
                body_size = len(body)
                handled = await self.process(body, route, self.services.clock())
            except BodyRefused as error:  # §2: malformed, so -8; Click does not retry it
                log.warning("click %s: body refused (%s); answering -8", route.path, error)
                body_size = error.size
                handled = Handled(answer(BAD_REQUEST))
            except ClientGone as error:
                log.info("click %s: the client went away mid-body (%s)", route.path, error)
                handled = Handled(answer(BAD_REQUEST))
            except Exception:
                log.exception("click %s: unexpected failure; answering -7", route.path)
                handled = Handled(answer(FAILED))
            self.services.callback_log.write(
                route=route.path,
                remote=request.remote,
                started=started,
                fields=_loggable(handled.fields),
                body_size=body_size,
                answer=handled.answer,
                extra={"sign_ok": handled.sign_ok}
                | ({"alert": handled.alert} if handled.alert else {}),
            )
            return web.json_response(handled.answer)

        handler.__name__ = f"click_{route.action}"
        return handler


def _loggable(fields: dict[str, str] | None) -> dict[str, str] | None:
    """The received fields minus `sign_string` (§10: only whether it matched)."""
    if fields is None:
        return None
    return {name: value for name, value in fields.items() if name != "sign_string"}
