"""A subscription is a ledger of paid periods; this module is the one place for its rules.

Every credited payment adds one row to `periods` (its tariff and the time its order
recorded); a refund marks that row refunded at a moment. Nothing else is stored: the
plan at any moment is computed by replaying those events in time order, so the answer
is exact after any number of switches and refunds, in any order, and computing it twice
gives the same result. The rules (docs/ledger.md, "The rules, as a buyer sees them"):

- **Same tariff:** a new period follows that tariff's earlier periods (first in, first
  used).
- **Another tariff:** nothing is converted at any price. Whenever time passes, the
  tariff with the highest `rank` (db/tariffs.py `CATALOGUE`) that has time left runs;
  the others are paused and resume when it is used up.
- **Nothing left:** a period credited then starts at once.
- **A refund removes that payment's period:** its unused part disappears (so whatever
  was queued after it runs earlier by that much); the part already used stays used. If
  nothing remains afterwards, the plan ended at that moment *by the refund*, which is
  not an expiry (no "expired" message, `/myplan` says "refunded").

`users.tariff` / `users.tariff_expires_at` are a cache of the result, rewritten by
`sync_user` in the same transaction as every change of the ledger: the tariff of the
plan's last stretch and the plan's end (the scheduler's reminders and expiry message
follow the end of the last period, and must stay one indexed range scan). When the plan
ended by a refund, `tariff` is NULL, so the scheduler never announces that end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.clock import to_datetime, to_ms
from db.prepared import Call, Prepared, as_mapping, run_together
from db.schema import periods, users
from db.tariffs import CATALOGUE_BY_CODE
from db.users import tariff_update

DAY_MS = 86_400_000
# What made a period (`periods.kind`): a credited payment, the migration of the one-row
# model (0005), or an admin's gift (db/gifts.py). Only a payment is ever money.
PAYMENT, OPENING, GIFT = "payment", "opening", "gift"


def rank(tariff: str) -> int:
    """A tariff's precedence: from the catalogue, never from its name or price."""
    entry = CATALOGUE_BY_CODE.get(tariff)
    return entry.rank if entry else 0


@dataclass(frozen=True)
class Period:
    """One credited payment's time (`payment_id` None: an opening period from the
    migration of the one-row model, or an admin's gift; `kind` says which)."""

    id: int
    user_id: int
    payment_id: int | None
    tariff: str
    duration_ms: int
    credited_at: int  # ms
    refunded_at: int | None  # ms
    kind: str = PAYMENT


@dataclass(frozen=True)
class Segment:
    """A stretch of time during which one tariff ran without a break: [start, end)."""

    tariff: str
    start: int
    end: int


@dataclass(frozen=True)
class PeriodFate:
    """What became of one period in the replay: its time used, whether and how much a
    refund removed, and when it ran out (projected for the future)."""

    period_id: int
    used_ms: int
    removed_ms: int
    end: int | None  # when its time ran out (or was removed); None: never ran or left


@dataclass(frozen=True)
class Timeline:
    """The replayed ledger: every stretch of tariff (past and projected), per-period
    fates, and whether the plan's end was caused by a refund."""

    segments: tuple[Segment, ...]
    fates: dict[int, PeriodFate] = field(default_factory=dict)
    # The kind of the period whose removal left nothing (a payment refunded, a gift taken
    # back): the plan ended then, and no "expired" message follows.
    ended_by: str | None = None

    @property
    def ended_by_refund(self) -> bool:
        """The plan ended because time was removed, not because it ran out."""
        return self.ended_by is not None

    @property
    def end(self) -> int | None:
        return self.segments[-1].end if self.segments else None

    def ahead(self, now: int) -> tuple[Segment, ...]:
        """The stretches still to run at `now` (the current one cut to start at `now`)."""
        return tuple(
            Segment(s.tariff, max(s.start, now), s.end) for s in self.segments if s.end > now
        )

    def active(self, now: int) -> str | None:
        for segment in self.segments:
            if segment.start <= now < segment.end:
                return segment.tariff
        return None

    def granted_ms(self) -> int:
        return sum(segment.end - segment.start for segment in self.segments)


