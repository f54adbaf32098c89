"""Callback data of the admin console's buttons.

Telegram allows 64 bytes of callback data, so page buttons carry only a keyset cursor;
the search itself travels in the message text (its first line, `🔎 query`), which
Telegram hands back with every button press.
"""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class Way(StrEnum):
    FIRST = "f"  # the newest page
    OLDER = "o"  # rows older than the cursor (▶)
    NEWER = "n"  # rows newer than the cursor (◀)
    AT = "a"  # the page that starts at the cursor (Back from a card)


class PaymentsPage(CallbackData, prefix="ap"):
    way: Way
    create_time: int = 0
    payment_id: int = 0


class ShowPayment(CallbackData, prefix="as"):
    payment_id: int
    page_time: int = 0  # the first row of the list it was opened from, for Back
    page_id: int = 0


class RecordReversal(CallbackData, prefix="ar"):
    payment_id: int
    confirmed: bool
    page_time: int = 0
    page_id: int = 0


class ShowBuyer(CallbackData, prefix="ab"):
    """A buyer's card (bot/admin/buyer_card.py); from a payment's card it keeps that
    card's place (payment and list page) for Back."""

    user_id: int
    payment_id: int = 0
    page_time: int = 0
    page_id: int = 0


class DecideGift(CallbackData, prefix="ag"):
    """Confirm or Cancel under a gift's preview; the gift itself is a pending row."""

    gift_id: int
    confirmed: bool


class TakeBackGift(CallbackData, prefix="at"):
    """Take a granted gift back: a question first, then (confirmed) the removal; the
    card's place rides along for its Back."""

    gift_id: int
    confirmed: bool
    payment_id: int = 0
    page_time: int = 0
    page_id: int = 0


# /shop (bot/admin/shop.py): stateless, a button names a tariff or a stored change.
class ShopList(CallbackData, prefix="sl"):
    pass


class ShopCard(CallbackData, prefix="sc"):
    tariff: str


class ShopToggle(CallbackData, prefix="sv"):
    """Hide or show a tariff: asks for confirmation like every other change."""

    tariff: str
    hidden: bool


class ShopDecision(CallbackData, prefix="sd"):
    change_id: int
    confirm: bool


class ShopHistory(CallbackData, prefix="sy"):
    older_than: int = 0  # 0: the newest page


class BroadcastStep(StrEnum):
    SEND = "s"
    CANCEL = "c"


class BroadcastAction(CallbackData, prefix="bc"):
    """Send or Cancel under a /broadcast preview, Cancel under its status message."""

    id: int
    step: BroadcastStep


class NoticeMode(CallbackData, prefix="an"):
    """/notices: payment notices at once (`hour` -1) or a daily digest at `hour`:00."""

    hour: int
