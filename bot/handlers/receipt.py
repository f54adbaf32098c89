"""The receipt again, on its own message, with Payme's fiscal receipt link once Payme has
sent it (SetFiscalData usually comes after the "payment received" message)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.callbacks import ReceiptCallback
from bot.handlers.navigation import show_in_place
from bot.texts import provider_title, receipt_text
from db import ledger
from db.clock import Clock
from db.database import Database
from db.orders import fiscal_url, paid_order_of
from db.tariffs import tariff_name
from db.users import User


async def show_receipt(
    query: CallbackQuery,
    callback_data: ReceiptCallback,
    user: User,
    db: Database,
    clock: Clock,
    bot: Bot,
) -> None:
    async with db.read() as conn:
        found = await paid_order_of(conn, callback_data.order, user.id)
        timeline = await ledger.user_timeline(conn, user.id)
    if found is None:
        await query.answer(_("This button is out of date. Send /tariffs to start again."))
        return
    order, payment = found
    url = fiscal_url(payment)
    if url is None:
        await query.answer(
            _("Payme has not sent the fiscal receipt yet. Please try again in a few minutes."),
            True,
        )
        return
    now_ms = clock()
    text = receipt_text(
        code=order.code,
        name=tariff_name(order.tariff),
        amount=payment.amount,
        days=order.days or 0,
        provider=provider_title(payment.provider),
        paid_at=payment.perform_time,
        stretches=[(s.tariff, s.end) for s in timeline.ahead(now_ms)],
        fiscal_url=url,
        test=payment.test,
    )
    await show_in_place(query, bot, text, keyboards.receipt(order.id, fiscal=False))


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once)."""
    router = Router(name="receipt")
    router.callback_query.register(show_receipt, ReceiptCallback.filter())
    return router
