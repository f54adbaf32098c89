"""Payme's settings section: `PAYME_*` variables (docs/providers/payme.md §7)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from web.env import EnvReader, SettingsError, all_or_none


@dataclass(frozen=True)
class PaymeSettings:
    merchant_id: str
    key: str = field(repr=False)
    test_key: str | None = field(default=None, repr=False)
    checkout_url: str = "https://checkout.paycom.uz"
    account_field: str = "order_id"


def load(reader: EnvReader) -> PaymeSettings | None:
    """Payme's section, or None when neither credential is set (Payme is off)."""
    values = {"PAYME_MERCHANT_ID": reader.optional("PAYME_MERCHANT_ID")}
    values["PAYME_KEY"] = reader.secret("PAYME_KEY")
    if not all_or_none(values):
        if reader.optional("PAYME_TEST_KEY"):
            raise SettingsError("PAYME_TEST_KEY: set, but PAYME_MERCHANT_ID and PAYME_KEY are not")
        return None
    merchant_id = values["PAYME_MERCHANT_ID"] or ""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", merchant_id):
        raise SettingsError("PAYME_MERCHANT_ID: 1-64 characters of A-Z, a-z, 0-9, _ . -")
    account_field = reader.optional("PAYME_ACCOUNT_FIELD") or "order_id"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", account_field):
        raise SettingsError("PAYME_ACCOUNT_FIELD: must match [a-z][a-z0-9_]{0,31}")
    return PaymeSettings(
        merchant_id=merchant_id,
        key=values["PAYME_KEY"] or "",
        test_key=reader.secret("PAYME_TEST_KEY"),
        checkout_url=reader.https_url("PAYME_CHECKOUT_URL") or "https://checkout.paycom.uz",
        account_field=account_field,
    )
