"""The compiled catalogues load and pick the right text and plural form per language.

The static checks of the `.po` files (complete, not fuzzy, placeholders, apostrophes)
are in tests/test_catalogues.py.
"""

from __future__ import annotations

import pytest

from bot.i18n import create_i18n
from bot.texts import tariff_line
from db.tariffs import Tariff

LANGUAGES = ("uz", "ru", "en")


def test_catalogues_load_and_differ() -> None:
    i18n = create_i18n("uz")
    assert set(i18n.available_locales) == set(LANGUAGES)
    assert i18n.gettext("{amount} so'm", locale="ru") == "{amount}\u00a0сум"
    assert i18n.gettext("{amount} so'm", locale="uz") == "{amount}\u00a0soʻm"
    assert i18n.gettext("Tariffs:", locale="uz") == "Tariflar:"


@pytest.mark.parametrize(
    ("language", "days", "expected"),
    [
        ("ru", 1, "PLUS: 15 000 сум за 1 день"),
        ("ru", 3, "PLUS: 15 000 сум за 3 дня"),
        ("ru", 11, "PLUS: 15 000 сум за 11 дней"),
        ("ru", 21, "PLUS: 15 000 сум за 21 день"),
        ("ru", 30, "PLUS: 15 000 сум за 30 дней"),
        ("en", 1, "PLUS: 15 000 so'm for 1 day"),
        ("en", 30, "PLUS: 15 000 so'm for 30 days"),
        ("uz", 1, "PLUS: 15 000 soʻm, 1 kun"),
        ("uz", 30, "PLUS: 15 000 soʻm, 30 kun"),
    ],
)
def test_day_counts_take_the_languages_plural_form(language: str, days: int, expected: str) -> None:
    """The compiled `.mo` keeps each header's Plural-Forms (a fuzzy header would lose it)."""
    i18n = create_i18n("uz")
    tariff = Tariff(code="PLUS", price=1_500_000, days=days)
    with i18n.context(), i18n.use_locale(language):
        assert tariff_line(tariff) == expected
