"""A buyer's card (`/user <id|@name>`, or 👤 Buyer on a payment's card) and gift days.

The card shows who the buyer is, their plan as the ledger computes it, every period
and what made it (a payment, the opening plan, an admin's gift), their last payments
with buttons to each payment's card, and a button to take back each gift that still
has time left. Gifts are asked for with `/gift` and confirmed with a button; the
request waits in the database (db/gifts.py), not in memory, so any instance of the bot
can take the Confirm. Registered on the admin router, so only admins get here.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiogram import Bot, Router, html
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.admin import views as admin_views
from bot.admin.callbacks import DecideGift, ShowBuyer, ShowPayment, TakeBackGift
from bot.handlers.navigation import put_in_place
from bot.texts import LANGUAGE_NAMES, format_moment, timeline_text
from db import admin_queries, gifts, ledger
from db.admin_queries import Filters
from db.clock import Clock, to_datetime
from db.database import Database
from db.gifts import Gift, GiftStatus
from db.tariffs import TARIFF_CODES, tariff_name
from db.users import User, get_user

PAYMENTS_SHOWN = 5
PERIODS_SHOWN = 10  # the newest; a card must stay under Telegram's 4096 characters
MAX_GIFT_DAYS = 3650
MAX_REASON = 500


def days_of(days: int, tariff: str) -> str:
    return ngettext("{days} day of {name}", "{days} days of {name}", days).format(
        days=days, name=tariff_name(tariff)
    )


def plan_ahead(timeline: ledger.Timeline, now_ms: int) -> str:
    """The plan still to run, as /myplan words it, or "none"."""
    ahead = timeline.ahead(now_ms)
    if not ahead:
        return _("none")
    stretches = timeline_text([(s.tariff, s.end) for s in ahead])
    return _("{moment} (Tashkent time)").format(moment=stretches)


def buyer_name(user: User) -> str:
    """The name links to the buyer's chat; Telegram opens it for the admin."""
    return html.link(html.quote(user.first_name or str(user.id)), f"tg://user?id={user.id}")


def source(period: ledger.Period, gift: Gift | None) -> str:
    """What made a period: its payment, the opening plan, or whose gift and why."""
    if period.kind == ledger.GIFT:
        if gift is None:  # written around db/gifts.py (by hand): no request to name
            return _("gift")
        return _("gift by admin {admin}: {reason}").format(
            admin=gift.granted_by, reason=html.quote(gift.reason)
        )
    if period.kind == ledger.OPENING:
        return _("opening (plan from before the ledger)")
    return _("payment #{id}").format(id=period.payment_id)


def period_line(period: ledger.Period, fate: ledger.PeriodFate | None, gift: Gift | None) -> str:
    end = fate.end if fate is not None else None
    span = f"{format_moment(to_datetime(period.credited_at))} – " + (
        format_moment(to_datetime(end)) if end is not None else "—"
    )
    parts = [tariff_name(period.tariff), span, source(period, gift)]
    if period.refunded_at is not None:
        parts.append(_("taken back") if period.kind == ledger.GIFT else _("refunded"))
    return "• " + " · ".join(parts)


def earlier_periods(count: int) -> list[str]:
    hidden = count - PERIODS_SHOWN
    return [_("Earlier periods not shown: {count}").format(count=hidden)] if hidden > 0 else []


def live_gifts(timeline: ledger.Timeline, given: list[Gift], now_ms: int) -> list[Gift]:
    """Granted gifts whose time is not used up: the ones worth taking back."""
    live = []
    for gift in given:
        fate = timeline.fates.get(gift.period_id) if gift.period_id else None
        if gift.status == GiftStatus.GRANTED and fate is not None and (fate.end or 0) > now_ms:
            live.append(gift)
    return live


