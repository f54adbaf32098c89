"""Settings: defaults, the exact variable named in each error, secrets kept out of repr."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from web.settings import SettingsError, load_settings

TOKEN = "123456789:AAE_test_token_for_the_fake_bot_api_0123"


def test_defaults_with_only_the_token() -> None:
    settings = load_settings({"BOT_TOKEN": TOKEN})
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.base_url is None and settings.webhook_url is None
    assert settings.database_url == "sqlite+aiosqlite:///data/bot.db"
    assert (settings.host, settings.port, settings.default_language) == ("0.0.0.0", 8080, "uz")
    assert settings.tariffs["PLUS"].price == 1_500_000 and settings.tariffs["PLUS"].days == 30
    assert settings.tariffs["PRO"].price == 3_900_000 and settings.tariffs["PRO"].days == 30
    assert settings.providers == {}
    assert settings.admin_ids == frozenset()
    # Derived webhook secret: stable, and valid for Telegram's secret_token.
    assert settings.webhook_secret == load_settings({"BOT_TOKEN": TOKEN}).webhook_secret
    assert len(settings.webhook_secret) == 64 and TOKEN not in settings.webhook_secret


def test_full_configuration() -> None:
    settings = load_settings(
        {
            "BOT_TOKEN": TOKEN,
            "RENDER_EXTERNAL_URL": "https://tariffs.onrender.com/",
            "DATABASE_URL": "postgres://u:p@db:5432/app",
            "ADMIN_IDS": " 1, 22 ,333",
            "TARIFF_PRO_PRICE": "49000",
            "TARIFF_PRO_DAYS": "31",
            "CLICK_SERVICE_ID": "28420",
            "CLICK_MERCHANT_ID": "20000",
            "CLICK_SECRET_KEY": "s3cr3tK3y",
            "PAYME_MERCHANT_ID": "587f72c72cac0d162c722ae2",
            "PAYME_KEY": "key",
            "PAYME_CHECKOUT_URL": "https://test.paycom.uz/",
            "TARIFF_PLUS_IKPU": "10305013001000000",
            "TARIFF_PLUS_PACKAGE_CODE": "1495086",
            "TARIFF_PLUS_VAT_PERCENT": "12",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.webhook_url == "https://tariffs.onrender.com/webhook/telegram"
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/app"
    assert settings.admin_ids == frozenset({1, 22, 333})
    assert settings.tariffs["PRO"].price == 4_900_000 and settings.tariffs["PRO"].days == 31
    assert settings.tariffs["PLUS"].fiscal is not None
    assert settings.tariffs["PLUS"].fiscal.vat_percent == 12
    assert settings.tariffs["PRO"].fiscal is None
    payme = settings.providers["payme"]
    assert payme.checkout_url == "https://test.paycom.uz"
    assert settings.log_level == "DEBUG"
    text = repr(settings)
    for secret in ("s3cr3tK3y", TOKEN, "'key'", settings.webhook_secret):
        assert secret not in text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "BOT_TOKEN: required but not set"),
        ({"BOT_TOKEN": "nonsense"}, "BOT_TOKEN: not a Telegram bot token"),
        ({"BASE_URL": "http://insecure.example"}, "BASE_URL: must be an https:// URL"),
        ({"TELEGRAM_API_URL": "ftp://x"}, "TELEGRAM_API_URL: must be an http(s) URL"),
        ({"PORT": "eighty"}, "PORT: must be a whole number from 1 to 65535"),
        ({"PORT": "70000"}, "PORT: must be a whole number from 1 to 65535"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL: only SQLite"),
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL: not a URL"),
        ({"DATABASE_URL": "sqlite:///"}, "DATABASE_URL: a SQLite URL needs a file"),
        ({"DATABASE_URL": "sqlite:///:memory:"}, "DATABASE_URL: a SQLite URL needs a file"),
        ({"DATABASE_URL": "sqlite+aiosqlite:///data/"}, "DATABASE_URL: a SQLite URL needs"),
        ({"ADMIN_IDS": "1,abc"}, "ADMIN_IDS: must be comma-separated numeric Telegram ids"),
        ({"DEFAULT_LANGUAGE": "de"}, "DEFAULT_LANGUAGE: must be one of uz, ru, en"),
        ({"TARIFF_PLUS_PRICE": "15000.50"}, "TARIFF_PLUS_PRICE: must be a whole number"),
        ({"TARIFF_PRO_DAYS": "0"}, "TARIFF_PRO_DAYS: must be a whole number from 1"),
        ({"WEBHOOK_SECRET": "has space"}, "WEBHOOK_SECRET: 1-256 characters"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL: must be one of"),
        ({"CLICK_SERVICE_ID": "28420"}, "CLICK_MERCHANT_ID: required when CLICK_SERVICE_ID"),
        (
            {"CLICK_SERVICE_ID": "x1", "CLICK_MERCHANT_ID": "2", "CLICK_SECRET_KEY": "k"},
            "CLICK_SERVICE_ID: must be digits only",
        ),
        ({"CLICK_RETURN_URL": "http://x"}, None),
        ({"PAYME_KEY": "k"}, "PAYME_MERCHANT_ID: required when PAYME_KEY"),
        ({"PAYME_TEST_KEY": "k"}, "PAYME_TEST_KEY: set, but PAYME_MERCHANT_ID"),
        ({"PAYME_MERCHANT_ID": "bad id!", "PAYME_KEY": "k"}, "PAYME_MERCHANT_ID: 1-64"),
        ({"PAYME_MERCHANT_ID": "m", "PAYME_KEY": "k\n"}, "PAYME_KEY: has surrounding"),
        (
            {"PAYME_MERCHANT_ID": "m", "PAYME_KEY": "k", "PAYME_TEST_KEY": " t"},
            "PAYME_TEST_KEY: has surrounding",
        ),
        (
            {"PAYME_MERCHANT_ID": "m", "PAYME_KEY": "k", "PAYME_ACCOUNT_FIELD": "Order"},
            "PAYME_ACCOUNT_FIELD: must match",
        ),
        ({"TARIFF_PRO_IKPU": "123"}, "TARIFF_PRO_PACKAGE_CODE: required when TARIFF_PRO_IKPU"),
        (
            {
                "TARIFF_PRO_IKPU": "123",
                "TARIFF_PRO_PACKAGE_CODE": "1",
                "TARIFF_PRO_VAT_PERCENT": "12",
            },
            "TARIFF_PRO_IKPU: must be exactly 17 digits",
        ),
        ({"NOTIFY_RATE_PER_SECOND": "100"}, "NOTIFY_RATE_PER_SECOND: must be a number"),
        ({"REMINDER_DAYS": "3,x"}, "REMINDER_DAYS: must be comma-separated"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str | None) -> None:
    full = {"BOT_TOKEN": TOKEN, **env} if "BOT_TOKEN" not in env and env else env
    if message is None:  # CLICK_RETURN_URL alone is harmless while Click is off
        assert "click" not in load_settings(full).providers
        return
    with pytest.raises(SettingsError) as raised:
        load_settings(full)
    assert str(raised.value).startswith(message)
    for value in env.values():
        if value not in message and len(value) > 2:
            assert value not in str(raised.value)


class RecordingEnv(dict[str, str]):
    """Remembers every variable the settings loader asks for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def test_env_example_lists_every_setting() -> None:
    env = RecordingEnv(
        {
            "BOT_TOKEN": TOKEN,
            "CLICK_SERVICE_ID": "1",
            "CLICK_MERCHANT_ID": "2",
            "CLICK_SECRET_KEY": "k",
            "PAYME_MERCHANT_ID": "m",
            "PAYME_KEY": "k",
        }
    )
    load_settings(env)
    example = Path(__file__).resolve().parent.parent / ".env.example"
    listed = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert env.asked - {"RENDER_EXTERNAL_URL", "RENDER"} <= listed, env.asked - listed
    assert listed <= env.asked, listed - env.asked


