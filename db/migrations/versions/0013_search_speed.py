"""search speed: the header's totals from per-day sums, `double` from a list of orders,
a buyer's name part by trigrams

The /payments header counts and sums every match. Over a million payments that read
takes 0.3-1 s however it is indexed, so two small tables are kept exact by triggers, in
the same transaction as every payment write (whoever writes: the callbacks, the
fixtures, a person at the SQL prompt):

- `payment_day_sums`: how many payments there are per Tashkent day of creation,
  provider, state, the order's tariff, test flag and amount. The totals of a search made
  of those words (and whole days) add up a few thousand of these rows, not the payments.
- `orders_paid_twice`: the orders with more than one paid payment (`/payments double`),
  instead of grouping every paid payment by order.

A part of the buyer's name: an FTS5 trigram table over `users.first_name` on SQLite (kept
by triggers too), a pg_trgm GIN index on PostgreSQL when the server has the extension
(the system PostgreSQL does; pgserver's bundled one does not: then ILIKE scans the
users, as before).

The definitions are frozen here, not imported from db/schema.py, so this revision means
the same thing whatever the schema becomes later.

Revision ID: 0013_search_speed
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_search_speed"
down_revision = "0012_admin_settings"
branch_labels = None
depends_on = None

# A payment's Tashkent day: Uzbekistan keeps UTC+5 all year (db/clock.py).
DAY = "(({row}.create_time + 18000000) / 86400000)"
# '' only for a payment without its order, which the foreign key forbids.
TARIFF = "COALESCE((SELECT tariff FROM orders WHERE id = {row}.order_id), '')"
KEY = ("day", "provider", "state", "tariff", "test", "amount")
SUMMED = "state, amount, create_time, provider, test, order_id"


def _add(row: str, step: str) -> str:
    """One payment (`NEW` or `OLD`) added to (+1) or taken from (-1) its day's row."""
    return (
        f"INSERT INTO payment_day_sums ({', '.join(KEY)}, count) VALUES "
        f"({DAY.format(row=row)}, {row}.provider, {row}.state, {TARIFF.format(row=row)}, "
        f"{row}.test, {row}.amount, {step}) "
        f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET count = payment_day_sums.count + {step}"
    )


def _paid_count(row: str) -> str:
    return f"(SELECT count(*) FROM payments WHERE order_id = {row}.order_id AND state = 'paid')"


def _joined_twice(row: str) -> str:
    """`NEW`'s order into `orders_paid_twice` if `NEW` is paid and now its second paid."""
    return (
        f"INSERT INTO orders_paid_twice (order_id) SELECT {row}.order_id "
        f"WHERE {row}.state = 'paid' AND {_paid_count(row)} > 1 ON CONFLICT (order_id) DO NOTHING"
    )


def _left_twice(row: str) -> str:
    """`OLD`'s order out of `orders_paid_twice` if `OLD` was paid and one paid is left."""
    return (
        f"DELETE FROM orders_paid_twice WHERE order_id = {row}.order_id "
        f"AND {row}.state = 'paid' AND {_paid_count(row)} < 2"
    )


# Trigger event: the statements it runs. Only a paid payment arriving can make an order
# paid twice, only one leaving can undo it: the others skip the count.
WRITES = {
    "INSERT": [_add("NEW", "1"), _joined_twice("NEW")],
    "UPDATE": [_add("OLD", "-1"), _add("NEW", "1"), _left_twice("OLD"), _joined_twice("NEW")],
    "DELETE": [_add("OLD", "-1"), _left_twice("OLD")],
}
EVENTS = {"INSERT": "INSERT", "UPDATE": f"UPDATE OF {SUMMED}", "DELETE": "DELETE"}
CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in SUMMED.split(", "))


