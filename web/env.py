"""Reading environment variables with one-line errors that name the variable.

Shared by the core settings (`web/settings.py`) and each provider's settings section
(`web/providers/<name>/settings.py`), so every setting fails the same way: a
`SettingsError` naming the variable and never echoing a secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable, never a secret."""


class EnvReader:
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

    def group(self, *names: str) -> dict[str, str | None] | None:
        """A group of settings that are all set or all unset (a provider's credentials).

        Returns the values when all are set, None when none are; half a group is a
        start error naming the first missing variable.
        """
        values = {name: self.optional(name) for name in names}
        return values if all_or_none(values) else None


def all_or_none(values: Mapping[str, str | None]) -> bool:
    """True when all are set, False when none are; half a group is a start error."""
    missing = [name for name, value in values.items() if value is None]
    if missing and len(missing) < len(values):
        given = ", ".join(name for name in values if name not in missing)
        raise SettingsError(f"{missing[0]}: required when {given} is set")
    return not missing
