"""Checkout links that open Click's and Payme's real pay pages for one order.

Formats are the references' (click-shop-api.md §9, payme-merchant-api.md §6). The links
carry no secret: only a provider callback proves a payment.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import urlencode

from db.orders import Order


@dataclass(frozen=True)
class ClickLink:
    service_id: str
    merchant_id: str
    return_url: str | None = None

    def url(self, order: Order) -> str:
        params = {
            "service_id": self.service_id,
            "merchant_id": self.merchant_id,
            "amount": f"{order.amount // 100}.{order.amount % 100:02d}",
            "transaction_param": order.merchant_trans_id,
        }
        if self.return_url:
            params["return_url"] = self.return_url
        return "https://my.click.uz/services/pay?" + urlencode(params)


@dataclass(frozen=True)
class PaymeLink:
    merchant_id: str
    checkout_url: str = "https://checkout.paycom.uz"
    account_field: str = "order_id"

    def url(self, order: Order, language: str, bot_username: str | None) -> str:
        parts = [
            f"m={self.merchant_id}",
            f"ac.{self.account_field}={order.merchant_trans_id}",
            f"a={order.amount}",
            f"l={language}",
        ]
        if bot_username:
            parts.append(f"c=https://t.me/{bot_username}")
        encoded = base64.b64encode(";".join(parts).encode()).decode()
        return f"{self.checkout_url.rstrip('/')}/{encoded}"


@dataclass(frozen=True)
class PayLinks:
    """The enabled providers' link builders; a disabled provider is `None` (no button)."""

    click: ClickLink | None = None
    payme: PaymeLink | None = None
