"""One logging filter that keeps every secret out of every log line.

Why: secrets reach log text through paths nobody wrote a log call for. The Bot API URL
holds the bot token, so an aiohttp `TooManyRedirects` (a Bot API answering with a
redirect loop) prints the token in its message and traceback; an exception's repr can
hold a key. Log lines go to Render's log drains and into support tickets, so the filter
sits on the handlers, where every record passes whichever logger emitted it, and
replaces each secret in the message, its arguments, the exception text and the stack
with `***`.

Secrets are the settings' fields marked `repr=False` (the bot token, the webhook secret,
each provider's keys): the same marking that keeps them out of `repr(settings)`, so a
provider's new key is scrubbed without touching this module.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from web.settings import Settings

MASK = "***"
# Shorter values would mask ordinary words; real keys and tokens are far longer.
MIN_SECRET_LENGTH = 6


class SecretsFilter(logging.Filter):
    """Replaces each secret in a record's text with `***`; never drops a record.

    A record without a secret is left untouched (its args and exc_info stay as they
    were); one with a secret gets its rendered, scrubbed text as `msg`, no `args`, and
    its scrubbed traceback as `exc_text` in place of `exc_info`, so no handler after
    this one can format the secret back from the originals.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        variants = {
            variant
            for secret in secrets
            if secret and len(secret) >= MIN_SECRET_LENGTH
            for variant in (secret, quote(secret, safe=""), quote(secret))
        }
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def scrub(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        message = _message(record)
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = logging.Formatter().formatException(record.exc_info)
        stack = record.stack_info
        if not any(self._pattern.search(text) for text in (message, exc_text, stack) if text):
            return True
        record.msg, record.args = self.scrub(message), None
        if exc_text:
            record.exc_info, record.exc_text = None, self.scrub(exc_text)
        if stack:
            record.stack_info = self.scrub(stack)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a broken format string: keep what there is, scrubbed all the same
        return f"{record.msg!s} {record.args!r}"


def secrets_of(settings: Settings) -> list[str]:
    """Every secret in the settings: the fields marked repr=False, at the top level and
    in each provider's section, plus the token's secret half alone."""
    found: list[str] = []
    for section in (settings, *settings.providers.values()):
        if not dataclasses.is_dataclass(section):
            continue
        for field in dataclasses.fields(section):
            value: Any = getattr(section, field.name)
            if not field.repr and isinstance(value, str):
                found.append(value)
    found.append(settings.bot_token.partition(":")[2])
    return found


def install(settings: Settings, handlers: Iterable[logging.Handler] | None = None) -> None:
    """Puts one filter on each handler (the root logger's by default, as `python -m web`
    configures them), so records from every logger pass it."""
    secrets_filter = SecretsFilter(secrets_of(settings))
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        handler.addFilter(secrets_filter)
