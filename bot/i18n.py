"""gettext catalogues loaded straight from the `.po` files in `locales/`.

aiogram's `I18n` reads compiled `.mo` files; compiling them in memory at start means no
build step to forget on Render and no binary files in the repository.
"""

from __future__ import annotations

import gettext
from io import BytesIO
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"


class PoCatalogueI18n(I18n):
    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for po_path in sorted(self.path.glob(f"*/LC_MESSAGES/{self.domain}.po")):
            with po_path.open("rb") as source:
                catalog = read_po(source)
            compiled = BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            translations[po_path.parent.parent.name] = gettext.GNUTranslations(compiled)
        return translations


def create_i18n(default_language: str) -> I18n:
    return PoCatalogueI18n(path=LOCALES_DIR, default_locale=default_language, domain=DOMAIN)
