"""The outbox worker: delivers every queued notice, in order per user, at Telegram's pace.

A notice is leased (claimed) in one transaction, sent, then marked sent in its own short
transaction right after Telegram's OK. A notice is sent twice only if the process dies in
that gap (one UPDATE of one row by primary key): the lease then runs out and the notice is
sent again. Nothing is held between the OK and that UPDATE: the pacer is waited for
before the send, never after it. A notice is never sent on a lease that ran out while it
waited its turn (another instance may have it by then).

Telegram's answers decide what happens next:
- 429: this notice waits exactly `retry_after` and is sent again; everyone else is paused
  for as long (the limit is the bot's, not the chat's);
- 403, "chat not found", "user is deactivated": the user is marked unreachable and the
  notice closed with the reason, never retried; any other 400 closes it too (a malformed
  message would fail forever);
- 5xx, timeouts, network errors: the notice goes back to the queue with an exponential,
  capped backoff, and all sending pauses likewise, so an outage of minutes costs a few
  requests, not thousands; the first success ends the pause.

Several instances: only the one holding the sender lock (`db/send_rate.py`) claims and
sends, so the bot's rate is one pacer's however many instances run; the others stand by
and take over when it stops or dies. A holder that loses the lock stops at once: it
sends nothing more, drops the notices still waiting their turn (their lease runs out and
the new holder sends them), and lets only the sends already on the wire finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.utils.i18n import I18n

from bot.admin import broadcast
from bot.workers import notices
from bot.workers.pacing import PACED, Pacer
from db import broadcasts, outbox
from db.clock import Clock, to_datetime
from db.database import Database
from db.send_rate import CHECK_SECONDS, SenderLock, sender_lock_for
from db.users import set_reachable

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 10
LEASE_MARGIN_SECONDS = 10
UNREACHABLE_MARKERS = ("chat not found", "user is deactivated", "bot was blocked")
MAX_RETRY_AFTER_ROUNDS = 5  # then the notice goes back to the queue for `retry_after`
MAX_SLOW_CHECKS = 3  # a broadcast row's status check that ran late takes a fresh slot
MARK_ATTEMPTS = 3


@dataclass(frozen=True)
class Backoff:
    """Delays after failures: `base * 2**n` seconds, never more than `cap`."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.base * 2.0 ** min(failures, 30), self.cap)


