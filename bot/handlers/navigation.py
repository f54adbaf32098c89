"""Menu taps edit the message they are on, so a chat does not fill with menus.

A message that cannot be edited (too old, deleted, or an inaccessible one Telegram
sends for old taps) gets its content as a new message instead: the buyer always sees
an answer.
"""

from __future__ import annotations

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message


async def show_in_place(
    query: CallbackQuery,
    bot: Bot,
    text: str,
    markup: InlineKeyboardMarkup | None,
    toast: str | None = None,
) -> Message | None:
    """Answer the tap (with `toast`, if any) and put `text` on the tapped message; the
    message shown, when known."""
    await query.answer(toast)
    return await put_in_place(query, bot, text, markup)


async def put_in_place(
    query: CallbackQuery,
    bot: Bot,
    text: str,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> Message | None:
    """Put `text` on the tapped message (the tap answered by the caller); sent anew when
    the message cannot be edited, left alone when it already shows exactly this."""
    message = query.message
    if isinstance(message, Message):
        try:
            edited = await message.edit_text(text, reply_markup=reply_markup)
        except TelegramBadRequest as error:
            if "message is not modified" in error.message:
                return message  # a double tap: it already shows this
        else:
            return edited if isinstance(edited, Message) else message
    chat_id = message.chat.id if message is not None else query.from_user.id
    return await bot.send_message(chat_id, text, reply_markup=reply_markup)
