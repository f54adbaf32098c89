"""What an admin reads when money moves (db/admin_alerts.payment_notice), in their language,
one by one or as the daily digest (db/digest.py).

Rendered by the notifier at send time like every outbox notice; this module only knows
the payment notices and the digest and answers None for any other alert, which the
notifier's own renderer then handles.
"""

from __future__ import annotations

from aiogram import html
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.texts import format_moment, format_som
from db import admin_alerts
from db.clock import TASHKENT, to_datetime
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
    if alert == admin_alerts.PAYMENT_DIGEST:
        return digest(payload)
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


def _figure(raw: object) -> tuple[int, int]:
    count, amount = raw if isinstance(raw, list) else (0, 0)
    return int(count), int(amount)


def _split(payload: dict[str, object], key: str) -> dict[str, tuple[int, int]]:
    raw = payload.get(key)
    return {str(name): _figure(v) for name, v in raw.items()} if isinstance(raw, dict) else {}


def digest(payload: dict[str, object]) -> str:
    """The day's payments and refunds in one message (payload from db/digest.figures):
    totals, per tariff and provider, then the first events one by one."""
    since = format_moment(to_datetime(int(str(payload.get("since", 0)))))
    until = format_moment(to_datetime(int(str(payload.get("until", 0)))))
    paid, refunded = _figure(payload.get("paid")), _figure(payload.get("refunded"))
    lines = [
        html.bold(_("📋 Payments digest: {since} – {until} (Tashkent time)")).format(
            since=since, until=until
        ),
        _("💰 Received: {count} · {amount}").format(count=paid[0], amount=format_som(paid[1])),
    ]
    titles = [
        (tariff_name(code), figure) for code, figure in sorted(_split(payload, "by_tariff").items())
    ]
    titles += [
        (html.quote(PROVIDER_TITLES.get(name, name)), figure)
        for name, figure in sorted(_split(payload, "by_provider").items())
    ]
    lines += [f"• {title}: {count} · {format_som(amount)}" for title, (count, amount) in titles]
    lines.append(
        _("↩️ Refunded: {count} · {amount}").format(
            count=refunded[0], amount=format_som(refunded[1])
        )
    )
    tests = int(str(payload.get("tests", 0)))
    if tests:
        lines.append(
            "🧪 "
            + ngettext(
                "{count} test payment, not counted", "{count} test payments, not counted", tests
            ).format(count=tests)
        )
    events = payload.get("events")
    if isinstance(events, list) and events:
        lines.append("")
    for moment, payment_id, event, amount, tariff, provider, name, buyer_id in (
        events if isinstance(events, list) else []
    ):
        when = to_datetime(int(moment)).astimezone(TASHKENT).strftime("%d.%m %H:%M")
        who = buyer({"buyer_id": buyer_id, "buyer_name": name})
        title = html.quote(PROVIDER_TITLES.get(str(provider), str(provider)))
        lines.append(
            f"{when} {'💰' if event == 'paid' else '↩️'} {format_som(int(amount))} · "
            f"{tariff_name(str(tariff))} · {title} · {who} #{payment_id}"
        )
    more = int(str(payload.get("more", 0)))
    if more:
        lines.append(ngettext("…and {count} more", "…and {count} more", more).format(count=more))
    if not paid[0] and not refunded[0]:
        lines.append(_("No payments or refunds in this time."))
    return "\n".join(lines)
