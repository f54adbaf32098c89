"""Inline keyboards; every button carries typed `CallbackData` or a URL."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import BuyCallback, LanguageCallback, MenuCallback, ReceiptCallback
from bot.texts import LANGUAGE_NAMES, format_som
from db.tariffs import Tariff, tariff_name


def languages(selected: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        mark = "✅ " if code == selected else ""
        builder.button(text=mark + name, callback_data=LanguageCallback(code=code))
    builder.adjust(3)
    return builder.as_markup()


def main_menu() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("💳 Tariffs"), callback_data=MenuCallback(action="tariffs"))
    builder.button(text=_("📅 My plan"), callback_data=MenuCallback(action="myplan"))
    builder.adjust(2)
    return builder.as_markup()


def tariffs(items: Iterable[Tariff]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for tariff in items:
        builder.button(
            text=_("Buy {name} — {price}").format(
                name=tariff_name(tariff.code), price=format_som(tariff.price)
            ),
            callback_data=BuyCallback(tariff=tariff.code),
        )
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action="home"))
    builder.adjust(1)
    return builder.as_markup()


def pay(buttons: Iterable[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One button per payment method: (the provider's title, its checkout link), then
    the way back to the catalogue (this message stays the order's checkout)."""
    builder = InlineKeyboardBuilder()
    for title, url in buttons:
        builder.button(text=_("Pay with {provider}").format(provider=title), url=url)
    builder.button(text=_("⬅️ All plans"), callback_data=MenuCallback(action="tariffs"))
    builder.adjust(1)
    return builder.as_markup()


def back() -> InlineKeyboardMarkup:
    """Back to the main menu, for answers that end a path (/help, /terms, /paysupport)."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action="home"))
    return builder.as_markup()


def plan_menu() -> InlineKeyboardMarkup:
    """Under /myplan: the catalogue, and back to the main menu."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("💳 Tariffs"), callback_data=MenuCallback(action="tariffs"))
    builder.button(text=_("⬅️ Back"), callback_data=MenuCallback(action="home"))
    builder.adjust(2)
    return builder.as_markup()


def buy() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("💳 Tariffs"), callback_data=MenuCallback(action="tariffs"))
    return builder.as_markup()


def my_plan() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("📅 My plan"), callback_data=MenuCallback(action="myplan"))
    return builder.as_markup()


def renew(tariff: str) -> InlineKeyboardMarkup:
    """Starts a new order for the same tariff (the buy handler opens or reuses one)."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("🔄 Renew {name}").format(name=tariff_name(tariff)),
        callback_data=BuyCallback(tariff=tariff),
    )
    return builder.as_markup()


def receipt(order_id: int, *, fiscal: bool) -> InlineKeyboardMarkup:
    """Under a receipt: the plan, and for Payme the fiscal receipt once Payme sends it
    (SetFiscalData usually arrives after the receipt message)."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("📅 My plan"), callback_data=MenuCallback(action="myplan"))
    if fiscal:
        builder.button(text=_("🧾 Fiscal receipt"), callback_data=ReceiptCallback(order=order_id))
    builder.adjust(2)
    return builder.as_markup()
