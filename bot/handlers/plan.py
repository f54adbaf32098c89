"""/myplan: the plan ahead as the ledger computes it (db/ledger.py), in Tashkent time."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.callbacks import MenuCallback
from bot.handlers.navigation import show_in_place
from bot.texts import format_moment, timeline_text
from db import ledger
from db.clock import Clock, to_datetime
from db.database import Database
from db.tariffs import tariff_name
from db.users import User


async def load_timeline(db: Database, user_id: int) -> ledger.Timeline:
    async with db.read() as conn:
        return await ledger.user_timeline(conn, user_id)


def plan_text(user: User, now_ms: int, timeline: ledger.Timeline | None = None) -> str:
    """The ledger's answer when the user has periods; the cached row otherwise (a plan
    set before the ledger, or by hand)."""
    now = to_datetime(now_ms)
    if timeline is not None and timeline.segments:
        ahead = timeline.ahead(now_ms)
        if ahead:
            return _("Your plan: {timeline} (Tashkent time).").format(
                timeline=timeline_text([(s.tariff, s.end) for s in ahead])
            )
        if timeline.ended_by is not None and timeline.end is not None:
            text = (
                _("Your plan ended on {expiry} (Tashkent time): its gift days were taken back.")
                if timeline.ended_by == ledger.GIFT
                else _("Your plan ended on {expiry} (Tashkent time): its payment was refunded.")
            )
            return text.format(expiry=format_moment(to_datetime(timeline.end)))
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


async def my_plan(message: Message, user: User, clock: Clock, db: Database) -> None:
    text = plan_text(user, clock(), await load_timeline(db, user.id))
    await message.answer(text, reply_markup=keyboards.plan_menu())


async def my_plan_button(
    query: CallbackQuery, user: User, clock: Clock, db: Database, bot: Bot
) -> None:
    text = plan_text(user, clock(), await load_timeline(db, user.id))
    await show_in_place(query, bot, text, keyboards.plan_menu())


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once)."""
    router = Router(name="plan")
    router.message.register(my_plan, Command("myplan"))
    router.callback_query.register(my_plan_button, MenuCallback.filter(F.action == "myplan"))
    return router
