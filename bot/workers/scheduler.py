"""The in-process scheduler of the subscription lifecycle (reminders, expiry notices) and
of the admins' daily payment digests (db/digest.py).

Every instance runs one, and they agree through the database: each poll tries to claim
the job's next run (`db.jobs.claim`), and only the instance whose claim matched does the
work, in the same transaction. The notices it queues carry "once per period" dedupe keys,
so even a run repeated after a crash queues nothing twice. No in-memory timer decides
anything: a restart, a deploy overlap or a second instance cannot fire a run twice. The
digests need no job row: each admin's digest watermark is its own claim.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from datetime import timedelta

from db import digest, jobs, lifecycle
from db.clock import Clock, to_datetime
from db.database import Database

log = logging.getLogger(__name__)

JOB = "subscription_lifecycle"
INTERVAL = timedelta(minutes=1)
# Instances' clocks may differ a little; rescanning that much costs nothing (dedupe keys).
CLOCK_SKEW_GRACE = timedelta(minutes=5)
# The very first run looks back this far, so a fresh deploy does not message old expiries.
FIRST_RUN_LOOKBACK = timedelta(days=1)


class Scheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        reminder_days: Sequence[int],
        *,
        admin_ids: Collection[int] = (),
        poll_seconds: float = 20.0,
    ) -> None:
        self.db, self.clock = db, clock
        self.reminder_days = tuple(reminder_days)
        self.admin_ids = frozenset(admin_ids)
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        """Poll for due runs until cancelled; a failed run is logged and tried again.

        Each run is shielded: a shutdown never cuts its transaction in half (which the
        database driver would report as some other error); the cancellation itself always
        propagates, so the app's shutdown never waits on this loop.
        """
        while True:
            for work in (self.run_due, self.run_digests):
                try:
                    await asyncio.shield(work())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduler: %s failed; retrying at the next poll", work.__name__)
            await asyncio.sleep(self.poll_seconds)

    async def run_due(self) -> int | None:
        """Run the lifecycle job if it is due and nobody else took it.

        Returns how many notices were queued, or None when this instance did not run it.
        """
        now = to_datetime(self.clock())
        async with self.db.transaction() as conn:
            claim = await jobs.claim(conn, JOB, now, INTERVAL)
            if claim is None:
                return None
            since = (
                claim.last_run_at - CLOCK_SKEW_GRACE
                if claim.last_run_at
                else now - FIRST_RUN_LOOKBACK
            )
            queued = await lifecycle.queue_reminders(conn, since, now, self.reminder_days)
            queued += await lifecycle.queue_expiry_notices(conn, since, now)
            await jobs.complete(conn, JOB, now)
        if queued:
            log.info("scheduler: %s lifecycle notices queued", queued)
        return queued

    async def run_digests(self) -> int:
        """Queue the daily digest of every admin whose hour has passed; how many."""
        if not self.admin_ids:
            return 0
        async with self.db.transaction() as conn:
            queued = await digest.queue_due(conn, self.admin_ids, self.clock())
        if queued:
            log.info("scheduler: %s admin digests queued", queued)
        return queued
