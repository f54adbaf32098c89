"""Settings: read once from the environment into one frozen object.

Every value is validated here so that a wrong deployment stops at start with one line
naming the variable, instead of failing on the first payment. Secrets are excluded from
`repr` so that logging the settings can never leak them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.handlers.support import Support
from bot.i18n import LANGUAGES
from db.money import tiyin_from_som
from db.tariffs import CatalogueItem, Fiscal, Tariff, parse_catalogue
from web.env import EnvReader, SettingsError, all_or_none
from web.providers import PROVIDERS
from web.providers.base import AnyProvider

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The shipped catalogue, beside the code; TARIFFS_FILE points elsewhere.
SHIPPED_TARIFFS_FILE = Path(__file__).resolve().parent.parent / "tariffs.toml"


@dataclass(frozen=True)
class NotifierSettings:
    """Pacing of outgoing messages; Telegram allows about 30 per second per bot."""

    rate_per_second: float = 25.0
    reminder_days: tuple[int, ...] = (3, 1)


@dataclass(frozen=True)
class Settings:
    bot_token: str = field(repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    base_url: str | None = None
    webhook_secret: str = field(default="", repr=False)
    host: str = "0.0.0.0"
    port: int = 8080
    database_url: str = "sqlite+aiosqlite:///data/bot.db"
    database_wait_seconds: float = 5.0
    database_pool_size: int = 10
    request_body_timeout_seconds: float = 5.0
    admin_ids: frozenset[int] = frozenset()
    default_language: str = "uz"
    tariffs: Mapping[str, Tariff] = field(default_factory=dict)
    # Each enabled provider's own settings section, by provider name; a provider whose
    # settings are all unset is absent (off).
    providers: Mapping[str, Any] = field(default_factory=dict)
    callback_log_file: Path | None = None
    log_level: str = "INFO"
    notifier: NotifierSettings = NotifierSettings()
    support: Support = field(default_factory=Support)

    webhook_path = "/webhook/telegram"

    @property
    def webhook_url(self) -> str | None:
        return self.base_url + self.webhook_path if self.base_url else None


def load_settings(env: Mapping[str, str], providers: Iterable[AnyProvider] = PROVIDERS) -> Settings:
    """Build `Settings` from an environment mapping or raise `SettingsError`."""
    reader = EnvReader(env)
    token = reader.required("BOT_TOKEN")
    if not re.fullmatch(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}", token):
        raise SettingsError("BOT_TOKEN: not a Telegram bot token (expected <digits>:<secret>)")
    base_url = reader.https_url("BASE_URL") or reader.https_url("RENDER_EXTERNAL_URL")
    default_language = reader.optional("DEFAULT_LANGUAGE") or "uz"
    if default_language not in LANGUAGES:
        raise SettingsError(f"DEFAULT_LANGUAGE: must be one of {', '.join(LANGUAGES)}")
    log_level = (reader.optional("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}")
    log_file = reader.optional("CALLBACK_LOG_FILE")
    database_url = _database_url(reader.optional("DATABASE_URL"))
    _check_render_disk(
        database_url, reader.optional("RENDER"), reader.optional("PERSISTENT_DISK_PATH")
    )
    return Settings(
        bot_token=token,
        telegram_api_url=reader.url("TELEGRAM_API_URL") or "https://api.telegram.org",
        base_url=base_url.rstrip("/") if base_url else None,
        webhook_secret=_webhook_secret(reader.optional("WEBHOOK_SECRET"), token),
        host=reader.optional("HOST") or "0.0.0.0",
        port=reader.integer("PORT", 8080, 1, 65535),
        database_url=database_url,
        database_wait_seconds=reader.number("DATABASE_WAIT_SECONDS", 5.0, 0.1, 60.0),
        database_pool_size=reader.integer("DATABASE_POOL_SIZE", 10, 1, 100),
        request_body_timeout_seconds=reader.number("REQUEST_BODY_TIMEOUT_SECONDS", 5.0, 0.1, 60),
        admin_ids=_admin_ids(reader.optional("ADMIN_IDS")),
        default_language=default_language,
        tariffs={item.code: _tariff(reader, item) for item in _catalogue(reader)},
        providers=_provider_sections(reader, providers),
        callback_log_file=Path(log_file) if log_file else None,
        log_level=log_level,
        notifier=NotifierSettings(
            rate_per_second=reader.number("NOTIFY_RATE_PER_SECOND", 25.0, 0.1, 30.0),
            reminder_days=_reminder_days(reader.optional("REMINDER_DAYS")),
        ),
        support=Support(
            contact=_support_contact(reader.optional("SUPPORT_CONTACT")),
            terms_url=reader.https_url("TERMS_URL"),
        ),
    )


def _webhook_secret(explicit: str | None, token: str) -> str:
    if explicit is not None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", explicit):
            raise SettingsError("WEBHOOK_SECRET: 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return explicit
    # Derived, so every instance and every restart agree without extra configuration.
    return hashlib.sha256(b"webhook-secret:" + token.encode()).hexdigest()


def _database_url(raw: str | None) -> str:
    if raw is None:
        return "sqlite+aiosqlite:///data/bot.db"
    scheme, sep, rest = raw.partition("://")
    if not sep or not rest:
        raise SettingsError(
            "DATABASE_URL: not a URL (expected sqlite+aiosqlite:///path or postgresql://...)"
        )
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        try:
            make_url("postgresql+asyncpg://" + rest)  # a port that is not a number, say
        except ValueError as error:
            raise SettingsError(
                "DATABASE_URL: not a valid PostgreSQL URL (postgresql://user:pw@host:port/db)"
            ) from error
        return "postgresql+asyncpg://" + rest
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        path = rest[1:]  # after the third slash: relative, or absolute with a fourth
        if not rest.startswith("/") or path.strip("/") in ("", ":memory:") or path.endswith("/"):
            raise SettingsError(
                "DATABASE_URL: a SQLite URL needs a file path after the three slashes "
                "(for example data/bot.db)"
            )
        return "sqlite+aiosqlite://" + rest
    raise SettingsError(
        "DATABASE_URL: only SQLite (sqlite+aiosqlite://) and PostgreSQL (postgresql://) work"
    )


def _check_render_disk(database_url: str, render: str | None, disk: str | None) -> None:
    """On Render (which sets RENDER) an instance's files are new after every deploy, so a
    SQLite file there silently loses every payment and subscription; only a persistent
    disk, mounted at PERSISTENT_DISK_PATH, keeps it. Elsewhere the file stays put."""
    if render is None or not database_url.startswith("sqlite"):
        return
    if disk is None:
        raise SettingsError(
            "DATABASE_URL: on Render a SQLite file is wiped on every deploy; use PostgreSQL "
            "(render.yaml's database) or a persistent disk named in PERSISTENT_DISK_PATH"
        )
    mount = Path(disk).resolve()
    if not os.path.ismount(mount):
        raise SettingsError(f"PERSISTENT_DISK_PATH: {disk} is not a mounted disk")
    path = database_url.partition(":///")[2].partition("?")[0]
    if not Path(path).resolve().is_relative_to(mount):
        raise SettingsError(
            f"DATABASE_URL: on Render the SQLite file must be on the persistent disk "
            f"({disk}), or every deploy wipes it; for example sqlite:///{mount}/bot.db"
        )


def _admin_ids(raw: str | None) -> frozenset[int]:
    if raw is None:
        return frozenset()
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not all(re.fullmatch(r"[0-9]{1,20}", part) for part in parts):
        raise SettingsError("ADMIN_IDS: must be comma-separated numeric Telegram ids")
    return frozenset(int(part) for part in parts)


def _reminder_days(raw: str | None) -> tuple[int, ...]:
    if raw is None:
        return (3, 1)
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not all(re.fullmatch(r"[0-9]{1,3}", part) and 0 < int(part) <= 365 for part in parts):
        raise SettingsError("REMINDER_DAYS: must be comma-separated day counts from 1 to 365")
    return tuple(sorted({int(part) for part in parts}, reverse=True))


def _catalogue(reader: EnvReader) -> list[CatalogueItem]:
    """The merchant's catalogue file (tariffs.toml by default), checked whole at start."""
    path = Path(reader.optional("TARIFFS_FILE") or SHIPPED_TARIFFS_FILE)
    try:
        with path.open("rb") as file:
            return parse_catalogue(tomllib.load(file))
    except OSError as error:
        raise SettingsError(f"TARIFFS_FILE: cannot read {path}: {error.strerror}") from error
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise SettingsError(f"TARIFFS_FILE: {path}: {error}") from error


