"""How the admin console writes payments, cards and statistics for a person.

Every value that came from a buyer or an admin (names, usernames, queries, provider
notes) goes through `html.quote`: Telegram refuses a whole HTML message over one stray
`<` or `&`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from aiogram import html
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.texts import format_moment, format_som
from db.admin_queries import Figure, PaymentLine, PeriodFigures, Totals
from db.clock import to_datetime
from db.states import PaymentState
from db.tariffs import TARIFF_CODES, tariff_name

QUERY_MARK = "🔎 "


def state_name(state: str) -> str:
    names: dict[str, str] = {
        PaymentState.PAID: _("paid"),
        PaymentState.PENDING: _("pending"),
        PaymentState.CANCELLED: _("cancelled"),
        PaymentState.REFUNDED: _("refunded"),
    }
    return names.get(state, state)


def payme_reason(code: int) -> str:
    """Payme's CancelTransaction reasons by name (Payme reference §3)."""
    names: dict[int, str] = {
        1: _("receiver not found or inactive"),
        2: _("debit error at the processing centre"),
        3: _("transaction execution error"),
        4: _("timed out"),
        5: _("refund"),
        10: _("unknown error"),
    }
    return f"{names.get(code, _('unknown error'))} ({code})"


def test_mark(line: PaymentLine) -> str:
    return " 🧪 " + _("TEST") if line.test else ""


def who(line: PaymentLine) -> str:
    handle = f" @{html.quote(line.username)}" if line.username else ""
    return f"{html.quote(line.first_name)}{handle} ({line.user_id})"


def buyer_link(line: PaymentLine) -> str:
    """The name links to the buyer's chat; Telegram opens it for the admin."""
    name = html.link(
        html.quote(line.first_name or str(line.user_id)), f"tg://user?id={line.user_id}"
    )
    handle = f" @{html.quote(line.username)}" if line.username else ""
    return f"{name}{handle} ({line.user_id})"


def payment_row(number: int, line: PaymentLine, titles: Mapping[str, str]) -> str:
    return " · ".join(
        (
            f"{number}. {format_moment(to_datetime(line.create_time))}",
            who(line),
            tariff_name(line.tariff),
            format_som(line.amount),
            titles.get(line.provider, line.provider),
            state_name(line.state) + test_mark(line),
        )
    )


def query_of(message: Message) -> str:
    """The search a page or card was made for: its first line, as Telegram returns it."""
    first = (message.text or "").split("\n", 1)[0]
    return first[len(QUERY_MARK) :] if first.startswith(QUERY_MARK) else ""


def query_line(query: str) -> list[str]:
    return [QUERY_MARK + html.quote(query)] if query else []


def totals_header(totals: Totals, test_only: bool) -> str:
    text = _("Found: {count} · paid {paid} · refunded {refunded}").format(
        count=totals.count, paid=format_som(totals.paid), refunded=format_som(totals.refunded)
    )
    if test_only:
        text += "\n" + _("Test payments only.")
    elif totals.test_count:
        text += "\n" + _("Test payments not counted: {count}").format(count=totals.test_count)
    return text


def payments_page(
    query: str,
    totals: Totals,
    test_only: bool,
    lines: Sequence[PaymentLine],
    titles: Mapping[str, str],
) -> str:
    rows = [payment_row(index + 1, line, titles) for index, line in enumerate(lines)]
    return "\n".join([*query_line(query), totals_header(totals, test_only), "", *rows])


def nothing_found(query: str) -> str:
    return "\n".join(
        [
            *query_line(query),
            _(
                "No payments found. Search by user id, @username, a part of the name, order "
                "id or its start, Click or Payme id, amount (15000 or 15 000), state (paid, "
                "pending, cancelled, refunded), provider (click, payme), tariff (plus, pro), "
                "today, yesterday, week, month, test, double, or dates: "
                "/payments 2026-11-01..2026-11-23"
            ),
        ]
    )


def cannot_read(query: str, word: str) -> str:
    return "\n".join([*query_line(query), _("Cannot read “{word}”.").format(word=html.quote(word))])


def moment_or_dash(ms: int | None) -> str:
    return format_moment(to_datetime(ms)) if ms else "—"


def cancel_reason(line: PaymentLine) -> str | None:
    if line.cancel_note:
        return html.quote(line.cancel_note)
    if line.cancel_reason is not None and line.provider == "payme":
        return payme_reason(line.cancel_reason)
    return None if line.cancel_reason is None else str(line.cancel_reason)


def provider_ids(line: PaymentLine, titles: Mapping[str, str]) -> list[str]:
    title = titles.get(line.provider, line.provider)
    if line.provider == "click":
        parts = [_("Click transaction (click_trans_id): {id}")]
    else:
        parts = [_("{provider} transaction: {id}")]
    text = [parts[0].format(provider=title, id=html.code(html.quote(line.provider_id)))]
    if line.click_paydoc_id is not None:
        text.append(
            _("Click document (click_paydoc_id): {id}").format(
                id=html.code(str(line.click_paydoc_id))
            )
        )
    return text


