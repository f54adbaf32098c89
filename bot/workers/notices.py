"""What each outbox notice says, rendered in the user's language at send time."""

from __future__ import annotations

from datetime import datetime

from aiogram import html
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.admin import notices as admin_notices
from bot.texts import format_moment, format_som
from db import admin_alerts, outbox
from db.tariffs import tariff_name


def render(kind: str, payload: dict[str, object]) -> tuple[str, InlineKeyboardMarkup | None]:
    """Text and buttons of one notice; call inside `i18n.use_locale(...)`."""
    if kind == outbox.ADMIN_ALERT:
        return render_admin_alert(payload), None
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


def render_admin_alert(payload: dict[str, object]) -> str:
    """An alert about money at risk (db/admin_alerts.py), in the admin's language."""
    if (payment_notice := admin_notices.render(payload)) is not None:
        return payment_notice
    alert = payload.get("alert")
    amount = format_som(int(payload.get("amount", 0)))  # type: ignore[call-overload]
    order = html.quote(str(payload.get("order", "")))
    if alert == admin_alerts.CLICK_CANCEL_ON_PAID:
        return _(
            "⚠️ Click reported a failure (error {error}) for a payment that was already "
            "credited.\nPayment #{payment} · Click id {click_trans_id} · paydoc {paydoc}\n"
            "Order {order} · {amount}\nNothing was changed. Check the payment in Click's "
            "cabinet; if Click returned the money, record the reversal in /payments."
        ).format(
            error=payload.get("error"),
            payment=payload.get("payment_id"),
            click_trans_id=payload.get("click_trans_id"),
            paydoc=payload.get("click_paydoc_id"),
            order=order,
            amount=amount,
        )
    if alert == admin_alerts.DOUBLE_PAYMENT:
        raw = payload.get("payments")
        payments = raw if isinstance(raw, list) else []
        lines = [
            f"#{item.get('id')} {html.quote(str(item.get('provider_title', '')))} "
            f"{html.quote(str(item.get('provider_id', '')))}"
            for item in payments
            if isinstance(item, dict)
        ]
        return _(
            "⚠️ Order {order} was paid twice ({amount} each):\n{payments}\n"
            "Both payments were credited, one period each. Refund one if the buyer asks."
        ).format(order=order, amount=amount, payments="\n".join(lines))
    raise ValueError(f"unknown admin alert {alert!r}")
