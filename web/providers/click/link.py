"""Click's checkout link (docs/providers/click.md §9): my.click.uz's pay page for one order."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from db.money import som_decimal
from db.orders import Order


@dataclass(frozen=True)
class ClickLink:
    service_id: str
    merchant_id: str
    return_url: str | None = None

    def url(self, order: Order, language: str, bot_username: str | None) -> str:
        params = {
            "service_id": self.service_id,
            "merchant_id": self.merchant_id,
            "amount": som_decimal(order.amount),
            "transaction_param": order.merchant_trans_id,
        }
        # After paying, Click's page sends the buyer back: to CLICK_RETURN_URL when set,
        # else to the bot's own chat, where the receipt arrives.
        return_url = self.return_url or (f"https://t.me/{bot_username}" if bot_username else None)
        if return_url:
            params["return_url"] = return_url
        return "https://my.click.uz/services/pay?" + urlencode(params)
