"""/tariffs and buying: the catalogue, one checkout message per order with a preview of
what the payment will do, and the pay links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.callbacks import BuyCallback, MenuCallback
from bot.handlers.navigation import show_in_place
from bot.handlers.plan import load_timeline, plan_text
from bot.handlers.support import Support, contact_line
from bot.payment_methods import PaymentMethod
from bot.texts import order_days_line, tariff_card, timeline_text
from db import ledger
from db.clock import Clock, to_datetime
from db.database import Database
from db.orders import (
    Order,
    checkout_being_sent,
    checkout_shown,
    claim_checkout,
    open_order,
    release_checkout,
    set_checkout_message,
)
from db.tariffs import Tariff, tariff_name
from db.users import User

# The checkout message's send gives up after this (aiogram's default is 60 s), well
# within db/orders.CHECKOUT_CLAIM_MS: a send still under way never loses its claim.
CHECKOUT_SEND_SECONDS = 15


def tariffs_text(
    tariffs: Mapping[str, Tariff],
    user: User,
    now_ms: int,
    language: str,
    timeline: ledger.Timeline | None = None,
) -> str:
    lines = [_("Tariffs:"), ""]
    for tariff in tariffs.values():
        lines += [tariff_card(tariff, language), ""]
    lines.append(plan_text(user, now_ms, timeline))
    return "\n".join(lines)


async def show_tariffs(
    message: Message,
    user: User,
    tariffs: Mapping[str, Tariff],
    clock: Clock,
    db: Database,
    i18n: I18n,
) -> None:
    timeline = await load_timeline(db, user.id)
    text = tariffs_text(tariffs, user, clock(), i18n.current_locale, timeline)
    await message.answer(text, reply_markup=keyboards.tariffs(tariffs.values()))


async def tariffs_button(
    query: CallbackQuery,
    user: User,
    tariffs: Mapping[str, Tariff],
    clock: Clock,
    db: Database,
    i18n: I18n,
    bot: Bot,
) -> None:
    timeline = await load_timeline(db, user.id)
    text = tariffs_text(tariffs, user, clock(), i18n.current_locale, timeline)
    await show_in_place(query, bot, text, keyboards.tariffs(tariffs.values()))


def preview(
    periods: Sequence[ledger.Period], order: Order, days: int, now_ms: int
) -> ledger.Timeline | None:
    """The plan as it would be if this order were paid now (the ledger's own rules), or
    None when no plan is running (then the order's days say it all)."""
    if not ledger.compute(periods).ahead(now_ms):
        return None
    credit = ledger.Period(
        id=max((p.id for p in periods), default=0) + 1,
        user_id=order.user_id,
        payment_id=None,
        tariff=order.tariff,
        duration_ms=days * ledger.DAY_MS,
        credited_at=now_ms,
        refunded_at=None,
    )
    return ledger.compute([*periods, credit])


def checkout_text(
    order: Order,
    tariff: Tariff,
    language: str,
    after: ledger.Timeline | None,
    now_ms: int,
    support: Support,
) -> str:
    """What the buyer reads before paying: the order's number, amount and days, what the
    tariff gives, and the resulting timeline when a plan is already running."""
    lines = [_("🧾 Order #{code}").format(code=order.code)]
    lines.append(
        order_days_line(
            tariff.title or tariff_name(order.tariff), order.amount, order.days or tariff.days
        )
    )
    lines += [line for line in tariff_card(tariff, language).splitlines()[1:]]
    if after is not None:
        stretches = [(s.tariff, s.end) for s in after.ahead(now_ms)]
        lines += [
            "",
            _("After this payment: {timeline} (Tashkent time).").format(
                timeline=timeline_text(stretches)
            ),
        ]
    lines += [
        "",
        _("Choose how to pay. The plan starts as soon as the payment is confirmed."),
        contact_line(support),
    ]
    return "\n".join(lines)


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
    support: Support,
) -> None:
    tariff = tariffs.get(callback_data.tariff)
    if tariff is None:
        await query.answer(_("This button is out of date. Send /tariffs to start again."))
        return
    if not payment_methods:
        await query.answer(_("Payments are not available yet. Please try again later."), True)
        return
    now_ms = clock()
    chat_id = query.message.chat.id if query.message is not None else user.id
    async with db.transaction() as conn:
        order = await open_order(conn, user.id, tariff, to_datetime(now_ms))
        periods = await ledger.user_periods(conn, user.id)
    me = await bot.me()
    language = i18n.current_locale
    text = checkout_text(
        order,
        tariff,
        language,
        preview(periods, order, order.days or tariff.days, now_ms),
        now_ms,
        support,
    )
    markup = keyboards.pay(
        [(m.title, m.link.url(order, language, me.username)) for m in payment_methods]
    )
    if (checkout_shown(order) and await _refresh(bot, order, text, markup)) or (
        checkout_being_sent(order, now_ms)  # another tap is sending it
        or not await _claim(db, order, chat_id, now_ms)  # another tap has just claimed it
    ):
        # One checkout message per order: the one shown already, brought up to date.
        await query.answer(_("Your order #{code} is in the message above.").format(code=order.code))
        return
    await query.answer()
    try:
        sent = await bot.send_message(
            chat_id, text, reply_markup=markup, request_timeout=CHECKOUT_SEND_SECONDS
        )
    except Exception:
        async with db.transaction() as conn:
            await release_checkout(conn, order.id, now_ms)
        raise
    async with db.transaction() as conn:
        await set_checkout_message(conn, order.id, sent.chat.id, sent.message_id)


async def _claim(db: Database, order: Order, chat_id: int, now_ms: int) -> bool:
    """The right to send this order's checkout message (none yet, a stale claim, or the
    shown one is gone): True for exactly one of concurrent taps."""
    async with db.transaction() as conn:
        return await claim_checkout(conn, order, chat_id, now_ms)


async def _refresh(bot: Bot, order: Order, text: str, markup: InlineKeyboardMarkup) -> bool:
    """Edit the order's checkout message; False when it is gone (deleted by the buyer,
    too old to edit), so a new one is sent."""
    assert order.checkout_chat_id is not None and order.checkout_message_id is not None
    try:
        await bot.edit_message_text(
            text,
            chat_id=order.checkout_chat_id,
            message_id=order.checkout_message_id,
            reply_markup=markup,
        )
    except TelegramBadRequest as error:
        return "message is not modified" in error.message
    return True


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once)."""
    router = Router(name="tariffs")
    router.message.register(show_tariffs, Command("tariffs"))
    router.callback_query.register(tariffs_button, MenuCallback.filter(F.action == "tariffs"))
    router.callback_query.register(buy, BuyCallback.filter())
    return router
