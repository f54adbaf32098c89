"""Turns what an admin types after /payments or /export into search filters.

Words combine (AND): a Telegram user id, `@username`, an order id or its prefix
(`123456_PLUS`), a Click `click_trans_id` / `click_paydoc_id`, a Payme transaction id, a
state (paid, pending, cancelled, refunded), a provider (click, payme), a tariff (plus,
pro), a Tashkent date `2026-11-01` or range `2026-11-01..2026-11-23` (both days included).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date, datetime, time, timedelta

from db.admin_queries import Filters
from db.clock import TASHKENT, to_ms
from db.states import PaymentState
from db.tariffs import TARIFF_CODES

STATES = frozenset(PaymentState)
DATE_RANGE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:\.\.([0-9]{4}-[0-9]{2}-[0-9]{2}))?")


class BadQuery(ValueError):
    """The admin typed something that cannot be a search (the message says what)."""


def day_start_ms(day: date) -> int:
    return to_ms(datetime.combine(day, time(), tzinfo=TASHKENT))


def date_range(text: str) -> tuple[int, int] | None:
    """`[start, end)` in ms for a date or an inclusive range of Tashkent days."""
    match = DATE_RANGE.fullmatch(text)
    if match is None:
        return None
    try:
        first = date.fromisoformat(match.group(1))
        last = date.fromisoformat(match.group(2) or match.group(1))
    except ValueError as error:
        raise BadQuery(text) from error
    if last < first:
        raise BadQuery(text)
    return day_start_ms(first), day_start_ms(last + timedelta(days=1))


def month_range(today: date) -> tuple[int, int]:
    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return day_start_ms(first), day_start_ms(following)


def parse_query(text: str, provider_names: Collection[str]) -> Filters:
    terms: list[str] = []
    usernames: list[str] = []
    states: set[str] = set()
    providers: set[str] = set()
    tariffs: set[str] = set()
    created: tuple[int, int] | None = None
    for word in text.split():
        lowered = word.lower()
        span = date_range(word)
        if span is not None:
            created = span
        elif word.startswith("@") and len(word) > 1:
            usernames.append(word[1:])
        elif lowered in STATES:
            states.add(lowered)
        elif lowered in provider_names:
            providers.add(lowered)
        elif word.upper() in TARIFF_CODES:
            tariffs.add(word.upper())
        elif len(word) <= 64:
            terms.append(word)
        else:
            raise BadQuery(word[:20])
    return Filters(
        terms=tuple(terms),
        usernames=tuple(usernames),
        states=frozenset(states),
        providers=frozenset(providers),
        tariffs=frozenset(tariffs),
        created_from_ms=created[0] if created else None,
        created_to_ms=created[1] if created else None,
    )
