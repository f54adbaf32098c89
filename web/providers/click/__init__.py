"""Click (SHOP-API): settings, wire protocol, decision tables, routes and pay link.

The rules are in docs/providers/click.md; the section numbers the code cites are its
headings.
"""

from __future__ import annotations

from web.providers.base import Provider
from web.providers.click import decisions, settings
from web.providers.click.link import ClickLink
from web.providers.click.routes import ClickRoutes

PROVIDER = Provider(
    name=decisions.NAME,
    title="Click",
    load_settings=settings.load,
    routes=ClickRoutes,
    link=lambda section: ClickLink(section.service_id, section.merchant_id, section.return_url),
    manual_reversal=True,  # Click refunds in its cabinet; an admin records it (docs/admin.md)
)
