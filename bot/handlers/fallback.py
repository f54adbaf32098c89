"""Everything no other handler took: a friendly pointer, never an exception.

Registered last. Stale or forged buttons are answered (so the client stops spinning)
and change nothing.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.handlers.support import Support, contact_line


async def unknown_message(message: Message, support: Support) -> None:
    await message.answer(
        _("I did not understand that. Send /tariffs to choose a plan or /help for help.")
        + "\n"
        + contact_line(support),
        reply_markup=keyboards.buy(),
    )


async def unknown_button(query: CallbackQuery) -> None:
    await query.answer(_("This button is out of date. Send /tariffs to start again."))


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once)."""
    router = Router(name="fallback")
    router.message.register(unknown_message)
    router.callback_query.register(unknown_button)
    return router
