"""Settings: read once from the environment into one frozen object.

Every value is validated here so that a wrong deployment stops at start with one line
naming the variable, instead of failing on the first payment. Secrets are excluded from
`repr` so that logging the settings can never leak them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from db.tariffs import TARIFF_CODES, Fiscal, Tariff

LANGUAGES = ("uz", "ru", "en")
DEFAULT_TARIFFS = {"PLUS": (15000, 30), "PRO": (39000, 30)}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable, never a secret."""


@dataclass(frozen=True)
class ClickSettings:
    service_id: str
    merchant_id: str
    secret_key: str = field(repr=False)
    merchant_user_id: str | None = None
    return_url: str | None = None


@dataclass(frozen=True)
class PaymeSettings:
    merchant_id: str
    key: str = field(repr=False)
    test_key: str | None = field(default=None, repr=False)
    checkout_url: str = "https://checkout.paycom.uz"
    account_field: str = "order_id"


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
    redis_url: str | None = None
    admin_ids: frozenset[int] = frozenset()
    default_language: str = "uz"
    tariffs: Mapping[str, Tariff] = field(default_factory=dict)
    click: ClickSettings | None = None
    payme: PaymeSettings | None = None
    callback_log_file: Path | None = None
    log_level: str = "INFO"
    notifier: NotifierSettings = NotifierSettings()

    webhook_path = "/webhook/telegram"

    @property
    def webhook_url(self) -> str | None:
        return self.base_url + self.webhook_path if self.base_url else None


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build `Settings` from an environment mapping or raise `SettingsError`."""
    reader = _Reader(env)
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
    return Settings(
        bot_token=token,
        telegram_api_url=reader.url("TELEGRAM_API_URL") or "https://api.telegram.org",
        base_url=base_url.rstrip("/") if base_url else None,
        webhook_secret=_webhook_secret(reader.optional("WEBHOOK_SECRET"), token),
        host=reader.optional("HOST") or "0.0.0.0",
        port=reader.integer("PORT", 8080, 1, 65535),
        database_url=_database_url(reader.optional("DATABASE_URL")),
        redis_url=_redis_url(reader.optional("REDIS_URL")),
        admin_ids=_admin_ids(reader.optional("ADMIN_IDS")),
        default_language=default_language,
        tariffs={code: _tariff(reader, code) for code in TARIFF_CODES},
        click=_click(reader),
        payme=_payme(reader),
        callback_log_file=Path(log_file) if log_file else None,
        log_level=log_level,
        notifier=NotifierSettings(
            rate_per_second=reader.number("NOTIFY_RATE_PER_SECOND", 25.0, 0.1, 30.0),
            reminder_days=_reminder_days(reader.optional("REMINDER_DAYS")),
        ),
    )


class _Reader:
    """Reads one variable at a time; empty strings count as unset."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> str | None:
        """A key compared byte for byte: surrounding whitespace is a paste error that
        would fail every request, so it stops the start instead of being trimmed."""
        raw = self._env.get(name, "")
        if not raw.strip():
            return None
        if raw != raw.strip():
            raise SettingsError(f"{name}: has surrounding whitespace; remove it")
        return raw

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(f"{name}: required but not set")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        if not re.fullmatch(r"[0-9]{1,12}", raw) or not low <= int(raw) <= high:
            raise SettingsError(f"{name}: must be a whole number from {low} to {high}")
        return int(raw)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        if not re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6})?", raw) or not low <= float(raw) <= high:
            raise SettingsError(f"{name}: must be a number from {low:g} to {high:g}")
        return float(raw)

    def url(self, name: str) -> str | None:
        raw = self.optional(name)
        if raw is None:
            return None
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"{name}: must be an http(s) URL")
        return raw.rstrip("/")

    def https_url(self, name: str) -> str | None:
        raw = self.url(name)
        if raw is not None and not raw.startswith("https://"):
            raise SettingsError(f"{name}: must be an https:// URL")
        return raw


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
        return "postgresql+asyncpg://" + rest
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return "sqlite+aiosqlite://" + rest
    raise SettingsError(
        "DATABASE_URL: only SQLite (sqlite+aiosqlite://) and PostgreSQL (postgresql://) work"
    )