@dataclass
class _Running:
    period: Period
    left: int
    used: int = 0
    removed: int = 0
    end: int | None = None


def compute(ledger: Iterable[Period]) -> Timeline:
    """Replay credits and refunds in time order and project the rest (a pure function).

    Events at the same moment: credits before refunds, then by period id, so the order
    the database returns rows in never changes the answer.
    """
    rows = sorted(ledger, key=lambda p: (p.credited_at, p.id))
    events: list[tuple[int, int, int, Period]] = [(p.credited_at, 0, p.id, p) for p in rows]
    # A refund stamped before its credit (two instances' clocks) counts at the credit.
    events += [
        (max(p.refunded_at, p.credited_at), 1, p.id, p) for p in rows if p.refunded_at is not None
    ]
    events.sort(key=lambda event: event[:3])
    running: dict[int, _Running] = {}
    segments: list[Segment] = []
    clock: int | None = None
    ended_by: str | None = None
    for moment, kind, _pid, period in events:
        if clock is not None:
            _advance(running, segments, clock, moment)
        clock = moment if clock is None else max(clock, moment)
        if kind == 0:
            running[period.id] = _Running(period, period.duration_ms)
            ended_by = None
            continue
        state = running[period.id]
        if state.left > 0:
            state.removed, state.left, state.end = state.left, 0, clock
            if not any(other.left for other in running.values()):
                ended_by = period.kind
    if clock is not None:
        _advance(running, segments, clock, None)
    fates = {
        pid: PeriodFate(pid, state.used, state.removed, state.end) for pid, state in running.items()
    }
    return Timeline(tuple(segments), fates, ended_by)


def _advance(
    running: dict[int, _Running], segments: list[Segment], start: int, until: int | None
) -> None:
    """Let time pass from `start` to `until` (None: until every period is used up)."""
    now = start
    while until is None or now < until:
        live = [state for state in running.values() if state.left > 0]
        if not live:
            return
        top = max(rank(state.period.tariff) for state in live)
        current = min(
            (state for state in live if rank(state.period.tariff) == top),
            key=lambda state: (state.period.credited_at, state.period.id),
        )
        step = current.left if until is None else min(current.left, until - now)
        current.left -= step
        current.used += step
        if current.left == 0:
            current.end = now + step
        tariff = current.period.tariff
        if segments and segments[-1].tariff == tariff and segments[-1].end == now:
            segments[-1] = Segment(tariff, segments[-1].start, now + step)
        else:
            segments.append(Segment(tariff, now, now + step))
        now += step


# ---- the database side -------------------------------------------------------------


def _period(row: object) -> Period:
    mapping = as_mapping(row)
    return Period(**{name: mapping[name] for name in Period.__dataclass_fields__})


_PERIODS = Prepared(
    select(periods).where(periods.c.user_id == bindparam("user_id")).order_by(periods.c.id)
)
# The user's periods and cached plan in one statement (a ledger change needs both when
# the user has no periods yet): one row with NULL period columns when there are none.
_PERIODS_AND_CACHE = Prepared(
    select(
        periods,
        users.c.tariff.label("cached_tariff"),
        users.c.tariff_expires_at.label("cached_expires_at"),
    )
    .select_from(users.outerjoin(periods, periods.c.user_id == users.c.id))
    .where(users.c.id == bindparam("user_id"))
    .order_by(periods.c.id)
)
_INSERT_PERIOD = Prepared(
    insert(periods)
    .values(
        {
            column: bindparam(column)
            for column in ("user_id", "payment_id", "tariff", "duration_ms", "credited_at", "kind")
        }
    )
    .returning(periods.c.id)
)


async def user_periods(conn: AsyncConnection, user_id: int) -> list[Period]:
    return [_period(row) for row in await _PERIODS.all(conn, user_id=user_id)]


async def user_timeline(conn: AsyncConnection, user_id: int) -> Timeline:
    return compute(await user_periods(conn, user_id))


