"""The three catalogues are complete, exact and written in the official Uzbek Latin alphabet.

The msgids are extracted from the source itself (`_()` and `ngettext()` in bot/ and web/),
so a new text without translations fails here, not silently in front of a user (gettext
falls back to the English source), and an entry no source uses any more fails too. A
plural text must be a plural entry with every form its language's `Plural-Forms` asks
for, and every form keeps the msgid's placeholders.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR
from bot.texts import LANGUAGE_NAMES
from web.providers.payme.protocol import MESSAGES
from web.settings import SHIPPED_TARIFFS_FILE

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("uz", "ru", "en")
PLURAL_FORMS = {"uz": 2, "ru": 3, "en": 2}  # uz: CLDR's one/other; both forms read the same
KEYWORDS = {"_": None, "__": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
# An apostrophe-like character between two letters: in Uzbek that must be ʻ (U+02BB)
# after o/g, or ʼ (U+02BC) for the tutuq belgisi, never ASCII ' or ‘ ’ ` ´.
WRONG_APOSTROPHE = re.compile(r"(?<=\w)['‘’`´](?=\w)")
MISPLACED_TURNED_COMMA = re.compile(r"(?<![oOgG])ʻ")
# Payme Merchant API §4 (/work/shared/docs/payme-merchant-api.md, not amended by §0):
# Payme shows these error texts as the reference writes them, ASCII apostrophe
# included, so they stay as they are and are the only Uzbek texts exempt from the rule.
PAYME_PROTOCOL_UZ = {
    "So'rov usuli POST bo'lishi kerak",
    "JSON-RPC so'rovi noto'g'ri",
    "Noto'g'ri summa",
    "Buyurtma boshqa tranzaksiya orqali to'lanmoqda",
    "Amalni bajarib bo'lmaydi",
    "Buyurtma allaqachon to'langan",
}


@cache
def source_messages() -> dict[str, str | None]:
    """msgid -> msgid_plural (None for a singular text), from every `_()`/`ngettext()`."""
    found: dict[str, str | None] = {}
    for package in ("bot", "web"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            if isinstance(message, str):
                found.setdefault(message, None)
            else:
                found[message[0]] = message[1]
    return found


@cache
def catalog(language: str) -> Catalog:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source)


def forms(message: Message) -> list[str]:
    string = message.string
    return list(string) if isinstance(string, tuple | list) else [string]


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w*)\}", text))


def entries(language: str) -> list[Message]:
    return [message for message in catalog(language) if message.id]


def test_extraction_finds_singular_and_plural_texts() -> None:
    messages = source_messages()
    assert len(messages) > 20
    assert messages["{name}: {price} for {days} day"] == "{name}: {price} for {days} days"
    assert messages["Choose your language:"] is None


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_source_text_is_translated_and_not_fuzzy(language: str) -> None:
    translated = {
        message.id if isinstance(message.id, str) else message.id[0]: message
        for message in entries(language)
        if all(forms(message)) and not message.fuzzy
    }
    missing = sorted(set(source_messages()) - translated.keys())
    assert not missing, f"{language}: untranslated or fuzzy: {missing}"
    assert not catalog(language).fuzzy, f"{language}: the header is marked fuzzy"


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_entry_outlives_its_text(language: str) -> None:
    """An entry no source uses any more (a text reworded or removed) is dead weight a
    translator would still read and polish; remove it (or mark it obsolete, `#~`)."""
    ids = {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in entries(language)
    }
    unused = sorted(ids - source_messages().keys())
    assert not unused, f"{language}: no source uses {unused}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_plural_texts_have_every_form(language: str) -> None:
    expected = PLURAL_FORMS[language]
    assert catalog(language).num_plurals == expected, f"{language}: Plural-Forms header"
    plural_in_catalogue = {
        message.id[0]: message for message in entries(language) if message.pluralizable
    }
    for msgid, plural in source_messages().items():
        if plural is None:
            assert msgid not in plural_in_catalogue, f"{language}: {msgid!r} is not plural"
            continue
        message = plural_in_catalogue.get(msgid)
        assert message is not None, f"{language}: {msgid!r} needs a plural entry"
        assert message.id[1] == plural, (language, msgid)
        assert len(forms(message)) == expected and all(forms(message)), (language, msgid)


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_match_in_every_form(language: str) -> None:
    for message in entries(language):
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        wanted = set().union(*(placeholders(text) for text in ids))
        for form in forms(message):
            assert placeholders(form) == wanted, (language, message.id, form)


def test_uzbek_uses_the_official_apostrophes() -> None:
    texts = [form for message in entries("uz") for form in forms(message)]
    texts.append(LANGUAGE_NAMES["uz"])
    for text in texts:
        assert not WRONG_APOSTROPHE.search(text), f"ASCII/typographic apostrophe in {text!r}"
        assert not MISPLACED_TURNED_COMMA.search(text), f"ʻ not after o/g in {text!r}"
    joined = "\n".join(texts)
    assert "soʻm" in joined and "toʻlov" in joined and LANGUAGE_NAMES["uz"] == "Oʻzbekcha"


def test_the_shipped_tariff_lines_use_the_official_apostrophes() -> None:
    """tariffs.toml is a catalogue too: its Uzbek lines follow the same rule, and every
    tariff says what it gives in each language."""
    with SHIPPED_TARIFFS_FILE.open("rb") as source:
        shipped = tomllib.load(source)["tariffs"]
    for code, tariff in shipped.items():
        features = tariff["features"]
        assert sorted(features) == sorted(LANGUAGES), code
        for line in features["uz"]:
            assert not WRONG_APOSTROPHE.search(line), f"{code}: apostrophe in {line!r}"
            assert not MISPLACED_TURNED_COMMA.search(line), f"{code}: ʻ not after o/g in {line!r}"


def test_payme_protocol_texts_stay_as_the_reference_writes_them() -> None:
    """The one pinned exception to the apostrophe rule (see PAYME_PROTOCOL_UZ)."""
    uzbek = {uz for _code, _ru, uz, _en in MESSAGES.values()}
    assert {text for text in uzbek if WRONG_APOSTROPHE.search(text)} == PAYME_PROTOCOL_UZ


@pytest.mark.parametrize("language", LANGUAGES)
def test_html_in_translations_matches_the_source(language: str) -> None:
    """A tag a translator drops or adds breaks Telegram's HTML parse of the whole message."""
    for message in entries(language):
        source = message.id if isinstance(message.id, str) else message.id[0]
        tags = sorted(re.findall(r"</?[a-z-]+", source))
        for form in forms(message):
            assert sorted(re.findall(r"</?[a-z-]+", form)) == tags, (language, source)


@pytest.mark.parametrize(
    ("language", "phrase"),
    [
        ("uz", "u bergan kunlar"),  # a calque of "the days it gave"
        ("uz", "toʻlov bergan kunlar"),
        ("uz", "ni bosing"),  # a command is sent (yuboring), a button is pressed
        ("uz", "standart"),
        ("ru", "дн."),  # no abbreviations in buyer texts: plural forms instead
        ("ru", "/tariffs, или"),  # no comma before a single "или"
        ("ru", "которые он дал"),
        ("ru", "которые дал"),
        ("en", "Your plan {name}"),  # "Your PLUS plan"
        ("en", "the days it gave"),
    ],
)
def test_the_issues_awkward_phrases_are_gone(language: str, phrase: str) -> None:
    """Issue 14 found these in the catalogues; they must not come back."""
    for message in entries(language):
        for form in forms(message):
            assert phrase not in form, (language, form)
