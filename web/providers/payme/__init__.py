"""Payme (Merchant API): settings, wire protocol, methods, decision tables, route and link.

The rules are in docs/providers/payme.md; the section numbers the code cites are its
headings.
"""

from __future__ import annotations

from web.providers.base import Provider
from web.providers.payme import decisions, settings
from web.providers.payme.link import PaymeLink
from web.providers.payme.routes import PaymeRoutes
from web.providers.payme.settings import PaymeSettings


def _warnings(section: PaymeSettings) -> list[str]:
    if section.test_key:
        return [
            "PAYME_TEST_KEY is set: sandbox requests are accepted; unset it after certification"
        ]
    return []


PROVIDER = Provider(
    name=decisions.NAME,
    title="Payme",
    load_settings=settings.load,
    routes=PaymeRoutes,
    link=lambda section: PaymeLink(
        section.merchant_id, section.checkout_url, section.account_field
    ),
    start_warnings=_warnings,
)
