"""The admin console: /payments (search, pages, details, Click reversal), /stats, /export.

Only ids in ADMIN_IDS pass `IsAdmin`; everyone else falls through to the fallback router
and gets exactly the answer any unknown command gets. Every button re-checks the sender,
because callback data can be forged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import (
    CallbackQuery,
    FSInputFile,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.admin import broadcast, buyer_card, digest, export, stats
from bot.admin import views as admin_views
from bot.admin.callbacks import (
    BroadcastAction,
    NoticeMode,
    PaymentsPage,
    RecordReversal,
    ShowBuyer,
    ShowPayment,
    Way,
)
from bot.admin.search import BadQuery, month_range, parse_query
from bot.admin.views import query_of
from bot.handlers.navigation import put_in_place
from bot.payment_methods import PaymentMethod
from bot.texts import format_som
from db import admin_queries
from db.admin_queries import Cursor, Filters, PaymentLine
from db.billing import refund_payment
from db.clock import TASHKENT, Clock, to_datetime
from db.database import Database
from db.orders import Order, get_order_by_id
from db.payments import Payment, get_payment, update_payment
from db.states import PaymentState
from db.users import User

PAGE_SIZE = 10
OTHERS_SHOWN = 5
DAY_MS = 86_400_000


class IsAdmin(Filter):
    async def __call__(self, event: TelegramObject, admin_ids: frozenset[int]) -> bool:
        sender = getattr(event, "from_user", None)
        return sender is not None and sender.id in admin_ids


def page_keyboard(lines: list[PaymentLine], newer: bool, older: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    anchor = lines[0].cursor
    for index, line in enumerate(lines):
        builder.button(
            text=str(index + 1),
            callback_data=ShowPayment(
                payment_id=line.id, page_time=anchor.create_time, page_id=anchor.id
            ),
        )
    builder.adjust(5)
    navigation = InlineKeyboardBuilder()
    if newer:
        first = lines[0].cursor
        navigation.button(
            text="◀",
            callback_data=PaymentsPage(
                way=Way.NEWER, create_time=first.create_time, payment_id=first.id
            ),
        )
    if older:
        last = lines[-1].cursor
        navigation.button(
            text="▶",
            callback_data=PaymentsPage(
                way=Way.OLDER, create_time=last.create_time, payment_id=last.id
            ),
        )
    builder.attach(navigation)
    return builder.as_markup()


def today_in_tashkent(clock: Clock) -> date:
    return to_datetime(clock()).astimezone(TASHKENT).date()


async def render_page(
    db: Database, query: str, page: PaymentsPage, clock: Clock, titles: Mapping[str, str]
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of a search and the totals of all its matches, read in one transaction."""
    try:
        filters = parse_query(query, titles.keys(), today_in_tashkent(clock))
    except BadQuery as error:
        return admin_views.cannot_read(query, str(error.args[0])), None
    cursor = Cursor(page.create_time, page.payment_id)
    async with db.report() as conn:
        if page.way == Way.NEWER:
            lines = await admin_queries.search(conn, filters, PAGE_SIZE, newer_than=cursor)
        elif page.way == Way.OLDER:
            lines = await admin_queries.search(conn, filters, PAGE_SIZE, older_than=cursor)
        elif page.way == Way.AT:
            lines = await admin_queries.search(conn, filters, PAGE_SIZE, at_or_older=cursor)
        else:
            lines = await admin_queries.search(conn, filters, PAGE_SIZE)
        if not lines and page.way != Way.FIRST:  # the rows moved away: start again
            lines = await admin_queries.search(conn, filters, PAGE_SIZE)
        if not lines:
            return admin_views.nothing_found(query), None
        newer = await admin_queries.search(conn, filters, 1, newer_than=lines[0].cursor)
        older = await admin_queries.search(conn, filters, 1, older_than=lines[-1].cursor)
        totals = await admin_queries.totals(conn, filters)
    text = admin_views.payments_page(query, totals, filters.test, lines, titles)
    return text, page_keyboard(lines, bool(newer), bool(older))


async def payments_command(
    message: Message,
    command: CommandObject,
    db: Database,
    clock: Clock,
    provider_titles: Mapping[str, str],
) -> None:
    query = " ".join((command.args or "").split())
    first = PaymentsPage(way=Way.FIRST)
    text, markup = await render_page(db, query, first, clock, provider_titles)
    await message.answer(text, reply_markup=markup)


