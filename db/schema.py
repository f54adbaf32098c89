"""Table definitions (SQLAlchemy Core), shared by queries and Alembic migrations.

Money columns are integer tiyin. Payment times are integer milliseconds since the epoch
(UTC) because Payme compares them exactly; other times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # Telegram user id
    Column("first_name", String(256), nullable=False, server_default=""),
    Column("username", String(64), nullable=True),
    Column("language", String(2), nullable=True),  # NULL until the user picks one
    # A cache of the ledger (db/ledger.py `sync_user`, same transaction as every change):
    # the tariff of the plan's last stretch (NULL once a refund ended it) and its end.
    Column("tariff", String(16), nullable=True),
    Column("tariff_expires_at", UtcDateTime(), nullable=True),
    Column("reachable", Boolean, nullable=False, server_default=true()),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_users_username", "username"),
    Index("ix_users_tariff_expires_at", "tariff_expires_at"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("merchant_trans_id", String(64), nullable=False, unique=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("tariff", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),  # tiyin, fixed at creation
    # Days the order grants, fixed at creation like the amount (Click A4 / Payme A3).
    # NULL only for rows written around `open_order` (old fixtures): the tariff's days.
    Column("days", Integer, nullable=True),
    Column("status", String(16), nullable=False),  # pending | paid | refunded | cancelled
    Column("created_at", UtcDateTime(), nullable=False),
    Column("paid_at", UtcDateTime(), nullable=True),
    # The buyer's checkout message (migration 0007): edited, never duplicated, and
    # turned into "Paid ✓" when a payment is credited. NULL until shown.
    Column("checkout_chat_id", BigInteger, nullable=True),
    Column("checkout_message_id", BigInteger, nullable=True),
    Index("ix_orders_user_id_tariff_status", "user_id", "tariff", "status"),
)

payments = Table(
    "payments",
    metadata,
    # Integer, not BigInteger: Click's merchant_prepare_id must stay <= 2**31 - 1.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(8), nullable=False),  # click | payme
    Column("provider_id", String(64), nullable=False),  # click_trans_id or Payme id
    Column("order_id", BigId, ForeignKey("orders.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # tiyin
    Column("state", String(16), nullable=False),  # pending | paid | cancelled | refunded
    Column("test", Boolean, nullable=False, server_default=false()),
    Column("click_paydoc_id", BigInteger, nullable=True),
    Column("click_sign_time", String(32), nullable=True),
    Column("payme_time", BigInteger, nullable=True),  # Payme's `time`, ms
    Column("create_time", BigInteger, nullable=False),  # ms
    Column("perform_time", BigInteger, nullable=True),  # ms
    Column("cancel_time", BigInteger, nullable=True),  # ms
    Column("cancel_reason", Integer, nullable=True),  # Payme reason code
    Column("cancel_note", Text, nullable=True),  # Click error and error_note
    Column("granted_days", Integer, nullable=True),  # what a perform added, for refunds
    Column("fiscal_data", JSON, nullable=True),  # Payme SetFiscalData, by type
    UniqueConstraint("provider", "provider_id"),
    Index("ix_payments_order_id", "order_id"),
    Index("ix_payments_create_time", "create_time"),
    Index("ix_payments_provider_payme_time", "provider", "payme_time"),
    Index("ix_payments_provider_id", "provider_id"),  # admin search by any provider id
    Index("ix_payments_click_paydoc_id", "click_paydoc_id"),
    Index("ix_payments_state_perform_time", "state", "perform_time"),  # revenue
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("dedupe_key", String(128), nullable=True, unique=True),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("error", Text, nullable=True),
    Column("broadcast_id", BigInteger, nullable=True),  # a broadcast's row (migration 0011)
    Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    # "Is there an older pending notice for this user?": keeps delivery in order per user.
    Index("ix_notifications_user_id_status_id", "user_id", "status", "id"),
    # The notifier's claim walks pending notices in id order. Sent ones pile up forever
    # (a million after a few years) and must not be in its way: this index holds only
    # the pending few. The claim compares `status` with the literal 'pending', not a
    # bound parameter: PostgreSQL's generic plan of a prepared statement could not use
    # the index otherwise (migration 0008).
    Index(
        "ix_notifications_pending",
        "id",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

# Periodic work shared by all instances: a job runs where `next_run_at` was claimed.
jobs = Table(
    "jobs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_run_at", UtcDateTime(), nullable=False),
    Column("last_run_at", UtcDateTime(), nullable=True),  # the last completed run's `now`
)

# The subscription ledger (db/ledger.py): one row per credited payment. Times are integer
# ms, like payment times, because the plan is computed from them exactly.
periods = Table(
    "periods",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    # NULL: an opening period made by migration 0005 from the one-row model
    Column("payment_id", Integer, ForeignKey("payments.id"), nullable=True, unique=True),
    Column("tariff", String(16), nullable=False),
    Column("duration_ms", BigInteger, nullable=False),
    Column("credited_at", BigInteger, nullable=False),  # ms
    Column("refunded_at", BigInteger, nullable=True),  # ms
    # payment | opening (migration 0005) | gift (an admin's, db/gifts.py; migration 0009)
    Column("kind", String(8), nullable=False, server_default="payment"),
    Index("ix_periods_user_id", "user_id"),
)

# The admin console's searches (migration 0004_admin_search.py): @username in any case,
# keyset pages on PostgreSQL, an amount, the rare test payments without a scan, and the
# orders paid more than once.
Index("ix_users_username_lower", func.lower(users.c.username))
Index("ix_payments_create_time_id", payments.c.create_time, payments.c.id)
Index("ix_payments_amount_create_time_id", payments.c.amount, payments.c.create_time, payments.c.id)
Index("ix_payments_test_create_time_id", payments.c.test, payments.c.create_time, payments.c.id)
Index("ix_payments_state_order_id", payments.c.state, payments.c.order_id)  # `double`


# Days an admin gives a buyer (db/gifts.py, migration 0009). A row is written `pending`
# by `/gift` and granted by a Confirm pressed on any instance; the granted time is a
# ledger period of kind `gift` (`period_id`), never a payment, so it is never revenue.
gifts = Table(
    "gifts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("tariff", String(16), nullable=False),
    Column("days", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("granted_by", BigInteger, nullable=False),  # the admin's Telegram id
    Column("status", String(16), nullable=False),  # pending | granted | cancelled | taken_back
    Column("period_id", BigId, ForeignKey("periods.id"), nullable=True, unique=True),
    Column("created_at", BigInteger, nullable=False),  # ms
    Column("decided_at", BigInteger, nullable=True),  # ms: granted or cancelled
    Column("taken_back_by", BigInteger, nullable=True),
    Column("taken_back_at", BigInteger, nullable=True),  # ms
    Index("ix_gifts_user_id", "user_id"),
)

# The shop edited from the chat (/shop, db/shop.py, migration 0010_shop): what admins
# changed of tariffs.toml, one row per tariff, read by every update so every instance
# offers a change at once. NULL or a missing language keeps the file's value.
tariff_overrides = Table(
    "tariff_overrides",
    metadata,
    Column("code", String(16), primary_key=True),
    Column("price", BigInteger, nullable=True),  # tiyin
    Column("days", Integer, nullable=True),
    Column("hidden", Boolean, nullable=False, server_default=false()),
    Column("titles", JSON, nullable=False),  # {"ru": "Плюс"}
    Column("features", JSON, nullable=False),  # {"uz": ["line", "line"]}
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Every /shop change: asked for (pending), then applied or cancelled, once; the applied
# ones are the audit log (who, when, before, after). The value columns hold the field's
# value as JSON (tiyin, days, true/false, a title, a list of lines).
shop_changes = Table(
    "shop_changes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("admin_id", BigInteger, nullable=False),  # who asked, then who decided
    Column("tariff", String(16), nullable=False),
    Column("field", String(16), nullable=False),  # price | days | hidden | title | features
    Column("language", String(8), nullable=True),  # title and features only
    Column("value_before", JSON, nullable=False),
    Column("value_after", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | applied | cancelled | outdated
    Column("created_at", UtcDateTime(), nullable=False),
    Column("decided_at", UtcDateTime(), nullable=True),
    # The history: applied changes, newest first, a page at a time.
    Index("ix_shop_changes_status_id", "status", "id"),
)

# Broadcasts (/broadcast, bot/admin/broadcast.py, migration 0011): the admin's draft, then
# the sending it started. Its rows are outbox notices with `broadcast_id` set.
broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("admin_id", BigInteger, nullable=False),
    Column("audience", String(16), nullable=False),  # all | active | expired | a tariff
    Column("days", Integer, nullable=True),  # `expired`: ended within this many days
    Column("texts", JSON, nullable=False),  # {language: HTML}; "*" for every language
    Column("status", String(16), nullable=False),  # draft | sending | cancelled | done
    Column("recipients", Integer, nullable=False, server_default="0"),
    Column("chat_id", BigInteger, nullable=True),  # the status message, once confirmed
    Column("message_id", BigInteger, nullable=True),
    Column("language", String(2), nullable=True),  # the status message's, as Send was shown
    Column("created_at", UtcDateTime(), nullable=False),
    Column("confirmed_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),  # done or cancelled
    Column("status_edited_at", UtcDateTime(), nullable=True),  # progress edits, a few s apart
)
# A broadcast's progress (sent / failed / left) and its cancel walk its own rows only.
Index("ix_notifications_broadcast_id_status", notifications.c.broadcast_id, notifications.c.status)
# The claim takes every other pending notice before a broadcast's rows (db/outbox.py); this
# holds just those, so a queue of 100 000 broadcast rows is not walked to find them.
Index(
    "ix_notifications_pending_urgent",
    notifications.c.id,
    sqlite_where=text("status = 'pending' AND broadcast_id IS NULL"),
    postgresql_where=text("status = 'pending' AND broadcast_id IS NULL"),
)

# Each admin's choice for the per-payment notices (migration 0012_admin_settings, db/digest.py):
# `digest_hour` NULL means at once, else one digest a day at that Tashkent hour covering
# [digest_since, that hour); `digest_since` moves forward with each digest queued.
admin_settings = Table(
    "admin_settings",
    metadata,
    Column("admin_id", BigInteger, primary_key=True, autoincrement=False),  # Telegram id
    Column("digest_hour", Integer, nullable=True),  # 0–23, Tashkent time
    Column("digest_since", BigInteger, nullable=True),  # ms: not yet in any digest from here
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The header totals of /payments and its `double` search (migration 0013_search_speed):
# kept exact by triggers on `payments` in the same transaction as every payment write,
# never written by the application. Besides these, the migration adds a trigram index on
# `users.first_name` for a part of a name: an FTS5 table `users_name_trigrams` on SQLite,
# a pg_trgm GIN index on PostgreSQL when the server has the extension.
payment_day_sums = Table(
    "payment_day_sums",
    metadata,
    Column("day", Integer, primary_key=True),  # Tashkent day of create_time, since 1970
    Column("provider", String(8), primary_key=True),
    Column("state", String(16), primary_key=True),
    Column("tariff", String(16), primary_key=True),  # the order's (fixed at creation)
    Column("test", Boolean, primary_key=True),
    Column("amount", BigInteger, primary_key=True),  # tiyin
    Column("count", BigInteger, nullable=False),  # payments; their sum is count * amount
)

orders_paid_twice = Table(
    "orders_paid_twice",
    metadata,
    Column("order_id", BigId, ForeignKey("orders.id"), primary_key=True),
)
