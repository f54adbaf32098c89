"""The tariff catalogue: every fact about a tariff in one place.

The shipped codes, names, defaults and ranks are `CATALOGUE` here (the ledger ranks by
it); what a merchant writes once (title, what a tariff gives in uz/ru/en, price, days,
rank, fiscal codes) lives in `tariffs.toml` (`TARIFFS_FILE`), read by `parse_catalogue`
at start, and `TARIFF_<CODE>_*` settings override its price, days and fiscal codes. An
order records price and days when it is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


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
CATALOGUE_LANGUAGES = ("uz", "ru", "en")
# What a title and the feature lines may be, in tariffs.toml and in /shop alike.
TITLE_LONGEST = 32
FEATURE_LONGEST = 120
FEATURE_LINES = 8


@dataclass(frozen=True)
class Fiscal:
    """Payme fiscal receipt codes of one tariff (IKPU, package code, VAT)."""

    ikpu: str
    package_code: str
    vat_percent: int


@dataclass(frozen=True)
class Tariff:
    """One sellable tariff as configured; `price` is integer tiyin so no float ever
    touches money. `features`: what the tariff gives, a few short lines per language,
    written by the merchant (shown in /tariffs and on the checkout message)."""

    code: str
    price: int
    days: int
    rank: int = 0
    fiscal: Fiscal | None = None
    title: str = ""
    features: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def gives(self, language: str) -> tuple[str, ...]:
        """The feature lines in `language`, else in English, else none."""
        return self.features.get(language) or self.features.get("en") or ()


@dataclass(frozen=True)
class CatalogueItem:
    """One tariff as `tariffs.toml` writes it (price in whole so'm)."""

    code: str
    title: str
    price_som: int
    days: int
    rank: int
    fiscal: Fiscal | None
    features: Mapping[str, tuple[str, ...]]


def tariff_name(code: str) -> str:
    """The name buyers see: a brand, the same in every language."""
    entry = CATALOGUE_BY_CODE.get(code)
    return entry.name if entry else code


def parse_catalogue(data: Mapping[str, Any]) -> list[CatalogueItem]:
    """`tariffs.toml` as read by tomllib -> items, or ValueError naming the bad key.

    Only the shipped codes are accepted: the ledger ranks tariffs by `CATALOGUE`, and a
    rank written here must agree with it, so the file cannot reorder paid time."""
    tariffs = data.get("tariffs")
    if not isinstance(tariffs, dict) or not tariffs:
        raise ValueError("needs a [tariffs.<CODE>] table per tariff")
    items = []
    for code, raw in tariffs.items():
        where = f"tariffs.{code}"
        entry = CATALOGUE_BY_CODE.get(code)
        if entry is None:
            raise ValueError(f"{where}: unknown tariff (known: {', '.join(TARIFF_CODES)})")
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: must be a table")
        rank = _whole(raw, "rank", where, 1, 100)
        if rank != entry.rank:
            raise ValueError(f"{where}.rank: must be {entry.rank} (the ledger's order)")
        items.append(
            CatalogueItem(
                code=code,
                title=_text(raw.get("title", entry.name), f"{where}.title", TITLE_LONGEST),
                price_som=_whole(raw, "price_som", where, 1, 100_000_000),
                days=_whole(raw, "days", where, 1, 3650),
                rank=rank,
                fiscal=_fiscal(raw.get("fiscal"), f"{where}.fiscal"),
                features=_features(raw.get("features", {}), f"{where}.features"),
            )
        )
    return items


def _whole(raw: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}.{key}: must be a whole number from {low} to {high}")
    return value


def _text(value: object, where: str, longest: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > longest:
        raise ValueError(f"{where}: must be text of 1-{longest} characters")
    return value.strip()


def _features(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a table of languages")
    features = {}
    for language, lines in raw.items():
        if language not in CATALOGUE_LANGUAGES:
            raise ValueError(f"{where}.{language}: languages are {', '.join(CATALOGUE_LANGUAGES)}")
        if not isinstance(lines, list) or len(lines) > FEATURE_LINES:
            raise ValueError(f"{where}.{language}: must be a list of up to {FEATURE_LINES} lines")
        features[language] = tuple(
            _text(line, f"{where}.{language}", FEATURE_LONGEST) for line in lines
        )
    return features


def _fiscal(raw: object, where: str) -> Fiscal | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a table with ikpu, package_code, vat_percent")
    ikpu, package_code = raw.get("ikpu"), raw.get("package_code")
    if not isinstance(ikpu, str) or not re.fullmatch(r"[0-9]{17}", ikpu):
        raise ValueError(f"{where}.ikpu: must be exactly 17 digits, as text")
    if not isinstance(package_code, str) or not re.fullmatch(r"[0-9]{1,20}", package_code):
        raise ValueError(f"{where}.package_code: must be 1-20 digits, as text")
    return Fiscal(ikpu, package_code, _whole(raw, "vat_percent", where, 0, 100))


@dataclass(frozen=True)
class TariffOverride:
    """What admins changed of one tariff with /shop (db/shop.py): None or a missing
    language keeps the file's value. Prices are tiyin, like `Tariff.price`."""

    code: str
    price: int | None = None
    days: int | None = None
    hidden: bool = False
    titles: Mapping[str, str] = field(default_factory=dict)
    features: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def with_overrides(
    catalogue: Mapping[str, Tariff], overrides: Mapping[str, TariffOverride], language: str
) -> dict[str, Tariff]:
    """The file's catalogue as admins changed it, hidden tariffs included, in the file's
    order. `Tariff.title` is one string, so the title is picked for `language` here (the
    reader's language is known per update); feature lines stay per language."""
    merged = {}
    for code, tariff in catalogue.items():
        change = overrides.get(code)
        if change is None:
            merged[code] = tariff
            continue
        merged[code] = replace(
            tariff,
            price=tariff.price if change.price is None else change.price,
            days=tariff.days if change.days is None else change.days,
            title=change.titles.get(language) or tariff.title,
            features={**tariff.features, **change.features},
        )
    return merged


def offered(
    catalogue: Mapping[str, Tariff], overrides: Mapping[str, TariffOverride], language: str
) -> dict[str, Tariff]:
    """What buyers are offered now: `with_overrides` without the hidden tariffs, so an
    old Buy button of a hidden one finds nothing and says it is out of date."""
    return {
        code: tariff
        for code, tariff in with_overrides(catalogue, overrides, language).items()
        if not (code in overrides and overrides[code].hidden)
    }