def _tariff(reader: EnvReader, item: CatalogueItem) -> Tariff:
    """The file's tariff with the TARIFF_<CODE>_* settings, when set, taking precedence."""
    code = item.code
    price = reader.integer(f"TARIFF_{code}_PRICE", item.price_som, 1, 100_000_000)
    days = reader.integer(f"TARIFF_{code}_DAYS", item.days, 1, 3650)
    return Tariff(
        code=code,
        price=tiyin_from_som(price),
        days=days,
        rank=item.rank,
        fiscal=_fiscal(reader, code) or item.fiscal,
        title=item.title,
        features=item.features,
    )


def _support_contact(raw: str | None) -> str | None:
    """A Telegram @username or an https:// link: what buyers are shown to reach a person."""
    if raw is None:
        return None
    if re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", raw) or re.fullmatch(r"https://\S+", raw):
        return raw
    raise SettingsError("SUPPORT_CONTACT: must be a Telegram @username or an https:// link")


def _fiscal(reader: EnvReader, code: str) -> Fiscal | None:
    names = (f"TARIFF_{code}_IKPU", f"TARIFF_{code}_PACKAGE_CODE", f"TARIFF_{code}_VAT_PERCENT")
    values = [reader.optional(name) for name in names]
    if not any(values):
        return None
    all_or_none(dict(zip(names, values, strict=True)))
    ikpu, package_code, vat = values
    if not re.fullmatch(r"[0-9]{17}", ikpu or ""):
        raise SettingsError(f"{names[0]}: must be exactly 17 digits")
    if not re.fullmatch(r"[0-9]{1,20}", package_code or ""):
        raise SettingsError(f"{names[1]}: must be 1-20 digits")
    if not re.fullmatch(r"[0-9]{1,3}", vat or "") or int(vat or "0") > 100:
        raise SettingsError(f"{names[2]}: must be a whole number from 0 to 100")
    return Fiscal(ikpu=ikpu or "", package_code=package_code or "", vat_percent=int(vat or "0"))


def _provider_sections(reader: EnvReader, providers: Iterable[AnyProvider]) -> dict[str, Any]:
    """Each provider reads its own section; an unconfigured one is left out (off)."""
    sections = {provider.name: provider.load_settings(reader) for provider in providers}
    return {name: section for name, section in sections.items() if section is not None}
