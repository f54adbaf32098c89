"""What a payment provider is to the app: settings, routes and a pay link.

A provider lives in one folder, `web/providers/<name>/`, whose `__init__.py` exposes a
`PROVIDER` built from this class; the registry (`web/providers/__init__.py`) lists them.
The app and the bot only ever talk to providers through this interface, so adding one
is a folder and a line (docs/providers/README.md has the checklist).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from aiogram.utils.i18n import I18n
from aiohttp import web

from bot.payment_methods import PayLink
from db.clock import Clock
from db.database import Database
from db.tariffs import Tariff
from web.callback_log import CallbackLog
from web.env import EnvReader

SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class Services:
    """What every provider's routes get from the app, so no provider reads app keys."""

    db: Database
    clock: Clock
    tariffs: Mapping[str, Tariff]
    i18n: I18n
    default_language: str
    callback_log: CallbackLog
    admin_ids: frozenset[int]  # who is alerted about money at risk (db/admin_alerts.py)


class Routes(Protocol):
    """An object holding its dependencies that adds its routes, like aiogram's
    `SimpleRequestHandler.register(app)`."""

    def register(self, app: web.Application) -> None: ...


@dataclass(frozen=True)
class Provider(Generic[SettingsT]):
    """One payment provider; `name` is what `payments.provider` stores for it."""

    name: str
    title: str
    load_settings: Callable[[EnvReader], SettingsT | None]  # None: not configured, off
    # Called with None when the provider is off: its routes then refuse every request in
    # the protocol's own words (a bad signature or key), never with an HTML 404.
    routes: Callable[[SettingsT | None, Services], Routes]
    link: Callable[[SettingsT], PayLink]
    manual_reversal: bool = False  # see bot.payment_methods.PaymentMethod
    start_warnings: Callable[[SettingsT], list[str]] = field(default=lambda _settings: [])


AnyProvider = Provider[Any]
