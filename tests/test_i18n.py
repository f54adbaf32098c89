"""Every text the code can show exists, non-fuzzy and with the same placeholders, in uz/ru/en.

The msgids are extracted from the source itself, so a new `_()` without translations
fails here, not silently in front of a user (gettext falls back to the English source).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, create_i18n

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("uz", "ru", "en")


def source_msgids() -> set[str]:
    found: set[str] = set()
    for package in ("bot", "web"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords={"_": None, "__": None}
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w*)\}", text))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated(language: str) -> None:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    translated = {m.id: m for m in catalog if m.id and m.string and not m.fuzzy}
    msgids = source_msgids()
    assert len(msgids) > 20
    missing = sorted(msgids - translated.keys())
    assert not missing, f"{language}: untranslated: {missing}"
    for msgid in msgids:
        assert placeholders(translated[msgid].string) == placeholders(msgid), (language, msgid)


def test_catalogues_load_and_differ() -> None:
    i18n = create_i18n("uz")
    assert set(i18n.available_locales) == set(LANGUAGES)
    assert i18n.gettext("{amount} so'm", locale="ru") == "{amount} сум"
    assert i18n.gettext("Tariffs:", locale="uz") == "Tariflar:"
