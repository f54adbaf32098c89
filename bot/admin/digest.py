"""/notices: an admin chooses payment notices at once or one digest a day at a Tashkent hour.

The choice is stored per admin (db/digest.py); alerts about money at risk (double
payments, Click's cancel on a paid payment) come at once whatever is chosen.
"""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.admin.callbacks import NoticeMode
from bot.handlers.navigation import put_in_place
from db import digest
from db.clock import Clock
from db.database import Database

AT_ONCE = -1  # NoticeMode.hour for "every notice at once"


def mode_text(hour: int | None) -> str:
    current = (
        _("Payment notices: each payment and refund at once.")
        if hour is None
        else _("Payment notices: one digest a day at {hour}:00 (Tashkent time).").format(
            hour=f"{hour:02d}"
        )
    )
    return "\n".join(
        [
            current,
            _(
                "Alerts about money at risk (a double payment, Click cancelling a paid "
                "payment) always come at once."
            ),
            _("Choose:"),
        ]
    )


def mode_keyboard(hour: int | None) -> InlineKeyboardMarkup:
    """ "At once", then the 24 hours, six to a row; the current choice is ticked."""
    builder = InlineKeyboardBuilder()
    at_once = _("At once")
    builder.button(
        text=f"✓ {at_once}" if hour is None else at_once, callback_data=NoticeMode(hour=AT_ONCE)
    )
    for choice in range(24):
        label = f"{choice:02d}:00"
        builder.button(
            text=f"✓ {label}" if choice == hour else label, callback_data=NoticeMode(hour=choice)
        )
    builder.adjust(1, *([6] * 4))
    return builder.as_markup()


async def notices_command(message: Message, db: Database) -> None:
    if message.from_user is None:
        return
    async with db.read() as conn:
        mode = await digest.get_mode(conn, message.from_user.id)
    await message.answer(mode_text(mode.hour), reply_markup=mode_keyboard(mode.hour))


async def notice_mode_chosen(
    query: CallbackQuery, bot: Bot, callback_data: NoticeMode, db: Database, clock: Clock
) -> None:
    if not 0 <= callback_data.hour < 24 and callback_data.hour != AT_ONCE:
        await query.answer()
        return
    hour = None if callback_data.hour == AT_ONCE else callback_data.hour
    async with db.transaction() as conn:
        before = await digest.set_mode(conn, query.from_user.id, hour, clock())
    await query.answer(_("Saved."))
    # The same choice again: Telegram refuses an edit that changes nothing.
    if isinstance(query.message, Message) and before.hour != hour:
        await put_in_place(query, bot, mode_text(hour), reply_markup=mode_keyboard(hour))
