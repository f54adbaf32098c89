"""Money conversions, in one place: integer tiyin inside, so'm strings at the edges.

1 so'm = 100 tiyin. Every amount the product stores or compares is an integer number of
tiyin; these functions are the only places that cross to or from so'm, so no float and
no rounding ever touches money.
"""

from __future__ import annotations

TIYIN_PER_SOM = 100


def tiyin_from_som(som: int) -> int:
    """A whole-so'm configuration value (a tariff price) in tiyin."""
    return som * TIYIN_PER_SOM


def parse_som(amount: str) -> int | None:
    """A well-formed decimal so'm string ("15000", "15000.5", "15000.00") in exact tiyin,
    or None when it is not a whole number of tiyin.

    The caller has checked the format (`[0-9]+(\\.[0-9]+)?`). String arithmetic rather
    than `Decimal(amount) * 100`: the default decimal context rounds to 28 digits, which
    would turn a 32-character `15000.000…01` into a whole number of tiyin.
    """
    whole, _, fraction = amount.partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > 2:
        return None
    return int(whole) * TIYIN_PER_SOM + int(fraction.ljust(2, "0"))


def som_decimal(tiyin: int) -> str:
    """Tiyin as a so'm decimal with two places ("15000.00"): Click's link and exports."""
    whole, part = divmod(tiyin, TIYIN_PER_SOM)
    return f"{whole}.{part:02d}"


def som_parts(tiyin: int) -> tuple[int, int]:
    """(so'm, tiyin) for people-facing formats, which group the so'm themselves."""
    return divmod(tiyin, TIYIN_PER_SOM)
