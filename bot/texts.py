"""How money, dates and tariffs are written for people, in their language."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiogram import html
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from db.clock import TASHKENT, to_datetime
from db.tariffs import Tariff, tariff_name

LANGUAGE_NAMES = {"uz": "Oʻzbekcha", "ru": "Русский", "en": "English"}
# What receipts call each provider (`payments.provider` -> the name buyers know).
PROVIDER_TITLES = {"click": "Click", "payme": "Payme"}


def provider_title(name: str) -> str:
    return PROVIDER_TITLES.get(name, name.capitalize())


def format_som(tiyin: int) -> str:
    """`1500000` -> `15 000 so'm` (`сум` in Russian), every space a no-break space
    (U+00A0): Telegram must never wrap `15` from `000` or the amount from its currency."""
    whole = f"{tiyin // 100:,}".replace(",", "\u00a0")
    amount = whole if tiyin % 100 == 0 else f"{whole},{tiyin % 100:02d}"
    return _("{amount} so'm").format(amount=amount)


def format_moment(moment: datetime) -> str:
    """A UTC moment as Tashkent wall time, day first, as people there write dates."""
    return moment.astimezone(TASHKENT).strftime("%d.%m.%Y %H:%M")


def tariff_line(tariff: Tariff) -> str:
    return ngettext(
        "{name}: {price} for {days} day", "{name}: {price} for {days} days", tariff.days
    ).format(
        name=tariff.title or tariff_name(tariff.code),
        price=format_som(tariff.price),
        days=tariff.days,
    )


def tariff_card(tariff: Tariff, language: str) -> str:
    """The tariff's line and, under it, what it gives, as the merchant wrote it in
    tariffs.toml (quoted: the file's text is not HTML)."""
    lines = [tariff_line(tariff)]
    lines += [f"• {html.quote(line)}" for line in tariff.gives(language)]
    return "\n".join(lines)


def order_days_line(name: str, amount: int, days: int) -> str:
    """What one order buys: "PLUS: 15 000 so'm for 30 days" with the order's own figures."""
    return ngettext(
        "{name}: {price} for {days} day", "{name}: {price} for {days} days", days
    ).format(name=name, price=format_som(amount), days=days)


def receipt_title(tariff: Tariff) -> str:
    """The fiscal receipt line Payme prints for a tariff."""
    return ngettext(
        "Subscription {name} for {days} day", "Subscription {name} for {days} days", tariff.days
    ).format(name=tariff_name(tariff.code), days=tariff.days)


def timeline_text(segments: Sequence[tuple[str, int]]) -> str:
    """The plan ahead, as the ledger computed it: `(tariff, end ms)` stretches in the
    order they run -> "PRO until 12.01.2027 10:00, then PLUS until 22.01.2027 10:00"."""
    parts = [
        _("{name} until {expiry}").format(
            name=tariff_name(tariff), expiry=format_moment(to_datetime(end))
        )
        for tariff, end in segments
    ]
    return _(", then ").join(parts)


def receipt_text(
    *,
    code: str,
    name: str,
    amount: int,
    days: int,
    provider: str,
    paid_at: int | None,
    stretches: Sequence[tuple[str, int]],
    fiscal_url: str | None,
    test: bool,
) -> str:
    """The "payment received" message as a receipt a person can quote to support:
    order number, tariff, amount and days, provider and time, the plan ahead."""
    lines = [
        _("✅ Payment received. Thank you!"),
        "",
        _("Order: #{code}").format(code=code),
        order_days_line(name, amount, days),
        _("Paid with {provider}").format(provider=html.quote(provider))
        + (
            ", " + _("{moment} (Tashkent time)").format(moment=format_moment(to_datetime(paid_at)))
            if paid_at is not None
            else ""
        ),
    ]
    if stretches:
        lines.append(
            _("Your plan: {timeline} (Tashkent time).").format(timeline=timeline_text(stretches))
        )
    if fiscal_url:
        lines.append(_("Fiscal receipt: {url}").format(url=html.quote(fiscal_url)))
    if test:
        lines.append(_("🧪 Test payment (Payme sandbox): no real money was paid."))
    lines += ["", paysupport_line()]
    return "\n".join(lines)


def paysupport_line() -> str:
    """The last line of every message about a buyer's money (receipt, refund): where to
    turn, the order number above in hand."""
    return _("Questions about a payment: /paysupport")