def test_blank_payme_test_key_is_unset() -> None:
    env = {"BOT_TOKEN": TOKEN, "PAYME_MERCHANT_ID": "m", "PAYME_KEY": "k", "PAYME_TEST_KEY": " "}
    payme = load_settings(env).providers.get("payme")
    assert payme is not None and (payme.key, payme.test_key) == ("k", None)


def test_on_render_a_sqlite_file_off_a_persistent_disk_stops_the_start(tmp_path: Path) -> None:
    """Render wipes an instance's files on every deploy: SQLite there loses payments."""
    render = {"BOT_TOKEN": TOKEN, "RENDER": "true"}
    with pytest.raises(SettingsError, match=r"^DATABASE_URL: on Render a SQLite file is wiped"):
        load_settings(render)
    with pytest.raises(SettingsError, match=r"^PERSISTENT_DISK_PATH: .* is not a mounted disk"):
        load_settings({**render, "PERSISTENT_DISK_PATH": str(tmp_path)})
    outside = {**render, "PERSISTENT_DISK_PATH": "/proc", "DATABASE_URL": "sqlite:///data/x.db"}
    with pytest.raises(SettingsError, match=r"^DATABASE_URL: on Render the SQLite file must be"):
        load_settings(outside)
    # Accepted: a file on the mounted disk, PostgreSQL, and SQLite anywhere off Render.
    on_disk = {**outside, "DATABASE_URL": "sqlite:////proc/bot.db"}
    assert load_settings(on_disk).database_url == "sqlite+aiosqlite:////proc/bot.db"
    postgres = {**render, "DATABASE_URL": "postgresql://u:p@db/app"}
    assert load_settings(postgres).database_url.startswith("postgresql+asyncpg://")
    assert load_settings({"BOT_TOKEN": TOKEN}).database_url.startswith("sqlite")


def test_on_render_sqlite_exits_2_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(root),
        "BOT_TOKEN": TOKEN,
        "RENDER": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "web"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "configuration error: DATABASE_URL: on Render a SQLite file is wiped on every deploy; "
        "use PostgreSQL (render.yaml's database) or a persistent disk named in "
        "PERSISTENT_DISK_PATH"
    ]