def payment_card(
    query: str,
    line: PaymentLine,
    others: Sequence[PaymentLine],
    other_count: int,
    now: datetime,
    titles: Mapping[str, str],
) -> str:
    plan = _("none")
    if line.user_tariff and line.user_tariff_expires_at:
        state = _("active") if line.user_tariff_expires_at > now else _("expired")
        plan = f"{tariff_name(line.user_tariff)}, {format_moment(line.user_tariff_expires_at)}"
        plan += f" ({state})"
    parts = [
        *query_line(query),
        html.bold(_("Payment #{id}").format(id=line.id)) + test_mark(line),
        f"{titles.get(line.provider, line.provider)} · {state_name(line.state)}",
        *provider_ids(line, titles),
        _("Amount: {amount}").format(amount=format_som(line.amount)),
        _("Order: {order} ({status}), {tariff}").format(
            order=html.code(html.quote(line.merchant_trans_id)),
            status=state_name(line.order_status),
            tariff=tariff_name(line.tariff),
        ),
        _("Buyer: {user}").format(user=buyer_link(line)),
        _("Created: {moment}").format(moment=moment_or_dash(line.create_time)),
        _("Paid: {moment}").format(moment=moment_or_dash(line.perform_time)),
        _("Cancelled: {moment}").format(moment=moment_or_dash(line.cancel_time)),
    ]
    reason = cancel_reason(line)
    if reason:
        parts.append(_("Cancel reason: {reason}").format(reason=reason))
    if line.granted_days:
        parts.append(_("Days granted: {days}").format(days=line.granted_days))
    parts.append(_("Buyer's plan now: {plan}").format(plan=plan))
    parts.append("")
    parts.append(_("Buyer's other payments: {count}").format(count=other_count))
    parts += [
        "• "
        + " · ".join(
            (
                f"#{other.id} {format_moment(to_datetime(other.create_time))}",
                tariff_name(other.tariff),
                format_som(other.amount),
                titles.get(other.provider, other.provider),
                state_name(other.state) + test_mark(other),
            )
        )
        for other in others
    ]
    return "\n".join(parts)


def reversal_question(query: str, line: PaymentLine) -> str:
    return "\n".join(
        [
            *query_line(query),
            _(
                "Record a Click reversal of payment #{id} ({amount})?\n\n"
                "This does not return any money: it only records here a reversal you have "
                "already made in Click's merchant cabinet. The buyer's days from this payment "
                "are taken back and the buyer is told."
            ).format(id=line.id, amount=format_som(line.amount)),
        ]
    )


def change(now: int, before: int, percent: bool) -> str:
    """Against the previous period: `▲ 12%`, `▼ 3`, `±0`, `new`; never `-0`."""
    if now == before:
        return "±0"
    if percent and before == 0:
        return _("new")
    arrow = "▲" if now > before else "▼"
    if not percent:
        return f"{arrow} {abs(now - before)}"
    share = abs(now - before) * 100 / before
    return f"{arrow} {share:.0f}%" if share >= 1 else f"{arrow} <1%"


def figures(now: Figure, before: Figure) -> str:
    """`4 (▲ 3) · 60 000 so'm (▲ 460%)`: a count changes by so many, a sum by a share."""
    count = change(now.count, before.count, False)
    amount = change(now.amount, before.amount, True)
    return f"{now.count} ({count}) · {format_som(now.amount)} ({amount})"


def stats_text(
    days: int,
    period: str,
    previous: str,
    now: PeriodFigures,
    before: PeriodFigures,
    active: tuple[Mapping[str, int], Mapping[str, int]],
    titles: Mapping[str, str],
) -> str:
    """One fact per line, short enough for a phone; each against the previous period
    (`previous` names it), the active subscribers against as many days ago."""
    active_now, active_before = active
    lines = [
        html.bold(period),
        previous,
        _("Paid: {figures}").format(figures=figures(now.kept, before.kept)),
        _("Refunds: {figures}").format(figures=figures(now.refunds, before.refunds)),
        _("Pending orders: {count} ({change})").format(
            count=now.pending_orders,
            change=change(now.pending_orders, before.pending_orders, False),
        ),
        "",
        html.bold(_("By provider")),
    ]
    for name in sorted(set(now.by_provider) | set(before.by_provider) | set(titles)):
        lines.append(
            html.quote(titles.get(name, name))
            + ": "
            + figures(now.by_provider.get(name, Figure()), before.by_provider.get(name, Figure()))
        )
    lines += ["", html.bold(_("By tariff"))]
    for code in sorted(set(now.by_tariff) | set(before.by_tariff) | set(TARIFF_CODES)):
        lines.append(
            tariff_name(code)
            + ": "
            + figures(now.by_tariff.get(code, Figure()), before.by_tariff.get(code, Figure()))
        )
    active_title = ngettext(
        "Active subscribers now (change in {days} day)",
        "Active subscribers now (change in {days} days)",
        days,
    ).format(days=days)
    lines += ["", html.bold(active_title)]
    for code in sorted(set(active_now) | set(active_before) | set(TARIFF_CODES)):
        count, earlier = active_now.get(code, 0), active_before.get(code, 0)
        lines.append(f"{tariff_name(code)}: {count} ({change(count, earlier, False)})")
    lines += ["", _("Test payments are not counted.")]
    return "\n".join(lines)