def _redis_url(raw: str | None) -> str | None:
    if raw is not None and not raw.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("REDIS_URL: must start with redis://, rediss:// or unix://")
    return raw


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


def _tariff(reader: _Reader, code: str) -> Tariff:
    default_price, default_days = DEFAULT_TARIFFS[code]
    price = reader.integer(f"TARIFF_{code}_PRICE", default_price, 1, 100_000_000)
    days = reader.integer(f"TARIFF_{code}_DAYS", default_days, 1, 3650)
    return Tariff(code=code, price=price * 100, days=days, fiscal=_fiscal(reader, code))


def _fiscal(reader: _Reader, code: str) -> Fiscal | None:
    names = (f"TARIFF_{code}_IKPU", f"TARIFF_{code}_PACKAGE_CODE", f"TARIFF_{code}_VAT_PERCENT")
    values = [reader.optional(name) for name in names]
    if not any(values):
        return None
    _all_or_none(dict(zip(names, values, strict=True)))
    ikpu, package_code, vat = values
    if not re.fullmatch(r"[0-9]{17}", ikpu or ""):
        raise SettingsError(f"{names[0]}: must be exactly 17 digits")
    if not re.fullmatch(r"[0-9]{1,20}", package_code or ""):
        raise SettingsError(f"{names[1]}: must be 1-20 digits")
    if not re.fullmatch(r"[0-9]{1,3}", vat or "") or int(vat or "0") > 100:
        raise SettingsError(f"{names[2]}: must be a whole number from 0 to 100")
    return Fiscal(ikpu=ikpu or "", package_code=package_code or "", vat_percent=int(vat or "0"))


def _all_or_none(values: Mapping[str, str | None]) -> bool:
    """True when all are set, False when none are; half a group is a start error."""
    missing = [name for name, value in values.items() if value is None]
    if missing and len(missing) < len(values):
        given = ", ".join(name for name in values if name not in missing)
        raise SettingsError(f"{missing[0]}: required when {given} is set")
    return not missing


def _click(reader: _Reader) -> ClickSettings | None:
    names = ("CLICK_SERVICE_ID", "CLICK_MERCHANT_ID", "CLICK_SECRET_KEY")
    values = {name: reader.optional(name) for name in names}
    if not _all_or_none(values):
        return None
    for name in ("CLICK_SERVICE_ID", "CLICK_MERCHANT_ID", "CLICK_MERCHANT_USER_ID"):
        value = reader.optional(name)
        if value is not None and not re.fullmatch(r"[0-9]{1,19}", value):
            raise SettingsError(f"{name}: must be digits only")
    return ClickSettings(
        service_id=values["CLICK_SERVICE_ID"] or "",
        merchant_id=values["CLICK_MERCHANT_ID"] or "",
        secret_key=values["CLICK_SECRET_KEY"] or "",
        merchant_user_id=reader.optional("CLICK_MERCHANT_USER_ID"),
        return_url=reader.https_url("CLICK_RETURN_URL"),
    )


def _payme(reader: _Reader) -> PaymeSettings | None:
    values = {"PAYME_MERCHANT_ID": reader.optional("PAYME_MERCHANT_ID")}
    values["PAYME_KEY"] = reader.secret("PAYME_KEY")
    if not _all_or_none(values):
        if reader.optional("PAYME_TEST_KEY"):
            raise SettingsError("PAYME_TEST_KEY: set, but PAYME_MERCHANT_ID and PAYME_KEY are not")
        return None
    merchant_id = values["PAYME_MERCHANT_ID"] or ""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", merchant_id):
        raise SettingsError("PAYME_MERCHANT_ID: 1-64 characters of A-Z, a-z, 0-9, _ . -")
    account_field = reader.optional("PAYME_ACCOUNT_FIELD") or "order_id"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", account_field):
        raise SettingsError("PAYME_ACCOUNT_FIELD: must match [a-z][a-z0-9_]{0,31}")
    return PaymeSettings(
        merchant_id=merchant_id,
        key=values["PAYME_KEY"] or "",
        test_key=reader.secret("PAYME_TEST_KEY"),
        checkout_url=reader.https_url("PAYME_CHECKOUT_URL") or "https://checkout.paycom.uz",
        account_field=account_field,
    )
