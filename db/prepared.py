"""Statements of the money path, built once and run without SQLAlchemy's per-call work.

A statement is still written once, in SQLAlchemy Core, for both databases: a module-level
`Prepared(select(...).where(col == bindparam("name")))`. What changes is how it runs: it
is compiled once per database, and each call hands its SQL straight to the driver of the
current transaction, with SQLAlchemy's own bind and result processors applied to the
values (so a datetime, a JSON document or a boolean comes back exactly as through
`conn.execute`), and a driver's error raised as SQLAlchemy's class.

- **SQLite**: the in-loop `sqlite3` connection (db/sqlite_inloop.py), which keeps the
  prepared statement in its cache. A point read inside a transaction costs about 36 µs
  this way against about 280 µs through `conn.execute` with the statement prebuilt, and
  420 µs built per call (docs/benchmarks.md).
- **PostgreSQL**: asyncpg, under SQLAlchemy's adapter (`_on_asyncpg`).
- SQLite's report connections (aiosqlite, on a thread): `conn.execute`, prebuilt.

Rows come back as plain mappings (column name to value) on both databases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from types import ModuleType
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

from db.sqlite_inloop import driver_of

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    """What a call needs, worked out once per statement: the SQL, the order of its
    parameters with their processors, the bound values fixed in the statement, and the
    result's column names with theirs."""

    sql: str
    params: tuple[tuple[str, Processor], ...]
    fixed: Mapping[str, Any]
    keys: tuple[str, ...]
    results: tuple[Processor, ...]


class Prepared:
    """A Core statement built once (values as `bindparam`s), run by the database's runner.

    `build` is the statement, or a function of the dialect's module (`sqlite` or
    `postgresql`) for statements spelled per dialect in Core, as `insert(...)
    .on_conflict_do_nothing(...)` is."""

    def __init__(self, build: Executable | Callable[[ModuleType], Executable]) -> None:
        self._build = build
        self._statements: dict[str, Executable] = {}
        self._compiled: dict[str, _Compiled] = {}

    def target(self, dialect: Dialect) -> Table:
        """The table a write changes (`run_together` needs it)."""
        statement = self.statement(dialect)
        table = getattr(statement, "table", None)
        if not isinstance(table, Table):
            raise ValueError(f"not a write of one table: {statement}")
        return table

    @property
    def reads_only(self) -> bool:
        """A `SELECT` (a statement spelled per dialect is taken to write)."""
        return isinstance(self._build, Select)

    def statement(self, dialect: Dialect) -> Executable:
        built = self._statements.get(dialect.name)
        if built is None:
            module = postgresql if dialect.name == "postgresql" else sqlite
            built = self._build(module) if callable(self._build) else self._build
            self._statements[dialect.name] = built
        return built

    async def all(self, conn: AsyncConnection, **params: Any) -> list[Mapping[str, Any]]:
        ran = await self._on_driver(conn, params)
        if ran is None:
            result = await conn.execute(self.statement(conn.dialect), params)
            return [dict(row) for row in result.mappings()]
        compiled, rows, _count = ran
        return [_row(compiled, values) for values in rows]

    async def one_or_none(self, conn: AsyncConnection, **params: Any) -> Mapping[str, Any] | None:
        rows = await self.all(conn, **params)
        if len(rows) > 1:
            raise LookupError(f"more than one row: {self._statements}")
        return rows[0] if rows else None

    async def one(self, conn: AsyncConnection, **params: Any) -> Mapping[str, Any]:
        row = await self.one_or_none(conn, **params)
        if row is None:
            raise LookupError(f"no row: {self._statements}")
        return row

    async def run(self, conn: AsyncConnection, **params: Any) -> int:
        """Execute a statement that returns no rows; the number of rows it changed."""
        ran = await self._on_driver(conn, params)
        if ran is None:
            result = await conn.execute(self.statement(conn.dialect), params)
            return int(result.rowcount)
        return ran[2]

    async def _on_driver(
        self, conn: AsyncConnection, params: Mapping[str, Any]
    ) -> tuple[_Compiled, Sequence[Sequence[Any]], int] | None:
        """Rows and row count from the driver itself; None where SQLAlchemy runs it (the
        aiosqlite connections of SQLite's long reports)."""
        dialect = conn.dialect
        if dialect.driver == "asyncpg":
            compiled = self._compiled_for(dialect)
            adapted = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
            rows, count = await _on_asyncpg(adapted, compiled, _values(compiled, params))
            return compiled, rows, count
        raw = driver_of(conn)
        if raw is None:
            return None
        compiled = self._compiled_for(dialect)
        cursor = await raw.run(compiled.sql, _values(compiled, params))
        return compiled, cursor.fetchall(), cursor.rowcount

    def _compiled_for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _compile(self.statement(dialect), dialect)
        return compiled


