"""Typed application keys: how routes reach the shared objects (no module globals)."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.utils.i18n import I18n
from aiohttp import web

from bot.workers.notifier import Notifier
from bot.workers.pacing import Pacer
from bot.workers.scheduler import Scheduler
from db.clock import Clock
from db.database import Database
from web.callback_log import CallbackLog
from web.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
BOT = web.AppKey("bot", Bot)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
I18N = web.AppKey("i18n", I18n)
PACER = web.AppKey("pacer", Pacer)
NOTIFIER = web.AppKey("notifier", Notifier)
SCHEDULER = web.AppKey("scheduler", Scheduler)
CALLBACK_LOG = web.AppKey("callback_log", CallbackLog)
