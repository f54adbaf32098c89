"""The states rows move through, as `StrEnum`s: typos fail at import, not in production.

They are `str`s, so they compare equal to the stored column values and go into queries
and JSON as they are.
"""

from __future__ import annotations

from enum import StrEnum


class PaymentState(StrEnum):
    """A provider payment row (a Click attempt or a Payme transaction)."""

    PENDING = "pending"  # Click: prepared; Payme: state 1
    PAID = "paid"
    CANCELLED = "cancelled"  # never paid
    REFUNDED = "refunded"  # paid, then refunded or reversed


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class NoticeStatus(StrEnum):
    """An outbox notice."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # given up: the user is unreachable
    CANCELLED = "cancelled"  # a broadcast's row its admin cancelled before it was sent
