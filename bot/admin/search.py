"""Turns what an admin types after /payments or /export into search filters.

Words combine (AND): a Telegram user id, `@username` (any case), an order id or its
prefix (`123456_PLUS`), a Click `click_trans_id` / `click_paydoc_id`, a Payme transaction
id, a part of the buyer's name, an amount in so'm (`15000`, `15 000`, `15 000 so'm`), a
state or a provider in any of the bot's three languages (`paid`, `оплачен`,
`toʻlangan`), a tariff (plus, pro), `test`, `double`, a period (`today`, `yesterday`,
`week`, `month`, in the three languages too) or a Tashkent date `2026-11-01` or range
`2026-11-01..2026-11-23` (both days included).

The vocabulary is fixed here rather than read back from the catalogues: an admin types
the word they saw in any language, whatever language the bot speaks to them today.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date, datetime, time, timedelta

from db.admin_queries import Filters
from db.clock import TASHKENT, to_ms
from db.states import PaymentState
from db.tariffs import TARIFF_CODES

DATE_RANGE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:\.\.([0-9]{4}-[0-9]{2}-[0-9]{2}))?")
# "15 000" (thousands grouped by any space) is an amount, and so is a number followed by
# the currency; ids are never written with spaces.
GROUPED_AMOUNT = re.compile(r"(?<![\w.])([0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})+)(?![\w.])")
CURRENCY = re.compile(
    r"(?<![\w.])([0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})+|[0-9]+)\s*(?:som|сум|sum|uzs)(?!\w)",
    re.IGNORECASE,
)
APOSTROPHES = str.maketrans("", "", "'ʻʼ‘’`")
# Words after normalising (lower case, no apostrophes, ё -> е).
STATE_WORDS = {
    PaymentState.PAID: ("paid", "оплачен", "оплачено", "оплачены", "tolangan"),
    PaymentState.PENDING: ("pending", "ожидает", "ожидание", "kutilmoqda"),
    PaymentState.CANCELLED: ("cancelled", "canceled", "отменен", "отменено", "bekor"),
    PaymentState.REFUNDED: ("refunded", "возвращен", "возвращено", "возврат", "qaytarilgan"),
}
PHRASES = {"bekor qilingan": "bekor", "bekor qilindi": "bekor"}
PROVIDER_WORDS = {"клик": "click", "пейми": "payme", "пэйми": "payme"}
PERIOD_WORDS = {
    "today": ("today", "сегодня", "bugun"),
    "yesterday": ("yesterday", "вчера", "kecha"),
    "week": ("week", "неделя", "hafta"),
    "month": ("month", "месяц", "oy"),
}
TEST_WORDS = ("test", "тест")
DOUBLE_WORDS = ("double", "двойной", "двойные", "дважды", "ikki")
WORD_TO_STATE = {word: state for state, words in STATE_WORDS.items() for word in words}
WORD_TO_PERIOD = {word: period for period, words in PERIOD_WORDS.items() for word in words}


class BadQuery(ValueError):
    """The admin typed something that cannot be a search (the message says what)."""


def normalise(word: str) -> str:
    return word.lower().translate(APOSTROPHES).replace("ё", "е")


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


def period_range(period: str, today: date) -> tuple[int, int]:
    """Tashkent days: today, yesterday, this week from Monday, this calendar month."""
    if period == "today":
        return day_start_ms(today), day_start_ms(today + timedelta(days=1))
    if period == "yesterday":
        return day_start_ms(today - timedelta(days=1)), day_start_ms(today)
    if period == "week":
        monday = today - timedelta(days=today.weekday())
        return day_start_ms(monday), day_start_ms(today + timedelta(days=1))
    return month_range(today)


def _amounts(text: str) -> tuple[str, list[int]]:
    """Takes the amounts out of the text (they may span words) and returns the rest."""
    amounts: list[int] = []

    def take(match: re.Match[str]) -> str:
        amounts.append(int(re.sub(r"\D", "", match.group(1))) * 100)
        return " "

    text = CURRENCY.sub(take, normalise_currency(text))
    text = GROUPED_AMOUNT.sub(take, text)
    return text, amounts


def normalise_currency(text: str) -> str:
    return re.sub(r"so[ʻ'‘’`]?m\b", "som", text, flags=re.IGNORECASE)


def parse_query(text: str, provider_names: Collection[str], today: date) -> Filters:
    text, amounts = _amounts(text)
    for phrase, word in PHRASES.items():
        text = re.sub(rf"(?<!\w){phrase}(?!\w)", word, text, flags=re.IGNORECASE)
    words = text.split()
    terms: list[str] = []
    usernames: list[str] = []
    states: set[str] = set()
    providers: set[str] = set()
    tariffs: set[str] = set()
    created: tuple[int, int] | None = None
    test = double = False
    for word in words:
        key = normalise(word)
        span = date_range(word)
        if span is not None:
            created = span
        elif word.startswith("@") and len(word) > 1:
            usernames.append(word[1:].lower())
        elif key in WORD_TO_STATE:
            states.add(WORD_TO_STATE[key])
        elif key in provider_names or PROVIDER_WORDS.get(key) in provider_names:
            providers.add(PROVIDER_WORDS.get(key, key))
        elif word.upper() in TARIFF_CODES:
            tariffs.add(word.upper())
        elif key in WORD_TO_PERIOD:
            created = period_range(WORD_TO_PERIOD[key], today)
        elif key in TEST_WORDS:
            test = True
        elif key in DOUBLE_WORDS:
            double = True
        else:
            terms.append(word)
    return Filters(
        terms=tuple(terms),
        amounts=tuple(amounts),
        usernames=tuple(usernames),
        states=frozenset(states),
        providers=frozenset(providers),
        tariffs=frozenset(tariffs),
        created_from_ms=created[0] if created else None,
        created_to_ms=created[1] if created else None,
        test=test,
        double=double,
    )
