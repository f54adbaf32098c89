"""/terms, /paysupport and the pointer a payment question or a screenshot gets.

Telegram asks bots that take payments to answer /terms and /paysupport; a buyer who
writes "how do I pay?" or sends a photo of a payment should reach a person (the
`SUPPORT_CONTACT`), not "I did not understand".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiogram import F, Router, html
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.texts import paysupport_line


@dataclass(frozen=True)
class Support:
    """How buyers reach a person (`SUPPORT_CONTACT`: @username or https link) and where
    the terms live (`TERMS_URL`; without it /terms answers with the short text)."""

    contact: str | None = None
    terms_url: str | None = None


# Words a payment question contains, in the three languages (lower case, word starts).
PAYMENT_WORDS = re.compile(
    r"\b(pay|paid|payment|refund|money|receipt|charge|"
    r"оплат|плат[её]ж|плати|заплат|деньг|возврат|чек|списал|"
    r"to[ʻ'‘`’]?lov|to[ʻ'‘`’]?la|pul|chek|qaytar)",
    re.IGNORECASE,
)


def looks_like_payment_question(text: str) -> bool:
    """A sentence about paying; a command (even an unknown /payments) is not one."""
    return not text.startswith("/") and bool(PAYMENT_WORDS.search(text))


def contact_line(support: Support) -> str:
    """ "Questions: @shop_support" — or the /paysupport pointer when no contact is set."""
    if support.contact:
        return _("Questions? Write to {contact}.").format(contact=html.quote(support.contact))
    return paysupport_line()


async def terms(message: Message, support: Support) -> None:
    if support.terms_url:
        text = _("The terms of service: {url}").format(url=html.quote(support.terms_url))
    else:
        text = _(
            "Terms in short: a payment buys the chosen plan for the days shown before you "
            "pay; it starts as soon as the payment is confirmed. A refund takes back the "
            "unused days. Payments go through Click or Payme; we never see your card."
        )
    await message.answer(text + "\n\n" + contact_line(support), reply_markup=keyboards.back())


async def pay_support(message: Message, support: Support) -> None:
    text = _(
        "Help with a payment:\n"
        "1. Find the order number in the payment message (for example #A7K2Q).\n"
        "2. If the money was taken but no message came within 10 minutes, or you want a "
        "refund, write to us with that number."
    )
    if support.contact:
        text += "\n\n" + _("Write to {contact}.").format(contact=html.quote(support.contact))
    await message.answer(text, reply_markup=keyboards.back())


async def payment_question(message: Message) -> None:
    await message.answer(
        _("Is this about a payment? Send /paysupport to see how to reach us."),
        reply_markup=keyboards.back(),
    )


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once). Include it
    after the command routers and before the fallback."""
    router = Router(name="support")
    router.message.register(terms, Command("terms"))
    router.message.register(pay_support, Command("paysupport"))
    router.message.register(payment_question, F.photo)
    router.message.register(
        payment_question, F.text.func(lambda text: looks_like_payment_question(text))
    )
    return router
