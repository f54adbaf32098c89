"""Payment methods as the bot sees them: provider-neutral, so `bot/` imports no provider.

Each provider folder under `web/providers/` supplies its `PayLink` (how its checkout
link is built); the app turns the enabled providers into `PaymentMethod`s and hands them
to the dispatcher as workflow data. The bot shows one pay button per method and the
admin console names payments by `title`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from db.orders import Order


class PayLink(Protocol):
    """Builds the checkout link that opens a provider's real pay page for one order.

    The link carries no secret: only a provider callback proves a payment.
    """

    def url(self, order: Order, language: str, bot_username: str | None) -> str: ...


@dataclass(frozen=True)
class PaymentMethod:
    """One enabled provider: `name` as `payments.provider` stores it, `title` as buyers
    know it. `manual_reversal`: refunds happen in the provider's cabinet and an admin
    records them here (Click); otherwise the provider calls us to refund (Payme)."""

    name: str
    title: str
    link: PayLink
    manual_reversal: bool = False
