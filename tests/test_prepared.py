"""Statements built once (db/prepared.py) give what `conn.execute` gives, on both databases,
and the SQLite writer's own connection (Database._sqlite_write) commits and rolls back
as a pooled one did."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from db.database import Database
from db.prepared import Prepared, row_update, run_together, update_by_id
from db.schema import notifications, orders, payments, users
from db.sqlite_inloop import driver_of
from db.users import get_user, tariff_update

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
USER_ID = 555_000_111

PAYMENT_BY_ID = Prepared(select(payments).where(payments.c.id == bindparam("payment_id")))
NOTICE_BY_ID = Prepared(select(notifications).where(notifications.c.id == bindparam("notice_id")))
INSERT_NOTICE = Prepared(
    lambda dialect: (
        dialect.insert(notifications)
        .values(
            user_id=bindparam("user_id"),
            kind="test",
            payload=bindparam("payload", type_=notifications.c.payload.type),
            dedupe_key=bindparam("dedupe_key"),
            status="pending",
            next_attempt_at=bindparam("now", type_=notifications.c.next_attempt_at.type),
            created_at=bindparam("now", type_=notifications.c.created_at.type),
        )
        .on_conflict_do_nothing(index_elements=[notifications.c.dedupe_key])
        .returning(notifications.c.id)
    )
)


async def _seed(database: Database) -> int:
    """A user, an order and a paid test payment with fiscal data; the payment's id."""
    async with database.transaction() as conn:
        await conn.execute(insert(users).values(id=USER_ID, language="uz", created_at=WHEN))
        order_id = (
            await conn.execute(
                insert(orders)
                .values(
                    merchant_trans_id=f"{USER_ID}_PLUS_1",
                    user_id=USER_ID,
                    tariff="PLUS",
                    amount=1_500_000,
                    days=30,
                    status="paid",
                    created_at=WHEN,
                    paid_at=WHEN,
                )
                .returning(orders.c.id)
            )
        ).scalar_one()
        return int(
            (
                await conn.execute(
                    insert(payments)
                    .values(
                        provider="payme",
                        provider_id="p-1",
                        order_id=order_id,
                        amount=1_500_000,
                        state="paid",
                        test=True,
                        create_time=1_700_000_000_000,
                        fiscal_data={"receipt_id": 7, "qr": "https://ofd.soliq.uz/x?y=ʻ"},
                    )
                    .returning(payments.c.id)
                )
            ).scalar_one()
        )


async def test_rows_are_those_of_conn_execute(database_url: str) -> None:
    database = await Database.connect(database_url)
    try:
        payment_id = await _seed(database)
        async with database.transaction() as conn:
            prepared = await PAYMENT_BY_ID.one(conn, payment_id=payment_id)
            core = (
                await conn.execute(
                    PAYMENT_BY_ID.statement(conn.dialect), {"payment_id": payment_id}
                )
            ).one()
            assert prepared == dict(core._mapping)
            assert prepared["test"] is True  # a boolean, not SQLite's 1
            assert prepared["fiscal_data"] == {"receipt_id": 7, "qr": "https://ofd.soliq.uz/x?y=ʻ"}
            assert await PAYMENT_BY_ID.one_or_none(conn, payment_id=payment_id + 1) is None
            with pytest.raises(LookupError):
                await PAYMENT_BY_ID.one(conn, payment_id=payment_id + 1)
            # Bound values go through the column's type: an aware datetime is stored as
            # UTC and comes back equal; JSON is stored as JSON; the row count is right.
            first = await INSERT_NOTICE.one_or_none(
                conn, user_id=USER_ID, payload={"a": [1, "ʻ"]}, dedupe_key="k", now=WHEN
            )
            again = await INSERT_NOTICE.one_or_none(
                conn, user_id=USER_ID, payload={}, dedupe_key="k", now=WHEN
            )
            assert first is not None and again is None
            notice = await NOTICE_BY_ID.one(conn, notice_id=first["id"])
            assert (notice["payload"], notice["next_attempt_at"]) == ({"a": [1, "ʻ"]}, WHEN)
            changed = await update_by_id(payments, ("state",)).run(
                conn, where_id=payment_id, state="refunded"
            )
            assert changed == 1
            assert (await PAYMENT_BY_ID.one(conn, payment_id=payment_id))["state"] == "refunded"
    finally:
        await database.close()


