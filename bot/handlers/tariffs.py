"""/tariffs and buying: show prices, open (or reuse) an order, hand out the pay links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.callbacks import BuyCallback, MenuCallback
from bot.handlers.plan import load_timeline, plan_text
from bot.payment_methods import PaymentMethod
from bot.texts import format_som, tariff_line
from db.clock import Clock, to_datetime
from db.database import Database
from db.ledger import Timeline
from db.orders import open_order
from db.tariffs import TARIFF_CODES, Tariff, tariff_name
from db.users import User


def tariffs_text(
    tariffs: Mapping[str, Tariff], user: User, now_ms: int, timeline: Timeline | None = None
) -> str:
    lines = [_("Tariffs:"), ""]
    lines += [tariff_line(tariff) for tariff in tariffs.values()]
    lines += ["", plan_text(user, now_ms, timeline)]
    return "\n".join(lines)


async def show_tariffs(
    message: Message, user: User, tariffs: Mapping[str, Tariff], clock: Clock, db: Database
) -> None:
    text = tariffs_text(tariffs, user, clock(), await load_timeline(db, user.id))
    await message.answer(text, reply_markup=keyboards.tariffs(tariffs.values()))


async def tariffs_button(
    query: CallbackQuery, user: User, tariffs: Mapping[str, Tariff], clock: Clock, db: Database
) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        text = tariffs_text(tariffs, user, clock(), await load_timeline(db, user.id))
        await query.message.answer(text, reply_markup=keyboards.tariffs(tariffs.values()))


async def buy(
    query: CallbackQuery,
    callback_data: BuyCallback,
    user: User,
    bot: Bot,
    db: Database,
    clock: Clock,
    tariffs: Mapping[str, Tariff],
    payment_methods: Sequence[PaymentMethod],
    i18n: I18n,
) -> None:
    tariff = tariffs[callback_data.tariff]
    if not payment_methods:
        await query.answer(_("Payments are not available yet. Please try again later."), True)
        return
    async with db.transaction() as conn:
        order = await open_order(conn, user.id, tariff, to_datetime(clock()))
    me = await bot.me()
    buttons = [
        (method.title, method.link.url(order, i18n.current_locale, me.username))
        for method in payment_methods
    ]
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            _(
                "Order {order}\n{name}: {price} for {days} days.\n\n"
                "Choose how to pay. The subscription starts as soon as the payment is confirmed."
            ).format(
                order=order.merchant_trans_id,
                name=tariff_name(tariff.code),
                price=format_som(order.amount),
                days=order.days or tariff.days,
            ),
            reply_markup=keyboards.pay(buttons),
        )


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once)."""
    router = Router(name="tariffs")
    router.message.register(show_tariffs, Command("tariffs"))
    router.callback_query.register(tariffs_button, MenuCallback.filter(F.action == "tariffs"))
    router.callback_query.register(buy, BuyCallback.filter(F.tariff.in_(TARIFF_CODES)))
    return router