async def payments_page(
    query: CallbackQuery,
    bot: Bot,
    callback_data: PaymentsPage,
    db: Database,
    clock: Clock,
    provider_titles: Mapping[str, str],
) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    search = query_of(query.message)
    text, markup = await render_page(db, search, callback_data, clock, provider_titles)
    await put_in_place(query, bot, text, reply_markup=markup)


def manual_reversal(payment_methods: Sequence[PaymentMethod]) -> frozenset[str]:
    """The providers whose refunds happen in their cabinet and are recorded here."""
    return frozenset(method.name for method in payment_methods if method.manual_reversal)


def back_button(builder: InlineKeyboardBuilder, page_time: int, page_id: int) -> None:
    way = Way.AT if page_id else Way.FIRST
    builder.button(
        text=_("◀ Back to the list"),
        callback_data=PaymentsPage(way=way, create_time=page_time, payment_id=page_id),
    )


def card_keyboard(
    line: PaymentLine, payment_methods: Sequence[PaymentMethod], page: ShowPayment
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if line.provider in manual_reversal(payment_methods) and line.state == PaymentState.PAID:
        builder.button(
            text=_("Record Click reversal"),
            callback_data=RecordReversal(
                payment_id=line.id,
                confirmed=False,
                page_time=page.page_time,
                page_id=page.page_id,
            ),
        )
    builder.button(
        text=_("👤 Buyer"),
        callback_data=ShowBuyer(user_id=line.user_id, **page.model_dump()),
    )
    back_button(builder, page.page_time, page.page_id)
    builder.adjust(1)
    return builder.as_markup()


async def render_card(
    db: Database, search: str, page: ShowPayment, now_ms: int, titles: Mapping[str, str],
    payment_methods: Sequence[PaymentMethod],
) -> tuple[str, InlineKeyboardMarkup] | None:  # fmt: skip
    async with db.read() as conn:
        line = await admin_queries.payment_line(conn, page.payment_id)
        if line is None:
            return None
        theirs = Filters(user_id=line.user_id)
        others = [
            other
            for other in await admin_queries.search(conn, theirs, OTHERS_SHOWN + 1)
            if other.id != line.id
        ][:OTHERS_SHOWN]
        count = await admin_queries.totals(conn, Filters(user_id=line.user_id, test=False))
    other_count = count.count + count.test_count - 1
    text = admin_views.payment_card(search, line, others, other_count, to_datetime(now_ms), titles)
    return text, card_keyboard(line, payment_methods, page)


async def show_payment(
    query: CallbackQuery,
    bot: Bot,
    callback_data: ShowPayment,
    db: Database,
    clock: Clock,
    provider_titles: Mapping[str, str],
    payment_methods: Sequence[PaymentMethod],
) -> None:
    """The card replaces the list in the same message; Back brings the same page back."""
    await query.answer()
    if not isinstance(query.message, Message):
        return
    card = await render_card(
        db, query_of(query.message), callback_data, clock(), provider_titles, payment_methods
    )
    if card is not None:
        await put_in_place(query, bot, card[0], reply_markup=card[1])


async def refund_in_books(
    conn: AsyncConnection, payment: Payment, order: Order, now_ms: int, admin_ids: frozenset[int]
) -> int:
    """The one place the console changes money: the ledger's refund of a paid payment.
    Returns the unused time it removed (0 when the period was used up already)."""
    refund = await refund_payment(conn, payment, order, now_ms, None, admin_ids)
    return refund.removed_ms


async def record_reversal(
    query: CallbackQuery,
    bot: Bot,
    callback_data: RecordReversal,
    db: Database,
    clock: Clock,
    user: User,
    admin_ids: frozenset[int],
    provider_titles: Mapping[str, str],
    payment_methods: Sequence[PaymentMethod],
) -> None:
    """Two taps: a question that says what this does and does not do (with Cancel), then
    the refund in our books in one locked transaction."""
    if not isinstance(query.message, Message):
        await query.answer()
        return
    search = query_of(query.message)
    page = ShowPayment(
        payment_id=callback_data.payment_id,
        page_time=callback_data.page_time,
        page_id=callback_data.page_id,
    )
    if not callback_data.confirmed:
        async with db.read() as conn:
            line = await admin_queries.payment_line(conn, callback_data.payment_id)
        await query.answer()
        if line is None:
            return
        builder = InlineKeyboardBuilder()
        builder.button(
            text=_("Yes, Click reversed this payment"),
            callback_data=callback_data.model_copy(update={"confirmed": True}),
        )
        builder.button(text=_("Cancel"), callback_data=page)
        builder.adjust(1)
        await put_in_place(
            query,
            bot,
            admin_views.reversal_question(search, line),
            reply_markup=builder.as_markup(),
        )
        return
    now_ms, removed_ms = clock(), 0
    async with db.transaction() as conn:
        payment = await get_payment(conn, callback_data.payment_id)
        order = await get_order_by_id(conn, payment.order_id, lock=True) if payment else None
        payment = await get_payment(conn, callback_data.payment_id)  # re-read under the lock
        done = (
            payment is not None
            and order is not None
            and payment.provider in manual_reversal(payment_methods)
            and payment.state == PaymentState.PAID
        )
        if payment is not None and order is not None and done:
            removed_ms = await refund_in_books(conn, payment, order, now_ms, admin_ids)
            note = f"reversal recorded by admin {user.id}"
            await update_payment(conn, payment.id, cancel_note=note)
    if not done:
        await query.answer(_("This payment is not a paid Click payment any more."), True)
        return
    await query.answer(
        _("Reversal recorded; the payment's unused days were taken back.")
        if removed_ms
        else _("Reversal recorded; its days were already used, so the plan did not change.")
    )
    card = await render_card(db, search, page, now_ms, provider_titles, payment_methods)
    if card is not None:
        await put_in_place(query, bot, card[0], reply_markup=card[1])


async def export_command(
    message: Message,
    command: CommandObject,
    db: Database,
    clock: Clock,
    bot: Bot,
    provider_titles: Mapping[str, str],
) -> None:
    """`/export [search] [csv]`: the search of /payments (this month unless it names a
    period), test payments only when asked for; an .xlsx unless `csv` is asked for."""
    words = (command.args or "").split()
    as_csv = any(word.lower() == "csv" for word in words)
    query = " ".join(word for word in words if word.lower() not in ("csv", "xlsx"))
    today = today_in_tashkent(clock)
    try:
        filters = parse_query(query, provider_titles.keys(), today)
    except BadQuery:
        await message.answer(
            _("Usage: /export [search as in /payments] [csv] (default: this month)")
        )
        return
    if filters.created_from_ms is None:
        start, end = month_range(today)
        filters = replace(filters, created_from_ms=start, created_to_ms=end)
    filters = replace(filters, real_only=not filters.test)
    assert filters.created_from_ms is not None and filters.created_to_ms is not None
    first = to_datetime(filters.created_from_ms).astimezone(TASHKENT).date()
    last = to_datetime(filters.created_to_ms - 1).astimezone(TASHKENT).date()
    suffix = "csv" if as_csv else "xlsx"
    name = f"payments_{first:%Y-%m-%d}_{last:%Y-%m-%d}.{suffix}"
    with tempfile.TemporaryDirectory(prefix="export-") as directory:
        path = Path(directory) / name
        write = export.write_csv if as_csv else export.write_xlsx
        sums = await write(db, filters, dict(provider_titles), path)
        caption = ngettext(
            "{count} payment, {first} – {last}; paid {paid}, refunded {refunded}",
            "{count} payments, {first} – {last}; paid {paid}, refunded {refunded}",
            sums.count,
        ).format(
            count=sums.count,
            first=f"{first:%d.%m.%Y}",
            last=f"{last:%d.%m.%Y}",
            paid=format_som(sums.paid),
            refunded=format_som(sums.refunded),
        )
        if filters.test:
            caption += "\n" + _("Test payments only.")
        await bot.send_document(message.chat.id, FSInputFile(path, filename=name), caption=caption)


def create_router() -> Router:
    """A fresh router per dispatcher; every handler in it is for admins only."""
    router = Router(name="admin")
    router.message.filter(IsAdmin())
    router.callback_query.filter(IsAdmin())
    router.message.register(payments_command, Command("payments"))
    router.message.register(stats.stats_command, Command("stats"))
    router.message.register(export_command, Command("export"))
    router.message.register(broadcast.broadcast_command, Command("broadcast"))
    router.message.register(digest.notices_command, Command("notices"))
    router.callback_query.register(payments_page, PaymentsPage.filter())
    router.callback_query.register(show_payment, ShowPayment.filter())
    router.callback_query.register(record_reversal, RecordReversal.filter())
    buyer_card.register(router)
    router.callback_query.register(broadcast.broadcast_action, BroadcastAction.filter())
    router.callback_query.register(digest.notice_mode_chosen, NoticeMode.filter())
    return router
