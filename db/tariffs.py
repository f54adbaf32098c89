"""The tariff catalogue: every fact about a tariff in one place.

A new tariff is one `CatalogueEntry` here (its code, the name buyers see, its default
price and days, and its rank); configuration may then change its price, days and fiscal
codes (`TARIFF_<CODE>_*`), and an order records them when it is made.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogueEntry:
    """A tariff as shipped: `rank` orders tariffs (a higher rank runs first when a user
    has both); prices are whole so'm here because that is how a merchant writes them."""

    code: str
    name: str
    default_price_som: int
    default_days: int
    rank: int


CATALOGUE = (
    CatalogueEntry(code="PLUS", name="PLUS", default_price_som=15_000, default_days=30, rank=1),
    CatalogueEntry(code="PRO", name="PRO", default_price_som=39_000, default_days=30, rank=2),
)
CATALOGUE_BY_CODE = {entry.code: entry for entry in CATALOGUE}
TARIFF_CODES = tuple(CATALOGUE_BY_CODE)


@dataclass(frozen=True)
class Fiscal:
    """Payme fiscal receipt codes of one tariff (IKPU, package code, VAT)."""

    ikpu: str
    package_code: str
    vat_percent: int


@dataclass(frozen=True)
class Tariff:
    """One sellable tariff as configured; `price` is integer tiyin so no float ever
    touches money."""

    code: str
    price: int
    days: int
    rank: int = 0
    fiscal: Fiscal | None = None


def tariff_name(code: str) -> str:
    """The name buyers see: a brand, the same in every language."""
    entry = CATALOGUE_BY_CODE.get(code)
    return entry.name if entry else code
