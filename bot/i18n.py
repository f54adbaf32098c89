"""gettext catalogues compiled from the `.po` files in `locales/` at start.

aiogram's `I18n` reads compiled `.mo` files; compiling them at start into a private
temporary directory means no build step to forget on Render and no binary files in the
repository. (Subclassing `I18n` is not an option: its context variable is per class,
so `gettext` would not find a subclass instance.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("uz", "ru", "en")  # the bot's languages; the first is the shipped default
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"


def compile_catalogues(source: Path, target: Path) -> None:
    for po_path in sorted(source.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file)
        mo_path = target / po_path.relative_to(source).with_suffix(".mo")
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)


def create_i18n(default_language: str) -> I18n:
    compiled = Path(tempfile.mkdtemp(prefix="locales-"))
    compile_catalogues(LOCALES_DIR, compiled)
    return I18n(path=compiled, default_locale=default_language, domain=DOMAIN)
