"""Time as the product reads it: one injectable source, integer milliseconds (UTC), and
Tashkent time, in which people read dates.

Payme compares times in exact milliseconds and tests travel in time, so nothing reads
the wall clock directly; everything takes `now` from a `Clock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

Clock = Callable[[], int]
TASHKENT = ZoneInfo("Asia/Tashkent")  # tzdata is pinned for machines without system zones
TASHKENT_OFFSET_MS = 5 * 3_600_000  # Uzbekistan keeps UTC+5 all year (SQL day buckets)


def system_clock() -> int:
    return time.time_ns() // 1_000_000


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
