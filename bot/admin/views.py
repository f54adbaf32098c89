"""How the admin console writes payments, details and statistics for a person."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from aiogram import html
from aiogram.utils.i18n import gettext as _

from bot.texts import format_moment, format_som
from db.admin_queries import PaymentLine, Revenue
from db.clock import to_datetime
from db.states import PaymentState
from db.tariffs import tariff_name


def state_name(state: str) -> str:
    names: dict[str, str] = {
        PaymentState.PAID: _("paid"),
        PaymentState.PENDING: _("pending"),
        PaymentState.CANCELLED: _("cancelled"),
        PaymentState.REFUNDED: _("refunded"),
    }
    return names.get(state, state)


def who(line: PaymentLine) -> str:
    handle = f" @{line.username}" if line.username else ""
    return f"{html.quote(line.first_name)}{handle} ({line.user_id})"


def payment_row(number: int, line: PaymentLine, titles: Mapping[str, str]) -> str:
    return " · ".join(
        (
            f"{number}. {format_moment(to_datetime(line.create_time))}",
            who(line),
            tariff_name(line.tariff),
            format_som(line.amount),
            titles.get(line.provider, line.provider),
            state_name(line.state),
        )
    )


def payments_page(lines: Sequence[PaymentLine], offset: int, titles: Mapping[str, str]) -> str:
    paid = sum(line.amount for line in lines if line.state == PaymentState.PAID)
    header = _("Payments {first}–{last}: {total} in all, {paid} paid").format(
        first=offset + 1,
        last=offset + len(lines),
        total=format_som(sum(line.amount for line in lines)),
        paid=format_som(paid),
    )
    rows = [payment_row(offset + index + 1, line, titles) for index, line in enumerate(lines)]
    return "\n".join([header, "", *rows])


def nothing_found() -> str:
    return _(
        "No payments found. Search by user id, @username, order id or its start, "
        "Click or Payme id, state (paid, pending, cancelled, refunded), provider "
        "(click, payme), tariff (plus, pro), or dates: /payments 2026-11-01..2026-11-23"
    )


def moment_or_dash(ms: int | None) -> str:
    return format_moment(to_datetime(ms)) if ms else "—"


def payment_details(line: PaymentLine, now: datetime, titles: Mapping[str, str]) -> str:
    provider_id = _("{provider} id").format(provider=titles.get(line.provider, line.provider))
    plan = _("none")
    if line.user_tariff and line.user_tariff_expires_at:
        state = _("active") if line.user_tariff_expires_at > now else _("expired")
        plan = f"{tariff_name(line.user_tariff)}, {format_moment(line.user_tariff_expires_at)}"
        plan += f" ({state})"
    parts = [
        _("Payment #{id}").format(id=line.id) + (" [TEST]" if line.test else ""),
        f"{titles.get(line.provider, line.provider)} · {state_name(line.state)}",
        f"{provider_id}: {html.code(html.quote(line.provider_id))}",
    ]
    if line.click_paydoc_id is not None:
        parts.append(f"click_paydoc_id: <code>{line.click_paydoc_id}</code>")
    parts += [
        _("Amount: {amount}").format(amount=format_som(line.amount)),
        _("Order: {order} ({status}), {tariff}").format(
            order=html.code(html.quote(line.merchant_trans_id)),
            status=state_name(line.order_status),
            tariff=tariff_name(line.tariff),
        ),
        _("User: {user}").format(user=who(line)),
        _("Created: {moment}").format(moment=moment_or_dash(line.create_time)),
        _("Paid: {moment}").format(moment=moment_or_dash(line.perform_time)),
        _("Cancelled: {moment}").format(moment=moment_or_dash(line.cancel_time)),
    ]
    reason = line.cancel_note or (str(line.cancel_reason) if line.cancel_reason else None)
    if reason:
        parts.append(_("Cancel reason: {reason}").format(reason=html.quote(reason)))
    if line.granted_days:
        parts.append(_("Days granted: {days}").format(days=line.granted_days))
    parts.append(_("User's plan now: {plan}").format(plan=plan))
    return "\n".join(parts)


def revenue_block(title: str, revenue: Revenue, titles: Mapping[str, str]) -> str:
    split = [
        f"{titles.get(name, name)} {format_som(amount)}"
        for name, amount in sorted(revenue.by_provider.items())
    ] + [
        f"{tariff_name(name)} {format_som(amount)}"
        for name, amount in sorted(revenue.by_tariff.items())
    ]
    details = f" ({', '.join(split)})" if split else ""
    return f"{title}: {format_som(revenue.total)}{details}"


def stats_text(
    windows: Sequence[tuple[str, Revenue]],
    paying: int,
    active: Mapping[str, int],
    titles: Mapping[str, str],
) -> str:
    lines = [_("Revenue")]
    lines += [revenue_block(title, revenue, titles) for title, revenue in windows]
    lines.append(_("Paying users in 30 days: {count}").format(count=paying))
    subscribers = ", ".join(
        f"{tariff_name(code)} {count}" for code, count in sorted(active.items())
    )
    lines.append(_("Active subscribers: {list}").format(list=subscribers or "0"))
    return "\n".join(lines)
