"""/myplan: the current tariff and its expiry in Tashkent time."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.callbacks import MenuCallback
from bot.texts import format_moment
from db.clock import Clock, to_datetime
from db.tariffs import tariff_name
from db.users import User


def plan_text(user: User, now_ms: int) -> str:
    now = to_datetime(now_ms)
    active = user.active_tariff(now)
    if active and user.tariff_expires_at:
        return _("Your plan: {name}, active until {expiry} (Tashkent time).").format(
            name=tariff_name(active), expiry=format_moment(user.tariff_expires_at)
        )
    if user.tariff and user.tariff_expires_at:
        return _("Your plan {name} expired on {expiry} (Tashkent time).").format(
            name=tariff_name(user.tariff), expiry=format_moment(user.tariff_expires_at)
        )
    return _("You have no active plan.")


async def my_plan(message: Message, user: User, clock: Clock) -> None:
    await message.answer(plan_text(user, clock()), reply_markup=keyboards.buy())


async def my_plan_button(query: CallbackQuery, user: User, clock: Clock) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(plan_text(user, clock()), reply_markup=keyboards.buy())


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once)."""
    router = Router(name="plan")
    router.message.register(my_plan, Command("myplan"))
    router.callback_query.register(my_plan_button, MenuCallback.filter(F.action == "myplan"))
    return router
