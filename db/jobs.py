"""Periodic jobs shared by every instance: whoever claims a due run does it, once.

A claim is one conditional UPDATE (`... WHERE next_run_at <= now`) that also pushes
`next_run_at` one interval ahead, so of several instances polling the same row exactly
one sees its UPDATE match; the others match nothing and move on. The pushed time doubles
as the lease: an instance that dies mid-run is replaced at the next interval, and the
work itself is idempotent, so a repeated run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from db.schema import jobs


@dataclass(frozen=True)
class Claim:
    """A run this instance owns; `last_run_at` is the `now` of the last completed run."""

    name: str
    last_run_at: datetime | None


async def claim(
    conn: AsyncConnection, name: str, now: datetime, interval: timedelta
) -> Claim | None:
    """Own the job's run at `now` if it is due, else None (not due, or another instance)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(jobs)
        .values(name=name, next_run_at=now)
        .on_conflict_do_nothing(index_elements=[jobs.c.name])
    )
    row = (
        await conn.execute(
            update(jobs)
            .where(jobs.c.name == name, jobs.c.next_run_at <= now)
            .values(next_run_at=now + interval)
            .returning(jobs.c.last_run_at)
        )
    ).first()
    return Claim(name, row.last_run_at) if row else None


async def complete(conn: AsyncConnection, name: str, now: datetime) -> None:
    """Move the job's watermark to `now` (never backwards: instance clocks may differ)."""
    await conn.execute(
        update(jobs)
        .where(jobs.c.name == name, or_(jobs.c.last_run_at.is_(None), jobs.c.last_run_at < now))
        .values(last_run_at=now)
    )