def _sqlite_triggers() -> None:
    for event, statements in WRITES.items():
        when = f" WHEN {CHANGED.replace('IS DISTINCT FROM', 'IS NOT')}" if event == "UPDATE" else ""
        body = "".join(f"{s};\n" for s in statements)
        op.execute(
            f"CREATE TRIGGER payments_sums_{event.lower()} AFTER {EVENTS[event]} ON payments"
            f"{when} BEGIN\n{body}END"
        )
    # The names' trigram index: the user's rowid is the Telegram id.
    op.execute(
        "CREATE VIRTUAL TABLE users_name_trigrams USING fts5("
        "first_name, content='users', content_rowid='id', tokenize='trigram')"
    )
    op.execute("INSERT INTO users_name_trigrams (users_name_trigrams) VALUES ('rebuild')")
    old = "INSERT INTO users_name_trigrams (users_name_trigrams, rowid, first_name) VALUES ('delete', OLD.id, OLD.first_name)"
    new = "INSERT INTO users_name_trigrams (rowid, first_name) VALUES (NEW.id, NEW.first_name)"
    for event, body in (
        ("INSERT", [new]),
        ("UPDATE OF first_name", [old, new]),
        ("DELETE", [old]),
    ):
        name = event.split()[0].lower()
        op.execute(
            f"CREATE TRIGGER users_name_trigrams_{name} AFTER {event} ON users BEGIN\n"
            + "".join(f"{s};\n" for s in body)
            + "END"
        )


def _postgres_triggers() -> None:
    for event, statements in WRITES.items():
        body = "".join(f"    {s};\n" for s in statements)
        op.execute(
            f"CREATE FUNCTION payments_sums_{event.lower()}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$\nBEGIN\n{body}    RETURN NULL;\nEND\n$$"
        )
        when = f" WHEN ({CHANGED})" if event == "UPDATE" else ""
        op.execute(
            f"CREATE TRIGGER payments_sums_{event.lower()} AFTER {EVENTS[event]} ON payments "
            f"FOR EACH ROW{when} EXECUTE FUNCTION payments_sums_{event.lower()}()"
        )
    # Every payment write updates one of these few rows: room on each page for the new
    # versions (HOT updates) and a vacuum after every thousand dead ones, so the table
    # stays the size of its rows.
    op.execute(
        "ALTER TABLE payment_day_sums SET (fillfactor = 50, "
        "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)"
    )
    available = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")
    )
    if not available:
        return
    try:
        with op.get_bind().begin_nested():  # a role that may not create it: no index
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            op.execute(
                "CREATE INDEX ix_users_first_name_trgm ON users USING gin (first_name gin_trgm_ops)"
            )
    except sa.exc.DBAPIError:
        pass


def upgrade() -> None:
    op.create_table(
        "payment_day_sums",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tariff", sa.String(length=16), nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*KEY, name="pk_payment_day_sums"),
    )
    op.create_table(
        "orders_paid_twice",
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_orders_paid_twice_order_id"),
        sa.PrimaryKeyConstraint("order_id", name="pk_orders_paid_twice"),
    )
    day = DAY.format(row="payments")
    op.execute(
        f"INSERT INTO payment_day_sums ({', '.join(KEY)}, count) "
        f"SELECT {day}, payments.provider, payments.state, orders.tariff, payments.test, "
        "payments.amount, count(*) FROM payments JOIN orders ON orders.id = payments.order_id "
        f"GROUP BY {day}, payments.provider, payments.state, orders.tariff, payments.test, "
        "payments.amount"
    )
    op.execute(
        "INSERT INTO orders_paid_twice (order_id) SELECT order_id FROM payments "
        "WHERE state = 'paid' GROUP BY order_id HAVING count(*) > 1"
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_users_first_name_trgm")
        for event in WRITES:
            op.execute(f"DROP TRIGGER payments_sums_{event.lower()} ON payments")
            op.execute(f"DROP FUNCTION payments_sums_{event.lower()}()")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER users_name_trigrams_{name}")
            op.execute(f"DROP TRIGGER payments_sums_{name}")
        op.execute("DROP TABLE users_name_trigrams")
    op.drop_table("orders_paid_twice")
    op.drop_table("payment_day_sums")