async def test_a_prepared_write_is_part_of_the_transaction(database_url: str) -> None:
    database = await Database.connect(database_url)
    try:
        payment_id = await _seed(database)
        # A driver's error arrives as SQLAlchemy's, whichever path ran the statement: the
        # bot and the callbacks tell "database unavailable" from a bug by that class.
        with pytest.raises(IntegrityError):
            async with database.transaction() as conn:
                await update_by_id(payments, ("order_id",)).run(
                    conn, where_id=payment_id, order_id=987_654
                )
        with pytest.raises(RuntimeError):
            async with database.transaction() as conn:
                await update_by_id(payments, ("state",)).run(
                    conn, where_id=payment_id, state="cancelled"
                )
                raise RuntimeError("the rest of the transaction failed")
        async with database.read() as conn:
            assert (await PAYMENT_BY_ID.one(conn, payment_id=payment_id))["state"] == "paid"
        async with database.report() as conn:  # aiosqlite on SQLite: through SQLAlchemy
            assert (await PAYMENT_BY_ID.one(conn, payment_id=payment_id))["state"] == "paid"
    finally:
        await database.close()


async def test_a_glance_is_one_select_on_a_snapshot_of_its_own(database_url: str) -> None:
    """`Database.glance` gives the rows a snapshot read gives; on PostgreSQL the server
    receives that one statement and nothing else (no BEGIN, no ROLLBACK), where `read()`
    sends three. Anything but a SELECT is refused and changes nothing."""
    database = await Database.connect(database_url)
    sent = _statements_sent(database)
    try:
        payment_id = await _seed(database)
        await _taken(sent)
        rows = await database.glance(PAYMENT_BY_ID, payment_id=payment_id)
        glanced = await _taken(sent)
        async with database.read() as conn:
            assert rows == [await PAYMENT_BY_ID.one(conn, payment_id=payment_id)]
        if not database.is_sqlite:
            assert glanced == ["SELECT"]
            assert await _taken(sent) == ["BEGIN", "SELECT", "ROLLBACK"]
        with pytest.raises(ValueError, match="SELECT only"):
            await database.glance(
                update_by_id(payments, ("state",)), where_id=payment_id, state="cancelled"
            )
        async with database.read() as conn:
            assert (await PAYMENT_BY_ID.one(conn, payment_id=payment_id))["state"] == "paid"
    finally:
        await database.close()


async def test_writes_run_together_apply_all_or_nothing(database_url: str) -> None:
    """`run_together`: every write applied, on PostgreSQL in the one statement the server
    receives; none when one of them fails; two writes of one table refused."""
    database = await Database.connect(database_url)
    sent = _statements_sent(database)
    try:
        payment_id = await _seed(database)
        notice = INSERT_NOTICE, {"user_id": USER_ID, "payload": {}, "dedupe_key": "k", "now": WHEN}
        with pytest.raises(IntegrityError):  # no such order: the payment's foreign key
            async with database.transaction() as conn:
                await run_together(
                    conn,
                    tariff_update(USER_ID, "PRO", WHEN),
                    row_update(payments, payment_id, order_id=987_654),
                    notice,
                )
        async with database.transaction() as conn:
            assert (await get_user(conn, USER_ID)).tariff is None  # type: ignore[union-attr]
            await _taken(sent)
            await run_together(
                conn,
                tariff_update(USER_ID, "PRO", WHEN),
                row_update(payments, payment_id, state="refunded"),
                notice,
            )
            if not database.is_sqlite:
                assert await _taken(sent) == ["WITH"]  # BEGIN went with the read above
            with pytest.raises(ValueError, match="two writes of one table"):
                await run_together(
                    conn,
                    row_update(payments, payment_id, state="paid"),
                    row_update(payments, payment_id, cancel_note="x"),
                )
        async with database.read() as conn:
            user = await get_user(conn, USER_ID)
            assert user is not None and (user.tariff, user.tariff_expires_at) == ("PRO", WHEN)
            assert (await PAYMENT_BY_ID.one(conn, payment_id=payment_id))["state"] == "refunded"
            assert await conn.scalar(select(func.count()).select_from(notifications)) == 1
    finally:
        await database.close()


