"""What each outbox notice says, rendered in the user's language at send time."""

from __future__ import annotations

import logging
from datetime import datetime

from aiogram import Bot, html
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot import keyboards
from bot.admin import notices as admin_notices
from bot.texts import (
    format_moment,
    format_som,
    order_days_line,
    paysupport_line,
    provider_title,
    receipt_text,
    timeline_text,
)
from db import admin_alerts, gifts, outbox
from db.tariffs import tariff_name

log = logging.getLogger(__name__)


def render(kind: str, payload: dict[str, object]) -> tuple[str, InlineKeyboardMarkup | None]:
    """Text and buttons of one notice; call inside `i18n.use_locale(...)`."""
    if kind == outbox.ADMIN_ALERT:
        return render_admin_alert(payload), None
    if kind == outbox.BROADCAST:  # the admin's checked HTML, put in by the notifier
        return str(payload.get("text", "")), None
    tariff = str(payload.get("tariff", ""))
    name = tariff_name(tariff)
    amount = format_som(int(payload.get("amount", 0)))  # type: ignore[call-overload]
    raw_expiry = payload.get("expires_at")
    expiry = format_moment(datetime.fromisoformat(str(raw_expiry))) if raw_expiry else "—"
    if kind == outbox.PAYMENT_RECEIVED and "order_code" in payload:
        return _receipt(payload, name), keyboards.receipt(
            int(payload["order_id"]),  # type: ignore[call-overload]
            fiscal=payload.get("provider") == "payme",
        )
    if kind in (gifts.GIFT_RECEIVED, gifts.GIFT_TAKEN_BACK):
        return _gift(kind, payload, name), keyboards.my_plan()
    if kind in (outbox.PAYMENT_RECEIVED, outbox.PAYMENT_REFUNDED) and "timeline" in payload:
        text = _ledger_notice(kind, payload, name, amount)
        if payload.get("test"):
            text += "\n" + _("🧪 Test payment (Payme sandbox): no real money was paid.")
        if kind == outbox.PAYMENT_REFUNDED:
            text += _refund_footer(payload)
        return text, keyboards.my_plan()
    # Notices queued before the ledger (no "timeline" in them) keep their old wording.
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
        text = text.format(amount=amount, name=name, expiry=expiry)
        return text + _refund_footer(payload), keyboards.my_plan()
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


def _stretches(payload: dict[str, object]) -> list[tuple[str, int]]:
    raw = payload.get("timeline")
    if not isinstance(raw, list):
        return []
    return [(str(item[0]), int(item[2])) for item in raw if isinstance(item, list)]


def _gift(kind: str, payload: dict[str, object], name: str) -> str:
    """An admin's gift of days granted or taken back (db/gifts.py), and the plan now."""
    days = int(payload.get("days") or 0)  # type: ignore[call-overload]
    if kind == gifts.GIFT_RECEIVED:
        text = ngettext(
            "🎁 You got {days} day of {name} as a gift.",
            "🎁 You got {days} days of {name} as a gift.",
            days,
        )
    else:
        text = ngettext(
            "↩️ The gift of {days} day of {name} was taken back.",
            "↩️ The gift of {days} days of {name} was taken back.",
            days,
        )
    stretches = _stretches(payload)
    plan = (
        _("Your plan: {timeline} (Tashkent time).").format(timeline=timeline_text(stretches))
        if stretches
        else _("You have no active plan.")
    )
    return text.format(days=days, name=name) + "\n" + plan


def _receipt(payload: dict[str, object], name: str) -> str:
    """The "payment received" message as a receipt (payload from db/orders.receipt_fields)."""
    paid_at = payload.get("paid_at")
    provider = str(payload.get("provider", ""))
    return receipt_text(
        code=str(payload.get("order_code", "")),
        name=name,
        amount=int(payload.get("amount", 0)),  # type: ignore[call-overload]
        days=int(payload.get("days") or 0),  # type: ignore[call-overload]
        provider=provider_title(provider),
        paid_at=int(paid_at) if isinstance(paid_at, int) else None,
        stretches=_stretches(payload),
        fiscal_url=None,
        test=bool(payload.get("test")),
    )


