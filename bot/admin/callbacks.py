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


class NoticeMode(CallbackData, prefix="an"):
    """/notices: payment notices at once (`hour` -1) or a daily digest at `hour`:00."""

    hour: int
