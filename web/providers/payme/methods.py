"""The seven Merchant API methods (docs/providers/payme.md §5): validate the params, run
the method's locked transaction in `decisions.py`, and shape Payme's result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.texts import receipt_title
from web.providers.base import Services
from web.providers.payme import decisions
from web.providers.payme.protocol import (
    Call,
    RpcError,
    fail,
    integer,
    order_id,
    payme_id,
    transaction_state,
)
from web.providers.payme.settings import PaymeSettings


@dataclass(frozen=True)
class Context:
    """What every method needs: Payme's settings section and the app's services."""

    settings: PaymeSettings
    services: Services

    @property
    def field(self) -> str:
        """The account field that names our order (D17)."""
        return self.settings.account_field


Method = Callable[[Context, Call, int], Awaitable[dict[str, Any]]]


async def check_perform_transaction(ctx: Context, call: Call, now: int) -> dict[str, Any]:
    field = ctx.field
    amount = integer(call.params, "amount", positive=True)
    mti = order_id(call.params, field)
    result = await decisions.check_perform(ctx.services.db, mti, amount, now, call.test)
    if result.outcome is not decisions.Outcome.OK or result.order is None:
        raise fail(result.outcome, field)
    tariff = ctx.services.tariffs[result.order.tariff]
    if tariff.fiscal is None:
        return {"allow": True}
    i18n = ctx.services.i18n
    with i18n.context(), i18n.use_locale(result.language or ctx.services.default_language):
        # The days the order was made with: /shop may have changed the catalogue's since.
        title = receipt_title(replace(tariff, days=result.order.days or tariff.days))
    item = {
        "title": title,
        "price": result.order.amount,
        "count": 1,
        "code": tariff.fiscal.ikpu,
        "package_code": tariff.fiscal.package_code,
        "vat_percent": tariff.fiscal.vat_percent,
    }
    return {"allow": True, "detail": {"receipt_type": 0, "items": [item]}}


async def create_transaction(ctx: Context, call: Call, now: int) -> dict[str, Any]:
    field = ctx.field
    transaction_id = payme_id(call.params)
    payme_time = integer(call.params, "time", positive=True)
    amount = integer(call.params, "amount", positive=True)
    mti = order_id(call.params, field)
    result = await decisions.create(
        ctx.services.db, transaction_id, payme_time, amount, mti, now, call.test
    )
    if result.outcome is not decisions.Outcome.OK or result.payment is None:
        raise fail(result.outcome, field)
    payment = result.payment
    return {"create_time": payment.create_time, "transaction": str(payment.id), "state": 1}


async def perform_transaction(ctx: Context, call: Call, now: int) -> dict[str, Any]:
    transaction_id = payme_id(call.params)
    services = ctx.services
    result = await decisions.perform(
        services.db, transaction_id, services.tariffs, now, call.test, services.admin_ids
    )
    if result.outcome is not decisions.Outcome.OK or result.payment is None:
        raise fail(result.outcome, ctx.field)
    payment = result.payment
    return {"transaction": str(payment.id), "perform_time": payment.perform_time, "state": 2}


async def cancel_transaction(ctx: Context, call: Call, now: int) -> dict[str, Any]:
    transaction_id = payme_id(call.params)
    reason = integer(call.params, "reason")
    services = ctx.services
    result = await decisions.cancel(
        services.db, transaction_id, reason, now, call.test, services.admin_ids
    )
    if result.outcome is not decisions.Outcome.OK or result.payment is None:
        raise fail(result.outcome, ctx.field)
    payment = result.payment
    return {
        "transaction": str(payment.id),
        "cancel_time": payment.cancel_time,
        "state": decisions.payme_state(payment),
    }


async def check_transaction(ctx: Context, call: Call, now: int) -> dict[str, Any]:
    result = await decisions.check(ctx.services.db, payme_id(call.params), call.test)
    if result.payment is None:
        raise fail(result.outcome, ctx.field)
    return transaction_state(result.payment)


async def get_statement(ctx: Context, call: Call, now: int) -> dict[str, Any]:
    start = integer(call.params, "from")
    end = integer(call.params, "to")
    field = ctx.field
    db = ctx.services.db
    rows = await decisions.statement(db, start, end, call.test) if start <= end else []
    return {
        "transactions": [
            {
                "id": payment.provider_id,
                "time": payment.payme_time,
                "amount": payment.amount,
                "account": {field: mti},
                **transaction_state(payment),
                "receivers": None,
            }
            for payment, mti in rows
        ]
    }


async def set_fiscal_data(ctx: Context, call: Call, now: int) -> dict[str, Any]:
    transaction_id = payme_id(call.params)
    kind = call.params.get("type")
    if kind not in ("PERFORM", "CANCEL"):
        raise RpcError("invalid", "type")
    fiscal_data = call.params.get("fiscal_data")
    if not isinstance(fiscal_data, dict):
        raise RpcError("invalid", "fiscal_data")
    result = await decisions.set_fiscal_data(
        ctx.services.db, transaction_id, kind, fiscal_data, call.test
    )
    if result.outcome is not decisions.Outcome.OK:
        raise fail(result.outcome, ctx.field)
    return {"success": True}


METHODS: dict[str, Method] = {
    "CheckPerformTransaction": check_perform_transaction,
    "CreateTransaction": create_transaction,
    "PerformTransaction": perform_transaction,
    "CancelTransaction": cancel_transaction,
    "CheckTransaction": check_transaction,
    "GetStatement": get_statement,
    "SetFiscalData": set_fiscal_data,
}