class Notifier:
    """One per process; `run` is its task. Shares the app's `Pacer` with the bot's replies."""

    def __init__(
        self,
        db: Database,
        bot: Bot,
        i18n: I18n,
        clock: Clock,
        pacer: Pacer,
        *,
        idle_seconds: float = 1.0,
        backoff: Backoff = Backoff(),
        sender_lock: SenderLock | None = None,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.db, self.bot, self.i18n, self.clock = db, bot, i18n, clock
        self.sender_lock = sender_lock if sender_lock is not None else sender_lock_for(db)
        self.check_seconds = check_seconds
        self.pacer = pacer
        rate_per_second = pacer.rate_per_second
        self.idle_seconds = idle_seconds
        self.backoff = backoff
        # Two seconds of sends in flight keep the pacer busy however slow the round trip.
        self.capacity = max(4, math.ceil(rate_per_second * 2))
        # Covers a claimed notice's normal wait (its place in the queue, its chat's second)
        # and the send. A longer wait (an outage pause) gives the notice up instead of
        # sending it late, so a killed process's claimed notices are free again soon.
        self.lease = timedelta(
            seconds=self.capacity / rate_per_second + SEND_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS
        )
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._sending: set[int] = set()  # notices between the send and its mark
        self._stopping = False
        # True while this instance may put a send on the wire: it holds the sender lock
        # (a bare `deliver`, outside `run`, is allowed to send).
        self._may_send = True
        self._holding = False
        self._sending_from = 0.0  # monotonic: the first send after taking the lock
        self._lock_ops = asyncio.Lock()  # one lock operation (acquire/check/release) at a time
        self._outage_failures = 0
        self._wakeup = asyncio.Event()
        db.listen(outbox.ENQUEUED, self._wakeup.set)

    async def run(self) -> None:
        """Claim and send until `stop` (or cancelled), while this instance holds the sender
        lock; a failing round is logged and the loop goes on."""
        self._may_send = False
        keeper = asyncio.create_task(self._keep_sender_lock(), name="sender-lock")
        try:
            while not self._stopping:
                self._wakeup.clear()
                if not self._is_sender():
                    await self._nap(self._standby_seconds())
                    continue
                free = self.capacity - len(self._in_flight)
                claimed = await self._claim(free) if free > 0 else 0
                if claimed < free or free <= 0:
                    await self._nap(self.idle_seconds)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            if not self._stopping:  # cancelled outright; `stop` drains the graceful way
                tasks = list(self._in_flight.values())
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self._release_sender_lock()

    async def _nap(self, seconds: float) -> None:
        """Wait for a wakeup, at most `seconds`.

        Not `asyncio.wait_for`: on Python 3.11 a cancel that arrives in the same loop turn
        as the wakeup is lost (gh-86296), and the notifier would run on after shutdown.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming; let sends already on the wire finish and be marked, within
        `grace_seconds`; drop the notices still waiting their turn (their lease runs out
        and an instance sends them later: not sent, so never sent twice). Then give the
        sender lock up, so a standby instance takes over.

        Called at shutdown before the bot's HTTP session closes, so no send in flight
        fails and gets re-queued after Telegram delivered it.
        """
        self._stopping = True
        self._may_send = False
        self._wakeup.set()
        tasks = self._drop_waiting()
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._release_sender_lock()

    def _drop_waiting(self) -> list[asyncio.Task[None]]:
        """Cancel the deliveries not yet on the wire; return every delivery task."""
        for notice_id, task in list(self._in_flight.items()):
            if notice_id not in self._sending:
                task.cancel()
        return list(self._in_flight.values())

    def _is_sender(self) -> bool:
        return self._holding and time.monotonic() >= self._sending_from

    def _standby_seconds(self) -> float:
        if self._holding:  # waiting out the hand-over window
            return max(0.01, self._sending_from - time.monotonic())
        return self.check_seconds

    async def _keep_sender_lock(self) -> None:
        """Every `check_seconds`: a standby tries to take the lock, the holder re-checks it.

        A task of its own, so a slow claim never delays the check: the holder learns of a
        lost lock within the check interval plus its timeout, which the next holder's
        hand-over wait covers (`db/send_rate.py`).
        """
        while not self._stopping:
            try:
                async with self._lock_ops:
                    if self._stopping:
                        return
                    if self._holding:
                        if not await self.sender_lock.still_held():
                            self._lost_sender_lock()
                    elif await self.sender_lock.acquire():
                        self._holding = True
                        self._sending_from = time.monotonic() + self.sender_lock.takeover_seconds
                        self._may_send = True
                        self._wakeup.set()
                        log.info("notifier: this instance sends the bot's messages now")
            except Exception:
                log.exception("notifier: the sender lock check failed; retrying")
            await asyncio.sleep(self.check_seconds)

    def _lost_sender_lock(self) -> None:
        self._holding = False
        self._may_send = False
        self._drop_waiting()
        log.warning("notifier: lost the sender lock; standing by")

    async def _release_sender_lock(self) -> None:
        async with self._lock_ops:
            self._holding = False
            self._may_send = False
            await self.sender_lock.release()

    async def _claim(self, limit: int) -> int:
        lease_ends = self._lease_ends()  # taken before the claim: never later than the lease
        try:
            # Shielded: a shutdown never cuts a transaction in half (the claimed notices of
            # a cancelled round simply wait for their lease).
            batch = await asyncio.shield(self._claim_due(limit))
        except Exception:
            log.exception("notifier: claiming notices failed; retrying")
            return 0
        for notice in batch:
            task = asyncio.create_task(
                self._deliver_logged(notice, lease_ends), name=f"notice-{notice.id}"
            )
            self._in_flight[notice.id] = task
        return len(batch)

    async def _claim_due(self, limit: int) -> list[outbox.Notice]:
        async with self.db.transaction() as conn:
            return await outbox.claim_due(
                conn, to_datetime(self.clock()), limit, self.lease, list(self._in_flight)
            )

    def _lease_ends(self) -> float:
        """A lease taken now, as this process measures it, minus the time a send may take."""
        return time.monotonic() + self.lease.total_seconds() - SEND_TIMEOUT_SECONDS

    async def _deliver_logged(self, notice: outbox.Notice, lease_ends: float) -> None:
        PACED.set(True)  # this task's context only: its sends wait for their own slots
        try:
            await self.deliver(notice, lease_ends)
        except Exception:
            # The lease runs out and the notice is tried again: nothing is dropped.
            log.exception("notifier: notice %s failed unexpectedly", notice.id)
        finally:
            del self._in_flight[notice.id]
            self._wakeup.set()

    async def deliver(self, notice: outbox.Notice, lease_ends: float) -> None:
        """Send one notice and record the outcome (sent, closed, or queued for later).

        A notice whose lease ran out while it waited (long pauses in an outage) is not
        sent: another instance may hold it by now. It is simply due again.
        """
        language = notice.language or self.i18n.default_locale
        payload = notice.payload
        if notice.broadcast_id is not None:
            payload = {**payload, "text": await self._broadcast_text(notice, language)}
        with self.i18n.context(), self.i18n.use_locale(language):
            text, markup = notices.render(notice.kind, payload)
            paid_checkout = notices.paid_checkout(notice.kind, notice.payload)
        retry_after_rounds = slow_checks = 0
        while True:
            if retry_after_rounds == 0:
                await self.pacer.wait_turn(notice.user_id)
                if time.monotonic() > lease_ends:
                    log.warning("notice %s: lease ran out while waiting; left queued", notice.id)
                    return
            else:
                self.pacer.sent(notice.user_id)  # the slot `pause` kept free is ours
            if self._stopping or not self._may_send:
                return  # not sent: the lease runs out and the notice is due again
            if notice.broadcast_id is not None:
                checked_from = time.monotonic()
                if not await self._still_pending(notice):
                    return  # its broadcast was cancelled while it waited: never sent
                late = time.monotonic() - checked_from > self.pacer.interval / 2
                if late and retry_after_rounds == 0 and slow_checks < MAX_SLOW_CHECKS:
                    # The check took most of a slot: sent now, this message could reach
                    # Telegram in the next one's slot. Take a fresh slot instead.
                    slow_checks += 1
                    continue
            self._sending.add(notice.id)
            try:
                await self.bot.send_message(
                    notice.user_id, text, reply_markup=markup, request_timeout=SEND_TIMEOUT_SECONDS
                )
            except TelegramRetryAfter as error:
                self._sending.discard(notice.id)  # not delivered: safe to drop at shutdown
                retry_after_rounds += 1
                if retry_after_rounds > MAX_RETRY_AFTER_ROUNDS:
                    await self._retry_later(notice, str(error), error.retry_after)
                    return
                await self._wait_retry_after(notice, error.retry_after)
                lease_ends = self._lease_ends()  # the wait began with a fresh lease
                continue
            except (TelegramForbiddenError, TelegramBadRequest) as error:
                self._sending.discard(notice.id)
                await self._close(notice, error)
                return
            except TelegramAPIError as error:  # 5xx, timeouts, network, 401/404/409
                self._sending.discard(notice.id)
                self._outage_failures += 1
                delay = self.backoff.delay(self._outage_failures - 1)
                self.pacer.pause(delay)
                await self._retry_later(notice, str(error), self.backoff.delay(notice.attempts))
                return
            break
        self._outage_failures = 0
        try:
            await self._mark_sent(notice)
        finally:
            self._sending.discard(notice.id)
        await notices.mark_checkout_paid(self.bot, paid_checkout)
        await self._broadcast_progress(notice)

    async def _broadcast_text(self, notice: outbox.Notice, language: str) -> str:
        """A broadcast row holds no text: its broadcast's, in the reader's language now."""
        assert notice.broadcast_id is not None
        async with self.db.read() as conn:
            texts = await broadcasts.texts_of(conn, notice.broadcast_id)
        return broadcasts.text_for(texts, language, self.i18n.default_locale)

    async def _still_pending(self, notice: outbox.Notice) -> bool:
        async with self.db.read() as conn:
            return await broadcasts.still_pending(conn, notice.id)

    async def _broadcast_progress(self, notice: outbox.Notice) -> None:
        """A broadcast row is done (sent or failed): its status message may show it.
        Best effort: a failing edit never turns a delivered message into a resend."""
        if notice.broadcast_id is None:
            return
        try:
            await broadcast.report_progress(
                self.db, self.bot, self.i18n, self.pacer, self.clock, notice.broadcast_id
            )
        except Exception:
            log.exception("broadcast %s: progress not reported", notice.broadcast_id)

    async def _mark_sent(self, notice: outbox.Notice) -> None:
        """Record the delivery now; a short database hiccup must not turn into a resend."""
        for attempt in range(MARK_ATTEMPTS):
            try:
                # Shielded: a shutdown right after Telegram's OK still records it.
                await asyncio.shield(self._mark(notice))
                return
            except Exception:
                if attempt == MARK_ATTEMPTS - 1:
                    raise
                log.warning("notice %s sent but not yet marked; retrying", notice.id)
                await asyncio.sleep(0.5 * (attempt + 1))

    async def _mark(self, notice: outbox.Notice) -> None:
        async with self.db.transaction() as conn:
            await outbox.mark_sent(conn, notice.id, to_datetime(self.clock()))

    async def _wait_retry_after(self, notice: outbox.Notice, seconds: int) -> None:
        """Wait exactly `seconds`, keeping the lease, with every other sender paused too."""
        self.pacer.pause(seconds)
        until = to_datetime(self.clock()) + timedelta(seconds=seconds) + self.lease
        async with self.db.transaction() as conn:
            await outbox.extend_lease(conn, notice.id, until)
        log.warning("notice %s: Telegram asks to wait %ss (429)", notice.id, seconds)
        await asyncio.sleep(seconds)

    async def _close(self, notice: outbox.Notice, error: TelegramAPIError) -> None:
        message = str(error)
        unreachable = isinstance(error, TelegramForbiddenError) or any(
            marker in message.lower() for marker in UNREACHABLE_MARKERS
        )
        async with self.db.transaction() as conn:
            if unreachable:
                await set_reachable(conn, notice.user_id, False)
            await outbox.mark_failed(conn, notice.id, message)
        log.warning("notice %s to user %s closed: %s", notice.id, notice.user_id, message)
        await self._broadcast_progress(notice)

    async def _retry_later(self, notice: outbox.Notice, reason: str, delay: float) -> None:
        when = to_datetime(self.clock()) + timedelta(seconds=delay)
        async with self.db.transaction() as conn:
            await outbox.retry_later(conn, notice.id, when, reason)
        log.warning("notice %s not sent (%s); retry in %.1fs", notice.id, reason, delay)
