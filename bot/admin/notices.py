"""What an admin reads when money moves (db/admin_alerts.payment_notice), in their language.

Rendered by the notifier at send time like every outbox notice; this module only knows
the payment notices and answers None for any other alert, which the notifier's own
renderer then handles.
"""

from __future__ import annotations

from aiogram import html
from aiogram.utils.i18n import gettext as _

from bot.texts import format_som
from db import admin_alerts
from db.tariffs import tariff_name

PROVIDER_TITLES = {"click": "Click", "payme": "Payme"}


def buyer(payload: dict[str, object]) -> str:
    buyer_id = int(str(payload.get("buyer_id", 0)))
    name = html.quote(str(payload.get("buyer_name") or buyer_id))
    username = payload.get("buyer_username")
    handle = f" @{html.quote(str(username))}" if username else ""
    return f"{html.link(name, f'tg://user?id={buyer_id}')}{handle} ({buyer_id})"


def render(payload: dict[str, object]) -> str | None:
    alert = payload.get("alert")
    if alert == admin_alerts.PAYMENT_PAID:
        text = _("💰 Payment received: {amount} · {tariff} · {provider}")
    elif alert == admin_alerts.PAYMENT_REFUNDED:
        text = _("↩️ Payment refunded: {amount} · {tariff} · {provider}")
    else:
        return None
    provider = str(payload.get("provider", ""))
    lines = [
        text.format(
            amount=format_som(int(str(payload.get("amount", 0)))),
            tariff=tariff_name(str(payload.get("tariff", ""))),
            provider=html.quote(PROVIDER_TITLES.get(provider, provider)),
        ),
        _("Buyer: {user}").format(user=buyer(payload)),
        _("Order {order} · payment #{payment}").format(
            order=html.code(html.quote(str(payload.get("order", "")))),
            payment=payload.get("payment_id"),
        ),
    ]
    if payload.get("test"):
        lines.append("🧪 " + _("Test payment: not counted in revenue."))
    return "\n".join(lines)