@dataclass(frozen=True)
class Credit:
    """A period about to be credited, not yet written: the user's timeline with it, and
    the writes that record it (`writes`: its row and the `users` cache), for the caller
    to run together with its own (`db.prepared.run_together`)."""

    before: list[Period]  # the user's ledger without it
    period: Period  # its id stands in for the one the insert will give (see plan_period)
    timeline: Timeline  # its fates name the period by that stand-in id
    cache: Call

    @property
    def writes(self) -> tuple[Call, Call]:
        return _insert_call(self.period), self.cache


async def plan_period(
    conn: AsyncConnection,
    user_id: int,
    payment_id: int | None,
    tariff: str,
    duration_ms: int,
    now_ms: int,
    kind: str = PAYMENT,
) -> Credit:
    """What crediting one period changes (the caller holds the user's row lock).

    The ledger is read once and the new period appended to it: the lock keeps anything
    else from changing it meanwhile. Its id is not known before the insert; ids grow, so
    any id above the user's others orders it as the real one will in `compute`."""
    ledger = await _ledger_for_change(conn, user_id, now_ms)
    period = Period(
        max((p.id for p in ledger), default=0) + 1,
        user_id,
        payment_id,
        tariff,
        duration_ms,
        now_ms,
        None,
        kind,
    )
    timeline = compute([*ledger, period])
    return Credit(ledger, period, timeline, tariff_update(user_id, *_cached_plan(timeline)))


async def add_period(
    conn: AsyncConnection,
    user_id: int,
    payment_id: int | None,
    tariff: str,
    duration_ms: int,
    now_ms: int,
) -> Timeline:
    """Credit one period (the caller holds the user's row lock) and refresh the cache."""
    credit = await plan_period(conn, user_id, payment_id, tariff, duration_ms, now_ms)
    await run_together(conn, *credit.writes)
    return credit.timeline


async def add_gift(
    conn: AsyncConnection, user_id: int, tariff: str, duration_ms: int, now_ms: int
) -> tuple[int, Timeline]:
    """Credit an admin's gift as a period of kind `gift` (the caller holds the user's
    row lock): the same rules as a paid period, no payment. Returns the period's id."""
    credit = await plan_period(conn, user_id, None, tariff, duration_ms, now_ms, GIFT)
    period = await _insert(conn, credit.period)
    await run_together(conn, credit.cache)
    return period.id, compute([*credit.before, period])  # fates by the period's real id


def _insert_call(period: Period) -> Call:
    """The insert of a new period (its `id` is the database's to give)."""
    return _INSERT_PERIOD, {
        "user_id": period.user_id,
        "payment_id": period.payment_id,
        "tariff": period.tariff,
        "duration_ms": period.duration_ms,
        "credited_at": period.credited_at,
        "kind": period.kind,
    }


async def _insert(conn: AsyncConnection, period: Period) -> Period:
    """Write a new period (its `id` is ignored); the period with the id it got."""
    statement, params = _insert_call(period)
    inserted = await statement.one(conn, **params)
    return replace(period, id=int(inserted["id"]))


@dataclass(frozen=True)
class Removal:
    """What a refund changed: the unused time it removed (0: the period was used up, or
    the payment had no period) and the timelines before and after."""

    removed_ms: int
    before: Timeline
    after: Timeline


async def refund_period(
    conn: AsyncConnection, user_id: int, payment_id: int, now_ms: int, fallback_ms: int = 0
) -> Removal:
    """Remove the payment's period at `now_ms` (the caller holds the user's row lock).

    A payment credited before the ledger existed has no period: its time is inside the
    user's opening period (converted into that period's tariff by the old rule), so up
    to `fallback_ms` (what it granted) of that period's unused time is removed instead."""
    ledger = await _ledger_for_change(conn, user_id, now_ms)
    before = compute(ledger)
    target = next((p for p in ledger if p.payment_id == payment_id and p.refunded_at is None), None)
    if target is None:
        return await _refund_from_opening(conn, user_id, ledger, before, fallback_ms, now_ms)
    return await _remove(conn, user_id, target, before, now_ms)