async def _on_asyncpg(
    adapted: Any, compiled: _Compiled, values: list[Any]
) -> tuple[Sequence[Sequence[Any]], int]:
    """One statement on the asyncpg connection under SQLAlchemy's adapter: asyncpg's own
    prepared-statement cache, no SQLAlchemy execution path (about 180 µs a point read
    here against 410 µs for a prebuilt statement through `conn.execute`).

    The adapter begins its transaction lazily, at the first statement it runs, so a
    transaction whose first statement runs here must begin it here (the same call the
    adapter makes: a read-only snapshot begins READ ONLY). Errors are raised as
    SQLAlchemy raises them, translated by the adapter's own table. These two use
    SQLAlchemy's private adapter API (pinned in requirements.txt); tests/test_prepared.py
    fails if either stops working: a first prepared write rolled back, a constraint
    failure raised as IntegrityError."""
    try:
        if adapted._transaction is None:
            await adapted._start_transaction()
        connection = adapted.driver_connection
        if compiled.keys:
            rows = await connection.fetch(compiled.sql, *values)
            return rows, len(rows)
        status = await connection.execute(compiled.sql, *values)
        return (), int(status.rsplit(" ", 1)[-1])  # "UPDATE 1", "INSERT 0 1"
    except Exception as error:
        if isinstance(error, DBAPIError):
            raise
        try:
            adapted._handle_exception(error)
        except adapted.dbapi.Error as translated:
            raise DBAPIError.instance(
                compiled.sql, values, translated, adapted.dbapi.Error
            ) from error
        raise


Call = tuple["Prepared", Mapping[str, Any]]  # a statement and its parameters, not yet run


async def run_together(conn: AsyncConnection, *calls: Call) -> None:
    """Run writes whose results nobody reads, in order, within the current transaction.

    On PostgreSQL they go as one statement, each a data-modifying CTE (`WITH w0 AS
    (UPDATE …), w1 AS (INSERT …) SELECT 1`): one round trip instead of one each. They
    then run on one snapshot and none sees the others' changes, so no two may write the
    same table (refused here: two changes of one row in one statement are undefined).
    Elsewhere they run one after the other, with the same effect."""
    tables = [prepared.target(conn.dialect) for prepared, _params in calls]
    if len(set(tables)) < len(tables):
        raise ValueError(f"run_together: two writes of one table: {tables}")
    if conn.dialect.driver != "asyncpg" or len(calls) == 1:
        for prepared, params in calls:
            await prepared.run(conn, **params)
        return
    members = tuple(prepared for prepared, _params in calls)
    compiled = _together(members, conn.dialect)
    values = [
        value
        for prepared, params in calls
        for value in _values(prepared._compiled_for(conn.dialect), params)
    ]
    adapted = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
    await _on_asyncpg(adapted, compiled, values)


@cache
def _together(members: tuple[Prepared, ...], dialect: Dialect) -> _Compiled:
    """The one statement `run_together` sends for `members` on PostgreSQL: each member's
    SQL as a CTE, its `$n` parameters numbered after the members' before it."""
    parts, offset = [], 0
    for number, prepared in enumerate(members):
        compiled = prepared._compiled_for(dialect)
        sql = re.sub(r"\$(\d+)", partial(_renumber, offset=offset), compiled.sql)
        parts.append(f"w{number} AS ({sql})")
        offset += len(compiled.params)
    return _Compiled(f"WITH {', '.join(parts)} SELECT 1", (), {}, (), ())


def _renumber(match: re.Match[str], offset: int) -> str:
    return f"${int(match[1]) + offset}"


def as_mapping(row: object) -> Mapping[str, Any]:
    """A Core row's mapping, or the row itself when it is a mapping already (from here)."""
    return cast(Mapping[str, Any], getattr(row, "_mapping", row))


def row_update(table: Table, row_id: int, **values: Any) -> Call:
    """`UPDATE table SET … WHERE id = row_id` as a call (`run_together`)."""
    return update_by_id(table, tuple(sorted(values))), {"where_id": row_id, **values}


@cache
def update_by_id(table: Table, columns: tuple[str, ...]) -> Prepared:
    """`UPDATE table SET column = :column, … WHERE id = :where_id`, one per set of columns
    (for the callers that pass the values to change as keywords)."""
    return Prepared(
        update(table)
        .where(table.c.id == bindparam("where_id"))
        .values({column: bindparam(column) for column in columns})
    )


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError(f"a prepared statement cannot expand its parameters: {statement}")
    processors = compiled._bind_processors
    fixed = {
        name: bind.value
        for bind, name in compiled.bind_names.items()
        if bind.value is not None or not bind.required
    }
    results = compiled._result_columns
    return _Compiled(
        sql=compiled.string,
        params=tuple((name, processors.get(name)) for name in compiled.positiontup or ()),
        fixed=fixed,
        keys=tuple(column.keyname for column in results),
        results=tuple(column.type._cached_result_processor(dialect, None) for column in results),
    )


def _values(compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
    values = []
    for name, processor in compiled.params:
        value = params[name] if name in params else compiled.fixed[name]
        values.append(processor(value) if processor is not None and value is not None else value)
    return values


def _row(compiled: _Compiled, values: Sequence[Any]) -> dict[str, Any]:
    return {
        key: processor(value) if processor is not None else value
        for key, processor, value in zip(compiled.keys, compiled.results, values, strict=True)
    }
