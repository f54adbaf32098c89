"""The admin console: /payments (search, pages, details, Click reversal), /stats, /export.

Only ids in ADMIN_IDS pass `IsAdmin`; everyone else falls through to the fallback router
and gets exactly the answer any unknown command gets. Every button re-checks the sender,
because callback data can be forged.
"""

from __future__ import annotations

import asyncio
import csv
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import timedelta

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    FSInputFile,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.admin import views as admin_views
from bot.admin.callbacks import PaymentsPage, RecordReversal, ShowPayment
from bot.admin.search import BadQuery, date_range, day_start_ms, month_range, parse_query
from bot.payment_methods import PaymentMethod
from db import admin_queries
from db.admin_queries import Filters, PaymentLine
from db.billing import refund_payment
from db.clock import TASHKENT, TASHKENT_OFFSET_MS, Clock, to_datetime
from db.database import Database
from db.money import som_decimal
from db.orders import get_order_by_id
from db.payments import get_payment, update_payment
from db.states import PaymentState
from db.users import User

PAGE_SIZE = 10
DAY_MS = 86_400_000
CSV_HEADER = (
    "payment_id", "created_at", "provider", "provider_id", "click_paydoc_id",
    "merchant_trans_id", "user_id", "username", "tariff", "amount_som", "state",
    "paid_at", "cancelled_at", "cancel_reason",
)  # fmt: skip


class IsAdmin(Filter):
    async def __call__(self, event: TelegramObject, admin_ids: frozenset[int]) -> bool:
        sender = getattr(event, "from_user", None)
        return sender is not None and sender.id in admin_ids


def page_keyboard(
    lines: list[PaymentLine], offset: int, query: str, more: bool
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for index, line in enumerate(lines):
        builder.button(text=str(offset + index + 1), callback_data=ShowPayment(payment_id=line.id))
    builder.adjust(5)
    navigation = InlineKeyboardBuilder()
    try:
        if offset > 0:
            back = PaymentsPage(offset=max(0, offset - PAGE_SIZE), query=query)
            navigation.button(text="◀", callback_data=back)
        if more:
            navigation.button(
                text="▶", callback_data=PaymentsPage(offset=offset + PAGE_SIZE, query=query)
            )
    except ValueError:
        navigation = InlineKeyboardBuilder()  # a query too long for a button: no paging
    builder.attach(navigation)
    return builder.as_markup()


async def render_page(
    db: Database, query: str, offset: int, titles: Mapping[str, str]
) -> tuple[str, InlineKeyboardMarkup]:
    try:
        filters = parse_query(query, provider_names=titles.keys())
    except BadQuery as error:
        raise BadQuery(_("Cannot read “{word}”.").format(word=error.args[0])) from error
    async with db.read() as conn:
        lines = await admin_queries.search(conn, filters, offset, PAGE_SIZE + 1)
    more = len(lines) > PAGE_SIZE
    lines = lines[:PAGE_SIZE]
    if not lines:
        return admin_views.nothing_found(), InlineKeyboardBuilder().as_markup()
    text = admin_views.payments_page(lines, offset, titles)
    return text, page_keyboard(lines, offset, query, more)


async def payments_command(
    message: Message, command: CommandObject, db: Database, provider_titles: Mapping[str, str]
) -> None:
    query = (command.args or "").strip()
    try:
        text, markup = await render_page(db, query, 0, provider_titles)
    except BadQuery as error:
        await message.answer(f"{error}\n\n{admin_views.nothing_found()}")
        return
    await message.answer(text, reply_markup=markup)


async def payments_page(
    query: CallbackQuery,
    callback_data: PaymentsPage,
    db: Database,
    provider_titles: Mapping[str, str],
) -> None:
    try:
        text, markup = await render_page(
            db, callback_data.query, callback_data.offset, provider_titles
        )
    except BadQuery:
        await query.answer()
        return
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)


def manual_reversal(payment_methods: Sequence[PaymentMethod]) -> frozenset[str]:
    """The providers whose refunds happen in their cabinet and are recorded here."""
    return frozenset(method.name for method in payment_methods if method.manual_reversal)


def details_keyboard(
    line: PaymentLine, payment_methods: Sequence[PaymentMethod]
) -> InlineKeyboardMarkup | None:
    if line.provider not in manual_reversal(payment_methods) or line.state != PaymentState.PAID:
        return None
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("Record Click reversal"),
        callback_data=RecordReversal(payment_id=line.id, confirmed=False),
    )
    return builder.as_markup()


async def show_payment(
    query: CallbackQuery,
    callback_data: ShowPayment,
    db: Database,
    clock: Clock,
    provider_titles: Mapping[str, str],
    payment_methods: Sequence[PaymentMethod],
) -> None:
    async with db.read() as conn:
        line = await admin_queries.payment_line(conn, callback_data.payment_id)
    await query.answer()
    if line is None or not isinstance(query.message, Message):
        return
    await query.message.answer(
        admin_views.payment_details(line, to_datetime(clock()), provider_titles),
        reply_markup=details_keyboard(line, payment_methods),
    )