async def take_back_gift(
    conn: AsyncConnection, user_id: int, period_id: int, now_ms: int
) -> Removal:
    """Remove a gift period at `now_ms` exactly as a refund removes a payment's period
    (the unused part goes, later periods move earlier; the caller holds the user's row
    lock). A gift already taken back removes nothing."""
    ledger = await user_periods(conn, user_id)
    before = compute(ledger)
    target = next(
        (p for p in ledger if p.id == period_id and p.kind == GIFT and p.refunded_at is None),
        None,
    )
    if target is None:
        return Removal(0, before, before)
    return await _remove(conn, user_id, target, before, now_ms)


async def _remove(
    conn: AsyncConnection, user_id: int, target: Period, before: Timeline, now_ms: int
) -> Removal:
    """Mark `target` removed at `now_ms` and rewrite the cache."""
    await conn.execute(update(periods).where(periods.c.id == target.id).values(refunded_at=now_ms))
    after = await sync_user(conn, user_id)
    return Removal(after.fates[target.id].removed_ms, before, after)


async def _ledger_for_change(conn: AsyncConnection, user_id: int, now_ms: int) -> list[Period]:
    """The user's ledger, about to change (the caller holds the user's row lock).

    A user with no periods but a live cached plan (set before the ledger existed, or by
    hand) gets that plan written as an opening period first, as migration 0005 does, so
    the ledger never silently drops time the user has. Read in one statement with the
    cache: a first payment would otherwise cost a second read."""
    rows = await _PERIODS_AND_CACHE.all(conn, user_id=user_id)
    ledger = [_period(row) for row in rows if row["id"] is not None]
    if ledger or not rows:
        return ledger
    cache = rows[0]
    opening = cached_opening(user_id, cache["cached_tariff"], cache["cached_expires_at"], now_ms)
    return [] if opening is None else [await _insert(conn, opening)]


def cached_opening(
    user_id: int, tariff: str | None, expires_at: datetime | None, now_ms: int
) -> Period | None:
    """The opening period a live cached plan becomes (the time it has left from now), or
    None when the cache holds no live plan; its id is 0 until it is written."""
    if tariff is None or expires_at is None:
        return None
    left = to_ms(expires_at) - now_ms
    if left <= 0:
        return None
    return Period(0, user_id, None, tariff, left, now_ms, None, OPENING)


async def _refund_from_opening(
    conn: AsyncConnection,
    user_id: int,
    ledger: list[Period],
    before: Timeline,
    fallback_ms: int,
    now_ms: int,
) -> Removal:
    """Shorten the live opening period by min(`fallback_ms`, its unused time at now):
    the same effect as removing that much of its unused part."""
    opening = next((p for p in ledger if p.kind == OPENING and p.refunded_at is None), None)
    if opening is None or fallback_ms <= 0:
        return Removal(0, before, before)
    probe = [
        Period(**{**p.__dict__, "refunded_at": now_ms}) if p.id == opening.id else p for p in ledger
    ]
    removed = min(fallback_ms, compute(probe).fates[opening.id].removed_ms)
    if removed <= 0:
        return Removal(0, before, before)
    await conn.execute(
        update(periods)
        .where(periods.c.id == opening.id)
        .values(duration_ms=opening.duration_ms - removed)
    )
    return Removal(removed, before, await sync_user(conn, user_id))


async def sync_user(conn: AsyncConnection, user_id: int) -> Timeline:
    """Recompute the user's timeline and rewrite the `users` cache from it."""
    return await _write_cache(conn, user_id, await user_periods(conn, user_id))


async def _write_cache(conn: AsyncConnection, user_id: int, ledger: list[Period]) -> Timeline:
    """Rewrite the `users` cache from the user's whole ledger; its timeline."""
    timeline = compute(ledger)
    await run_together(conn, tariff_update(user_id, *_cached_plan(timeline)))
    return timeline


def _cached_plan(timeline: Timeline) -> tuple[str | None, datetime | None]:
    """What `users.tariff` and `users.tariff_expires_at` hold for a timeline."""
    if not timeline.segments:
        return None, None
    last = timeline.segments[-1]
    return (None if timeline.ended_by_refund else last.tariff), to_datetime(last.end)


def describe(segments: Sequence[Segment]) -> list[list[object]]:
    """Segments as JSON for an outbox payload: `[[tariff, start_ms, end_ms], ...]`."""
    return [[s.tariff, s.start, s.end] for s in segments]
