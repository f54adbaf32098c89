"""/stats: the shop's figures for the last N Tashkent days against the N days before, and
the daily revenue chart (drawn in a worker thread; matplotlib loaded only then)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta

from aiogram import Bot
from aiogram.filters import CommandObject
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.admin import views as admin_views
from bot.admin.search import day_start_ms
from db import admin_queries, admin_stats
from db.clock import TASHKENT, TASHKENT_OFFSET_MS, Clock, to_datetime
from db.database import Database

DAY_MS = 86_400_000


def stats_days(argument: str) -> int | None:
    """`/stats` is 30 days; `/stats 7` any number of days up to a year."""
    if not argument:
        return 30
    if argument.isascii() and argument.isdigit() and 1 <= int(argument) <= 366:
        return int(argument)
    return None


async def stats_command(
    message: Message,
    command: CommandObject,
    db: Database,
    clock: Clock,
    bot: Bot,
    provider_titles: Mapping[str, str],
) -> None:
    """The last N Tashkent days (today included) against the N days before them."""
    days = stats_days((command.args or "").strip())
    if days is None:
        await message.answer(_("Usage: /stats [days, 1–366] (default: 30)"))
        return
    now_ms = clock()
    today = to_datetime(now_ms).astimezone(TASHKENT).date()
    first = today - timedelta(days=days - 1)
    start, end = day_start_ms(first), day_start_ms(today + timedelta(days=1))
    previous = day_start_ms(first - timedelta(days=days))
    async with db.report() as conn:
        current = await admin_queries.period_figures(conn, start, end)
        before = await admin_queries.period_figures(conn, previous, start)
        active_now = await admin_stats.active_subscribers(conn, now_ms)
        active_before = await admin_stats.active_subscribers(conn, now_ms - days * DAY_MS)
        daily = await admin_queries.daily_by_tariff(conn, start, end, TASHKENT_OFFSET_MS)
    period = ngettext("{days} day: {first} – {last}", "{days} days: {first} – {last}", days).format(
        days=days, first=f"{first:%d.%m.%Y}", last=f"{today:%d.%m.%Y}"
    )
    compared = ngettext(
        "Against the previous {days} day: {first} – {last}",
        "Against the previous {days} days: {first} – {last}",
        days,
    ).format(
        days=days,
        first=f"{first - timedelta(days=days):%d.%m.%Y}",
        last=f"{first - timedelta(days=1):%d.%m.%Y}",
    )
    text = admin_views.stats_text(
        days, period, compared, current, before, (active_now, active_before), provider_titles
    )
    await message.answer(text)
    first_number = (start + TASHKENT_OFFSET_MS) // DAY_MS
    dates = [first + timedelta(days=index) for index in range(days)]
    tariffs = sorted({tariff for _day, tariff in daily})
    series = {
        tariff: [daily.get((first_number + index, tariff), 0) for index in range(days)]
        for tariff in tariffs
    }
    from bot.admin import chart  # matplotlib is heavy: loaded when a chart is drawn

    labels = chart.Labels(
        title=_("Revenue per day"),
        unit=_("thousand so'm, test payments out"),
        average=_("7-day average"),
        empty=_("No payments yet"),
        empty_hint=_("The chart fills in as payments arrive."),
    )
    png = await asyncio.to_thread(chart.revenue_png, dates, series, labels)
    await bot.send_photo(
        message.chat.id, BufferedInputFile(png, filename="revenue.png"), caption=period
    )
