"""Click's settings section: `CLICK_*` variables (docs/providers/click.md §10)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from web.env import EnvReader, SettingsError

CREDENTIALS = ("CLICK_SERVICE_ID", "CLICK_MERCHANT_ID", "CLICK_SECRET_KEY")


@dataclass(frozen=True)
class ClickSettings:
    service_id: str
    merchant_id: str
    secret_key: str = field(repr=False)
    merchant_user_id: str | None = None
    return_url: str | None = None


def load(reader: EnvReader) -> ClickSettings | None:
    """Click's section, or None when none of its credentials are set (Click is off)."""
    values = reader.group(*CREDENTIALS)
    if values is None:
        return None
    for name in ("CLICK_SERVICE_ID", "CLICK_MERCHANT_ID", "CLICK_MERCHANT_USER_ID"):
        value = reader.optional(name)
        if value is not None and not re.fullmatch(r"[0-9]{1,19}", value):
            raise SettingsError(f"{name}: must be digits only")
    return ClickSettings(
        service_id=values["CLICK_SERVICE_ID"] or "",
        merchant_id=values["CLICK_MERCHANT_ID"] or "",
        secret_key=values["CLICK_SECRET_KEY"] or "",
        merchant_user_id=reader.optional("CLICK_MERCHANT_USER_ID"),
        return_url=reader.https_url("CLICK_RETURN_URL"),
    )