async def render_card(
    db: Database, user_id: int, search: str, place: ShowBuyer, now_ms: int,
    titles: Mapping[str, str],
) -> tuple[str, InlineKeyboardMarkup] | None:  # fmt: skip
    """The card as text and buttons, read in one transaction; None: no such user."""
    async with db.read() as conn:
        user = await get_user(conn, user_id)
        if user is None:
            return None
        periods = gifts.known_periods(await ledger.user_periods(conn, user_id), user, now_ms)
        given = await gifts.user_gifts(conn, user_id)
        lines = await admin_queries.search(conn, Filters(user_id=user_id), PAYMENTS_SHOWN)
        count = await admin_queries.totals(conn, Filters(user_id=user_id))
    timeline = ledger.compute(periods)
    by_period = {gift.period_id: gift for gift in given}
    handle = f" · @{html.quote(user.username)}" if user.username else ""
    language = LANGUAGE_NAMES.get(user.language or "", "—")
    text = [
        *admin_views.query_line(search),
        "👤 " + html.bold(buyer_name(user)),
        _("ID: {id}").format(id=html.code(str(user.id))) + handle,
        _("Language: {language}").format(language=language),
        _("Plan: {plan}").format(plan=plan_ahead(timeline, now_ms)),
        "",
        html.bold(_("Periods")) if periods else _("No periods."),
        *earlier_periods(len(periods)),
        *[
            period_line(p, timeline.fates.get(p.id), by_period.get(p.id))
            for p in periods[-PERIODS_SHOWN:]
        ],
        "",
        html.bold(_("Payments: {count}").format(count=count.count + count.test_count)),
        *[admin_views.payment_row(n + 1, line, titles) for n, line in enumerate(lines)],
        "",
        _("Give days: {command}").format(
            command=html.code(f"/gift {user.id} {TARIFF_CODES[0]} 7 …")
        ),
    ]
    builder = InlineKeyboardBuilder()
    for number, line in enumerate(lines, 1):
        builder.button(text=str(number), callback_data=ShowPayment(payment_id=line.id))
    builder.adjust(PAYMENTS_SHOWN)
    actions = InlineKeyboardBuilder()
    for gift in live_gifts(timeline, given, now_ms):
        actions.button(
            text=_("↩️ Take back gift #{id}: {days}").format(
                id=gift.id, days=days_of(gift.days, gift.tariff)
            ),
            callback_data=TakeBackGift(
                gift_id=gift.id, confirmed=False, **place.model_dump(exclude={"user_id"})
            ),
        )
    if place.payment_id:
        actions.button(
            text=_("◀ Back"),
            callback_data=ShowPayment(
                payment_id=place.payment_id, page_time=place.page_time, page_id=place.page_id
            ),
        )
    actions.adjust(1)
    builder.attach(actions)
    return "\n".join(text), builder.as_markup()


async def user_command(
    message: Message,
    command: CommandObject,
    db: Database,
    clock: Clock,
    provider_titles: Mapping[str, str],
) -> None:
    who = (command.args or "").strip()
    if not who:
        await message.answer(html.quote(_("Usage: /user 123456 or /user @username")))
        return
    async with db.read() as conn:
        user = await gifts.find_buyer(conn, who)
    card = None
    if user is not None:
        place = ShowBuyer(user_id=user.id)
        card = await render_card(db, user.id, "", place, clock(), provider_titles)
    if card is None:
        await message.answer(unknown_buyer(who))
        return
    await message.answer(card[0], reply_markup=card[1])


async def show_buyer(
    query: CallbackQuery,
    bot: Bot,
    callback_data: ShowBuyer,
    db: Database,
    clock: Clock,
    provider_titles: Mapping[str, str],
) -> None:
    """The card replaces the message it was opened from; Back returns to the payment."""
    await query.answer()
    if not isinstance(query.message, Message):
        return
    search = admin_views.query_of(query.message)
    card = await render_card(
        db, callback_data.user_id, search, callback_data, clock(), provider_titles
    )
    if card is not None:
        await put_in_place(query, bot, card[0], reply_markup=card[1])


def unknown_buyer(who: str) -> str:
    return _("No buyer with the id or username “{who}”.").format(who=html.quote(who[:64]))


def gift_usage() -> str:
    text = _(
        "Usage: /gift ID TARIFF DAYS REASON\n"
        "ID: the buyer's id or @username; TARIFF: {tariffs}; DAYS: 1–{max}"
    )
    return html.quote(text.format(tariffs=", ".join(TARIFF_CODES), max=MAX_GIFT_DAYS))


def gift_request(args: str) -> tuple[str, str, int, str] | None:
    """`<who> <TARIFF> <days> <reason…>` -> (who, tariff, days, reason), or None."""
    parts = args.split(maxsplit=3)
    if len(parts) < 4:
        return None
    who, tariff, days, reason = parts
    tariff = tariff.upper()
    reason = " ".join(reason.split())
    if tariff not in TARIFF_CODES or not days.isdigit() or not reason:
        return None
    if not 1 <= int(days) <= MAX_GIFT_DAYS or len(reason) > MAX_REASON:
        return None
    return who, tariff, int(days), reason


