"""Payme's checkout link (docs/providers/payme.md §6): base64 parameters after the host."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from db.orders import Order


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
