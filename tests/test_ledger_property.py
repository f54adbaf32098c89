"""Properties of the ledger (db/ledger.py) over random buys and refunds of both tariffs
at random times:

- the time granted equals the periods of unrefunded payments plus the used part of the
  refunded ones (nothing else is ever granted, nothing paid is lost);
- no time is granted twice (stretches never overlap), and none before it was paid;
- a refund never leaves more time than before it, nor a later end;
- computing the plan twice, or from the rows in another order, gives the same answer.

The first test replays the pure rules (many examples, shrunk on failure); the second
runs random sequences through the database functions the providers use (`add_period`,
`refund_period`) on SQLite and PostgreSQL and checks the cached plan is the ledger's.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from db import ledger
from db.clock import to_datetime
from db.database import Database
from db.schema import users

DAY = ledger.DAY_MS
T0 = 1_800_000_000_000

# (gap before it in ms, "buy" tariff days | "refund" which-credit)
ops = st.lists(
    st.tuples(
        st.integers(0, 50 * DAY),
        st.one_of(
            st.tuples(st.just("buy"), st.sampled_from(["PLUS", "PRO"]), st.integers(1, 60)),
            st.tuples(st.just("refund"), st.integers(0, 30), st.just(0)),
        ),
    ),
    max_size=14,
)


def build(
    sequence: list[tuple[int, tuple[str, object, int]]],
) -> list[tuple[list[ledger.Period], bool]]:
    """The ledger after each step and whether the step was a refund (a refund when
    nothing is left to refund is skipped)."""
    rows: list[ledger.Period] = []
    states = []
    now = T0
    for gap, (kind, what, days) in sequence:
        now += gap
        if kind == "buy":
            rows.append(
                ledger.Period(len(rows) + 1, 1, len(rows) + 1, str(what), days * DAY, now, None)
            )
        else:
            live = [p for p in rows if p.refunded_at is None]
            if not live:
                continue
            target = live[int(str(what)) % len(live)]
            rows = [replace(p, refunded_at=now) if p.id == target.id else p for p in rows]
        states.append((list(rows), kind == "refund"))
    return states


def check_invariants(
    rows: list[ledger.Period], previous: ledger.Timeline | None = None
) -> ledger.Timeline:
    """Check the invariants; `previous` is the timeline before a refund step."""
    timeline = ledger.compute(rows)
    assert ledger.compute(rows) == timeline
    assert ledger.compute(list(reversed(rows))) == timeline
    paid = sum(
        p.duration_ms if p.refunded_at is None else timeline.fates[p.id].used_ms for p in rows
    )
    assert timeline.granted_ms() == paid
    for fate, period in ((timeline.fates[p.id], p) for p in rows):
        assert fate.used_ms + fate.removed_ms == period.duration_ms
        if period.refunded_at is None:
            assert fate.removed_ms == 0
        else:  # nothing of a refunded period runs after its refund
            assert fate.end is not None and fate.end <= period.refunded_at
    first_credit = min(p.credited_at for p in rows)
    end = first_credit
    for segment in timeline.segments:
        assert segment.start >= end and segment.end > segment.start
        end = segment.end
    if previous is not None:  # the step was a refund: never more time, never a later end
        assert timeline.granted_ms() <= previous.granted_ms()
        assert (timeline.end or 0) <= (previous.end or 0)
    return timeline


@settings(max_examples=1000, deadline=None)
@given(ops)
def test_ledger_invariants(sequence: list[tuple[int, tuple[str, object, int]]]) -> None:
    previous: ledger.Timeline | None = None
    for rows, refund in build(sequence):
        previous = check_invariants(rows, previous if refund else None)


async def test_random_sequences_through_the_database(database_url: str) -> None:
    """The database path gives the pure answer, and the cache equals it, each step."""
    db = await Database.connect(database_url)
    rng = random.Random(11)
    try:
        for user_id in range(1, 41):
            async with db.transaction() as conn:
                await conn.execute(
                    insert(users).values(id=user_id, first_name="P", created_at=to_datetime(T0))
                )
            now, credited = T0, 0
            for _step in range(rng.randint(3, 10)):
                now += rng.randint(0, 40 * DAY)
                async with db.transaction() as conn:
                    if credited and rng.random() < 0.35:
                        before = await ledger.user_timeline(conn, user_id)
                        removal = await ledger.refund_period(
                            conn, user_id, user_id * 100 + rng.randint(1, credited), now
                        )
                        assert removal.before == before
                        assert removal.after.granted_ms() <= before.granted_ms()
                        assert (removal.after.end or 0) <= (before.end or 0)
                    else:
                        credited += 1
                        await _payment(conn, user_id * 100 + credited, user_id)
                        tariff = rng.choice(["PLUS", "PRO"])
                        await ledger.add_period(
                            conn, user_id, user_id * 100 + credited, tariff, 30 * DAY, now
                        )
                    rows = await ledger.user_periods(conn, user_id)
                    timeline = check_invariants(rows)
                    cached = (
                        await conn.execute(
                            select(users.c.tariff, users.c.tariff_expires_at).where(
                                users.c.id == user_id
                            )
                        )
                    ).one()
                    assert cached.tariff_expires_at == to_datetime(timeline.end or 0)
                    last = timeline.segments[-1].tariff if timeline.segments else None
                    assert cached.tariff == (None if timeline.ended_by_refund else last)
    finally:
        await db.close()


async def _payment(conn, payment_id: int, user_id: int) -> None:  # type: ignore[no-untyped-def]
    """A paid payment row for the period to reference (periods.payment_id is a key)."""
    from db.schema import orders, payments

    await conn.execute(
        insert(orders).values(
            id=payment_id, merchant_trans_id=f"p{payment_id}", user_id=user_id, tariff="PLUS",
            amount=1, days=30, status="paid", created_at=to_datetime(T0),
        )
    )  # fmt: skip
    await conn.execute(
        insert(payments).values(
            id=payment_id, provider="click", provider_id=str(payment_id), order_id=payment_id,
            amount=1, state="paid", create_time=T0,
        )
    )  # fmt: skip


def test_a_refund_stamped_before_its_credit_counts_at_the_credit() -> None:
    """Two instances' clocks may differ: such a refund removes the whole period."""
    timeline = ledger.compute([ledger.Period(1, 1, 1, "PLUS", DAY, T0, T0 - 5)])
    assert timeline.segments == () and timeline.fates[1].removed_ms == DAY
    assert timeline.ended_by_refund