def _statements_sent(database: Database) -> list[str]:
    """What the PostgreSQL server receives from now on, each query's first word (asyncpg's
    query logger, on every connection the pool hands out); stays empty on SQLite."""
    sent: list[str] = []

    def record(query: Any) -> None:
        sent.append(query.query.split(None, 1)[0].rstrip(";"))

    if not database.is_sqlite:
        event.listen(
            database.engine.sync_engine,
            "checkout",
            lambda dbapi, _record, _proxy: dbapi.driver_connection.add_query_logger(record),
        )
    return sent


async def _taken(sent: list[str]) -> list[str]:
    """What `sent` holds once asyncpg has called its loggers (on the loop's next turn),
    emptied for what comes next."""
    await asyncio.sleep(0)
    taken, sent[:] = list(sent), []
    return taken


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_sqlite_writer_keeps_its_connection_and_ends_each_transaction(
    database_url: str,
) -> None:
    """Mixed Core and prepared statements commit together, a failure rolls both back,
    and the next transaction begins cleanly on the same connection."""
    database = await Database.connect(database_url)
    try:
        payment_id = await _seed(database)
        async with database.transaction() as first:
            raw = driver_of(first)
            assert raw is not None and raw.in_transaction
        # (payment state, Core statement too, fails) -> (state, order status) afterwards
        cases = [
            (("cancelled", True, True), ("paid", "paid")),
            (("pending", False, False), ("pending", "paid")),  # prepared statements only
            (("refunded", True, False), ("refunded", "cancelled")),
        ]
        for (state, core_too, fail), expected in cases:
            try:
                async with database.transaction() as conn:
                    assert driver_of(conn) is raw
                    await update_by_id(payments, ("state",)).run(
                        conn, where_id=payment_id, state=state
                    )
                    if core_too:
                        await conn.execute(text("UPDATE orders SET status = 'cancelled'"))
                    if fail:
                        raise RuntimeError("failed half-way")
            except RuntimeError:
                pass
            assert not raw.in_transaction
            async with database.read() as conn:
                status = (await conn.execute(select(orders.c.status))).scalar_one()
                paid = await PAYMENT_BY_ID.one(conn, payment_id=payment_id)
            assert (paid["state"], status) == expected
    finally:
        await database.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_snapshots_reuse_their_connections_and_see_every_commit(
    database_url: str,
) -> None:
    """A snapshot's connection is kept for the next one: it must start a new snapshot
    each time (never the one of its last use), and two open at once are two."""
    database = await Database.connect(database_url)
    try:
        payment_id = await _seed(database)
        seen = []
        for state in ("cancelled", "refunded"):
            async with database.read() as conn:
                seen.append(
                    (
                        driver_of(conn),
                        (await PAYMENT_BY_ID.one(conn, payment_id=payment_id))["state"],
                    )
                )
            async with database.transaction() as conn:
                await update_by_id(payments, ("state",)).run(conn, where_id=payment_id, state=state)
        async with database.read() as first, database.read() as second:
            assert driver_of(first) is not driver_of(second)
            assert (await PAYMENT_BY_ID.one(second, payment_id=payment_id))["state"] == "refunded"
        assert seen[0][0] is seen[1][0]  # the same connection, used twice
        assert [state for _, state in seen] == ["paid", "cancelled"]
    finally:
        await database.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_kept_sqlite_connection_that_cannot_roll_back_is_replaced(
    database_url: str,
) -> None:
    """The writer's connection and a reader's are kept between transactions; one whose
    transaction cannot be ended (here: closed under it) must not stop every later one."""
    database = await Database.connect(database_url)
    try:
        payment_id = await _seed(database)
        with pytest.raises(RuntimeError):
            async with database.transaction() as conn:
                broken = driver_of(conn)
                assert broken is not None
                broken.stop()  # the driver's connection is gone mid-transaction
                raise RuntimeError("and the transaction fails")
        with pytest.raises(RuntimeError):
            async with database.read() as conn:
                gone = driver_of(conn)
                assert gone is not None
                gone.stop()
                raise RuntimeError("a read fails the same way")
        async with database.transaction() as conn:
            assert driver_of(conn) is not broken
            await update_by_id(payments, ("state",)).run(
                conn, where_id=payment_id, state="refunded"
            )
        async with database.read() as conn:
            assert driver_of(conn) is not gone
            assert (await PAYMENT_BY_ID.one(conn, payment_id=payment_id))["state"] == "refunded"
    finally:
        await database.close()