async def record_reversal(
    query: CallbackQuery,
    callback_data: RecordReversal,
    db: Database,
    clock: Clock,
    user: User,
    provider_titles: Mapping[str, str],
    payment_methods: Sequence[PaymentMethod],
) -> None:
    """Two taps: confirm, then take the payment's days back in one locked transaction."""
    if not isinstance(query.message, Message):
        await query.answer()
        return
    if not callback_data.confirmed:
        builder = InlineKeyboardBuilder()
        builder.button(
            text=_("Yes, Click reversed this payment"),
            callback_data=RecordReversal(payment_id=callback_data.payment_id, confirmed=True),
        )
        await query.answer()
        await query.message.edit_reply_markup(reply_markup=builder.as_markup())
        return
    now_ms = clock()
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
            removed_ms = (await refund_payment(conn, payment, order, now_ms, None)).removed_ms
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
    async with db.read() as conn:
        line = await admin_queries.payment_line(conn, callback_data.payment_id)
    if line is not None:
        await query.message.edit_text(
            admin_views.payment_details(line, to_datetime(now_ms), provider_titles)
        )


async def stats_command(
    message: Message, db: Database, clock: Clock, bot: Bot, provider_titles: Mapping[str, str]
) -> None:
    now_ms = clock()
    today = to_datetime(now_ms).astimezone(TASHKENT).date()
    today_ms = day_start_ms(today)
    windows_ms = (
        (_("Today"), today_ms),
        (_("7 days"), day_start_ms(today - timedelta(days=6))),
        (_("30 days"), day_start_ms(today - timedelta(days=29))),
    )
    async with db.read() as conn:
        windows = [(title, await admin_queries.revenue(conn, since)) for title, since in windows_ms]
        paying = await admin_queries.paying_users(conn, windows_ms[2][1])
        active = await admin_queries.active_subscribers(conn, to_datetime(now_ms))
        daily = await admin_queries.daily_revenue(conn, windows_ms[2][1], TASHKENT_OFFSET_MS)
    await message.answer(admin_views.stats_text(windows, paying, active, provider_titles))
    first_day = (today_ms + TASHKENT_OFFSET_MS) // DAY_MS - 29
    days = [today - timedelta(days=29 - index) for index in range(30)]
    amounts = [daily.get(first_day + index, 0) for index in range(30)]
    from bot.admin.chart import revenue_png  # matplotlib is heavy: loaded on first use

    png = await asyncio.to_thread(revenue_png, days, amounts, _("Revenue per day, so'm"))
    await bot.send_photo(
        message.chat.id, BufferedInputFile(png, filename="revenue.png"), caption=_("30 days")
    )


def csv_row(line: PaymentLine) -> list[str]:
    def moment(ms: int | None) -> str:
        return to_datetime(ms).astimezone(TASHKENT).isoformat(timespec="seconds") if ms else ""

    return [
        str(line.id),
        moment(line.create_time),
        line.provider,
        line.provider_id,
        "" if line.click_paydoc_id is None else str(line.click_paydoc_id),
        line.merchant_trans_id,
        str(line.user_id),
        line.username or "",
        line.tariff,
        som_decimal(line.amount),
        line.state,
        moment(line.perform_time),
        moment(line.cancel_time),
        line.cancel_note or ("" if line.cancel_reason is None else str(line.cancel_reason)),
    ]


async def export_command(
    message: Message, command: CommandObject, db: Database, clock: Clock, bot: Bot
) -> None:
    """Rows go from a streamed query into a temporary file, never all into memory."""
    argument = (command.args or "").strip()
    today = to_datetime(clock()).astimezone(TASHKENT).date()
    try:
        span = date_range(argument) if argument else month_range(today)
    except BadQuery:
        span = None
    if span is None:
        await message.answer(_("Usage: /export 2026-11-01..2026-11-23 (default: this month)"))
        return
    filters = Filters(created_from_ms=span[0], created_to_ms=span[1])
    handle, path = tempfile.mkstemp(prefix="payments-", suffix=".csv")
    try:
        count = 0
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(CSV_HEADER)
            async with db.read() as conn:
                async for line in admin_queries.stream_lines(conn, filters):
                    writer.writerow(csv_row(line))
                    count += 1
        first = to_datetime(span[0]).astimezone(TASHKENT).date()
        last = to_datetime(span[1] - 1).astimezone(TASHKENT).date()
        name = f"payments_{first:%Y-%m-%d}_{last:%Y-%m-%d}.csv"
        caption = _("{count} payments, {first} – {last}").format(
            count=count, first=f"{first:%d.%m.%Y}", last=f"{last:%d.%m.%Y}"
        )
        await bot.send_document(message.chat.id, FSInputFile(path, filename=name), caption=caption)
    finally:
        os.unlink(path)


def create_router() -> Router:
    """A fresh router per dispatcher; every handler in it is for admins only."""
    router = Router(name="admin")
    router.message.filter(IsAdmin())
    router.callback_query.filter(IsAdmin())
    router.message.register(payments_command, Command("payments"))
    router.message.register(stats_command, Command("stats"))
    router.message.register(export_command, Command("export"))
    router.callback_query.register(payments_page, PaymentsPage.filter())
    router.callback_query.register(show_payment, ShowPayment.filter())
    router.callback_query.register(record_reversal, RecordReversal.filter())
    return router