async def gift_command(
    message: Message, command: CommandObject, db: Database, clock: Clock, user: User
) -> None:
    """A preview of the buyer's plan with the gift, and Confirm / Cancel under it."""
    request = gift_request(command.args or "")
    if request is None:
        await message.answer(gift_usage())
        return
    who, tariff, days, reason = request
    now_ms = clock()
    async with db.transaction() as conn:
        buyer = await gifts.find_buyer(conn, who)
        if buyer is not None:
            gift = await gifts.ask(conn, buyer.id, tariff, days, reason, user.id, now_ms)
            periods = await ledger.user_periods(conn, buyer.id)
            after = gifts.preview(gifts.known_periods(periods, buyer, now_ms), gift, now_ms)
    if buyer is None:
        await message.answer(unknown_buyer(who))
        return
    text = "\n".join(
        [
            _("🎁 Gift to {buyer}: {days}").format(
                buyer=buyer_name(buyer), days=days_of(days, tariff)
            ),
            _("Reason: {reason}").format(reason=html.quote(reason)),
            _("Their plan with the gift: {plan}").format(plan=plan_ahead(after, now_ms)),
            "",
            _("The buyer is told. A gift is not a payment: it is never counted as revenue."),
        ]
    )
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✅ Confirm"), callback_data=DecideGift(gift_id=gift.id, confirmed=True))
    builder.button(text=_("Cancel"), callback_data=DecideGift(gift_id=gift.id, confirmed=False))
    builder.adjust(2)
    await message.answer(text, reply_markup=builder.as_markup())


async def decide_gift(
    query: CallbackQuery, bot: Bot, callback_data: DecideGift, db: Database, clock: Clock
) -> None:
    """Confirm grants once, however many instances get a press; Cancel changes nothing."""
    now_ms = clock()
    async with db.transaction() as conn:
        if callback_data.confirmed:
            timeline = await gifts.grant(conn, callback_data.gift_id, now_ms)
            done = timeline is not None
        else:
            timeline, done = None, await gifts.cancel(conn, callback_data.gift_id, now_ms)
        gift = await gifts.get_gift(conn, callback_data.gift_id)
        buyer = await get_user(conn, gift.user_id) if gift is not None else None
    if not done or gift is None or buyer is None:
        await query.answer(_("This gift was already granted or cancelled."), show_alert=True)
        return
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if timeline is None:
        await put_in_place(query, bot, _("Gift cancelled; nothing was changed."))
        return
    text = "\n".join(
        [
            _("🎁 Gift granted to {buyer}: {days}").format(
                buyer=buyer_name(buyer), days=days_of(gift.days, gift.tariff)
            ),
            _("Reason: {reason}").format(reason=html.quote(gift.reason)),
            _("Plan: {plan}").format(plan=plan_ahead(timeline, now_ms)),
        ]
    )
    builder = InlineKeyboardBuilder()
    builder.button(text=_("👤 Buyer"), callback_data=ShowBuyer(user_id=buyer.id))
    await put_in_place(query, bot, text, reply_markup=builder.as_markup())


async def take_back(
    query: CallbackQuery,
    bot: Bot,
    callback_data: TakeBackGift,
    db: Database,
    clock: Clock,
    user: User,
    provider_titles: Mapping[str, str],
) -> None:
    """Two taps: a question that says what goes, then the removal (db/gifts.take_back)."""
    if not isinstance(query.message, Message):
        await query.answer()
        return
    search = admin_views.query_of(query.message)
    async with db.read() as conn:
        gift = await gifts.get_gift(conn, callback_data.gift_id)
    if gift is None:
        await query.answer()
        return
    back = callback_data.model_dump(include={"payment_id", "page_time", "page_id"})
    place = ShowBuyer(user_id=gift.user_id, **back)
    if not callback_data.confirmed:
        await query.answer()
        builder = InlineKeyboardBuilder()
        builder.button(
            text=_("Yes, take it back"),
            callback_data=callback_data.model_copy(update={"confirmed": True}),
        )
        builder.button(text=_("Cancel"), callback_data=place)
        builder.adjust(1)
        question = _(
            "Take back gift #{id} ({days}; reason: {reason})?\n\n"
            "Its unused days are removed now and the periods after it move earlier; "
            "days already used stay used."
        ).format(id=gift.id, days=days_of(gift.days, gift.tariff), reason=html.quote(gift.reason))
        await put_in_place(
            query,
            bot,
            "\n".join([*admin_views.query_line(search), question]),
            reply_markup=builder.as_markup(),
        )
        return
    now_ms = clock()
    async with db.transaction() as conn:
        removal = await gifts.take_back(conn, gift.id, user.id, now_ms)
    if removal is None:
        await query.answer(_("This gift was already taken back."), show_alert=True)
    elif removal.removed_ms:
        await query.answer(_("Gift taken back; its unused days were removed."))
    else:
        await query.answer(_("Gift taken back; its days were already used."))
    card = await render_card(db, gift.user_id, search, place, now_ms, provider_titles)
    if card is not None:
        await put_in_place(query, bot, card[0], reply_markup=card[1])


def register(router: Router) -> None:
    """Add the card and the gift flow to the admin router (its `IsAdmin` filter)."""
    router.message.register(user_command, Command("user"))
    router.message.register(gift_command, Command("gift"))
    router.callback_query.register(show_buyer, ShowBuyer.filter())
    router.callback_query.register(decide_gift, DecideGift.filter())
    router.callback_query.register(take_back, TakeBackGift.filter())
