"""Tariffs as the money path sees them: a code, an exact price and a period."""

from __future__ import annotations

from dataclasses import dataclass

TARIFF_CODES = ("PLUS", "PRO")


@dataclass(frozen=True)
class Fiscal:
    """Payme fiscal receipt codes of one tariff (IKPU, package code, VAT)."""

    ikpu: str
    package_code: str
    vat_percent: int


@dataclass(frozen=True)
class Tariff:
    """One sellable tariff; `price` is integer tiyin so no float ever touches money."""

    code: str
    price: int
    days: int
    fiscal: Fiscal | None = None
