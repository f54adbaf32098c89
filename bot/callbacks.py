"""Callback data of every inline button, typed and size-checked by aiogram."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class LanguageCallback(CallbackData, prefix="lang"):
    code: str


class BuyCallback(CallbackData, prefix="buy"):
    tariff: str


class MenuCallback(CallbackData, prefix="menu"):
    action: str  # home | tariffs | myplan | help


class ReceiptCallback(CallbackData, prefix="receipt"):
    """The receipt of one of the user's own orders (checked against the user)."""

    order: int
