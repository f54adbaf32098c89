"""Callback data of the admin console's buttons."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class PaymentsPage(CallbackData, prefix="ap"):
    offset: int
    query: str


class ShowPayment(CallbackData, prefix="as"):
    payment_id: int


class RecordReversal(CallbackData, prefix="ar"):
    payment_id: int
    confirmed: bool
