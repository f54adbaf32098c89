"""What each outbox notice says, rendered in the user's language at send time."""

from __future__ import annotations

from datetime import datetime

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.texts import format_moment, format_som
from db import outbox
from db.tariffs import tariff_name


def render(kind: str, payload: dict[str, object]) -> tuple[str, InlineKeyboardMarkup | None]:
    """Text and buttons of one notice; call inside `i18n.use_locale(...)`."""
    tariff = str(payload.get("tariff", ""))
    name = tariff_name(tariff)
    amount = format_som(int(payload.get("amount", 0)))  # type: ignore[call-overload]
    raw_expiry = payload.get("expires_at")
    expiry = format_moment(datetime.fromisoformat(str(raw_expiry))) if raw_expiry else "—"
    if kind == outbox.PAYMENT_RECEIVED:
        text = _(
            "✅ Payment received: {amount}.\nYour plan {name} is active until {expiry} "
            "(Tashkent time). Thank you!"
        )
        return text.format(amount=amount, name=name, expiry=expiry), keyboards.my_plan()
    if kind == outbox.PAYMENT_REFUNDED:
        text = _(
            "↩️ Your payment of {amount} for {name} was refunded, and the days it gave "
            "were taken back. Your plan now ends on {expiry} (Tashkent time)."
        )
        return text.format(amount=amount, name=name, expiry=expiry), keyboards.my_plan()
    if kind == outbox.SUBSCRIPTION_REMINDER:
        text = _(
            "⏰ Your plan {name} ends on {expiry} (Tashkent time). Days left: {days}.\n"
            "Renew now to keep it without a break."
        )
        days = payload.get("days", "")
        return text.format(name=name, expiry=expiry, days=days), keyboards.renew(tariff)
    if kind == outbox.SUBSCRIPTION_EXPIRED:
        text = _(
            "⌛ Your plan {name} expired on {expiry} (Tashkent time).\n"
            "Renew it to get access again."
        )
        return text.format(name=name, expiry=expiry), keyboards.renew(tariff)
    raise ValueError(f"unknown notice kind {kind!r}")