def _refund_footer(payload: dict[str, object]) -> str:
    """Under a refund, as under the receipt: the order number to quote and where to ask
    (a notice queued before db/billing.py stored the number has only the second)."""
    code = payload.get("order_code")
    lines = [_("Order: #{code}").format(code=code)] if code else []
    return "\n\n" + "\n".join([*lines, paysupport_line()])


def paid_checkout(kind: str, payload: dict[str, object]) -> tuple[int, int, str] | None:
    """The checkout message to turn into "Paid ✓" after a payment: (chat, message, text),
    or None. Call inside `i18n.use_locale(...)`, like `render`."""
    checkout = payload.get("checkout")
    if kind != outbox.PAYMENT_RECEIVED or not isinstance(checkout, list) or len(checkout) != 2:
        return None
    name = tariff_name(str(payload.get("tariff", "")))
    days = int(payload.get("days") or 0)  # type: ignore[call-overload]
    text = "\n".join(
        [
            _("🧾 Order #{code} — Paid ✓").format(code=payload.get("order_code", "")),
            order_days_line(name, int(payload.get("amount", 0)), days),  # type: ignore[call-overload]
            _("The receipt is in the message below."),
        ]
    )
    return int(checkout[0]), int(checkout[1]), text


async def mark_checkout_paid(bot: Bot, edit: tuple[int, int, str] | None) -> None:
    """Best effort: the checkout message loses its pay buttons. A message the buyer
    deleted (or one too old to edit) changes nothing: the receipt was delivered."""
    if edit is None:
        return
    chat_id, message_id, text = edit
    try:
        await bot.edit_message_text(text, chat_id=chat_id, message_id=message_id)
    except TelegramAPIError as error:
        log.info("checkout message %s/%s not marked paid: %s", chat_id, message_id, error)


def _ledger_notice(kind: str, payload: dict[str, object], name: str, amount: str) -> str:
    """ "Payment received" / "refunded" with the timeline the ledger gave (db/billing.py):
    what the user reads is what the ledger holds, including "nothing was taken back"
    when the refunded days were used already."""
    raw = payload.get("timeline")
    stretches = (
        [(str(item[0]), int(item[2])) for item in raw if isinstance(item, list)]
        if isinstance(raw, list)
        else []
    )
    plan = timeline_text(stretches)
    if kind == outbox.PAYMENT_RECEIVED:
        return _(
            "✅ Payment received: {amount}.\nYour plan: {timeline} (Tashkent time). Thank you!"
        ).format(amount=amount, timeline=plan)
    taken = bool(payload.get("removed_ms"))
    if taken and plan:
        text = _(
            "↩️ Your payment of {amount} for {name} was refunded, and its unused days "
            "were taken back.\nYour plan now: {timeline} (Tashkent time)."
        )
    elif taken:
        text = _(
            "↩️ Your payment of {amount} for {name} was refunded, and its unused days "
            "were taken back. Your plan has ended."
        )
    elif plan:
        text = _(
            "↩️ Your payment of {amount} for {name} was refunded. Its days had already "
            "been used, so your plan stays: {timeline} (Tashkent time)."
        )
    else:
        text = _(
            "↩️ Your payment of {amount} for {name} was refunded. Its days had already "
            "been used; you have no active plan."
        )
    return text.format(amount=amount, name=name, timeline=plan)


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
            f"{' 🧪' if item.get('test') else ''}"  # a Payme sandbox payment (A1)
            for item in payments
            if isinstance(item, dict)
        ]
        return _(
            "⚠️ Order {order} was paid twice ({amount} each):\n{payments}\n"
            "Both payments were credited, one period each. Refund one if the buyer asks."
        ).format(order=order, amount=amount, payments="\n".join(lines))
    raise ValueError(f"unknown admin alert {alert!r}")
