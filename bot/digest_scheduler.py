"""Scheduled digests: an APScheduler tick enqueues due subscriptions; a loop hands them to the delivery engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.candidates import CandidateStore
from bot.core.digest_composer import DigestRules, compose_digest
from bot.core.ports import NO_METRICS, ContentSource, Metrics, WallClock, utc_now
from bot.core.prompts import PROMPT_RETENTION, PromptStore
from bot.core.subscriptions import Delivery, DeliveryKind, DigestPayload, SubscriptionStore
from bot.delivery import DeliveryEngine, DeliveryReport

log = logging.getLogger(__name__)

ENQUEUE_BATCH = 5000
MIN_IDLE_WAIT = 0.05  # seconds
PRUNE_BATCH = 10_000  # finished deliveries deleted per tick while the retention sweep catches up
PRUNE_INTERVAL = timedelta(days=1)
# Telegram posts an update again for at most a day; its id is kept a day longer, then forgotten.
INCOMING_RETENTION = timedelta(days=2)


def digest_composer(store: SubscriptionStore, content: ContentSource, clock: WallClock,
                    rules: DigestRules) -> Callable[[Delivery], Awaitable[DigestPayload | None]]:
    """The engine's compose step: the pure digest function fed with the chat's history and the content in force."""

    async def compose(delivery: Delivery) -> DigestPayload | None:
        if delivery.kind is not DeliveryKind.DIGEST:
            return None
        history = delivery.history or await store.history(delivery.subscription.id)
        return compose_digest(delivery.subscription, content.catalogue, clock(), history, rules)

    return compose


class Leadership(Protocol):
    """Whether this process is the one replica that schedules (bot.store.cluster.SchedulerLeadership)."""

    async def is_leader(self) -> bool:
        """Check, taking the lead when it is free; never raises."""
        ...


class PollingRound(Protocol):
    """One polling round of the official sources (bot.sources.rounds.SourcePolling)."""

    async def round(self) -> int:
        """Poll the due sources and queue what is new; returns how many candidates were added."""
        ...

    async def close(self) -> None:
        """Release the HTTP session."""
        ...


class Closeable(Protocol):
    """A resource the digest service closes when it stops (a leadership lock, a shared pacer)."""

    async def close(self) -> None:
        """Release it."""
        ...


@dataclass
class TickReport:
    """What the latest tick and the latest delivery run did (for /status)."""

    last_tick_at: datetime | None = None
    enqueued: int = 0
    last_run: DeliveryReport | None = None
    last_run_at: datetime | None = None


class DigestService:
    """Runs the digest machinery of one process: the scheduler tick and the delivery loop."""

    def __init__(self, store: SubscriptionStore, engine: DeliveryEngine, clock: WallClock, *, tick_seconds: float,
                 idle_seconds: float = 5.0, batch: int = ENQUEUE_BATCH, leadership: Leadership | None = None,
                 closing: Sequence[Closeable] = (), retention: timedelta | None = None,
                 prune_batch: int = PRUNE_BATCH, wake: asyncio.Event | None = None,
                 candidates: CandidateStore | None = None, candidate_expiry: timedelta | None = None,
                 polling: PollingRound | None = None, prompts: PromptStore | None = None,
                 metrics: Metrics = NO_METRICS) -> None:
        self.store = store
        self.metrics = metrics
        # Prompts nobody answered are forgotten after PROMPT_RETENTION; swept with the rest.
        self.prompts = prompts
        self.engine = engine
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.idle_seconds = idle_seconds
        self.batch = batch
        self.report = TickReport()
        # The wake-up event may come from outside: the composition root hands it to the commands before this runs.
        self._wake = wake if wake is not None else asyncio.Event()
        self._scheduler: AsyncIOScheduler | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        # Every replica ticks; only the leader enqueues (the unique key would absorb doubles anyway).
        self.leadership = leadership
        self._closing = tuple(closing)
        # Finished deliveries older than this are deleted (None: kept forever); the sweep runs daily.
        self.retention = retention
        self.prune_batch = prune_batch
        self._next_prune_at: datetime | None = None
        # Review candidates nobody decided on expire after this (None: they wait forever); swept with the rest.
        self.candidates = candidates
        self.candidate_expiry = candidate_expiry
        # The leader polls the official sources in a task of its own: a slow feed never holds up the tick, and a
        # round still running when the next tick comes is left to finish instead of starting a second one.
        self.polling = polling
        self._poll_task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        """Enqueue every due digest (in batches, through the store's index); wake the sender if any."""
        total = 0
        while True:
            enqueued = await self.store.enqueue_due(self.clock(), self.batch)
            total += enqueued
            if enqueued < self.batch:
                break
        self.report.last_tick_at = self.clock()
        self.report.enqueued = total
        if total:
            log.info("enqueued %d digest(s)", total)
            self.wake()
        return total

    async def prune(self) -> int:
        """Delete one batch of finished deliveries older than the retention, and one of incoming update ids older
        than INCOMING_RETENTION, and one of prompts older than PROMPT_RETENTION, and expire the review candidates
        older than the candidate expiry, when a sweep is due; returns how many rows went or expired.

        Called after each tick, so a large backlog goes a batch a tick instead of holding the store at once;
        once both batches come back short, the next sweep is a day later.
        """
        now = self.clock()
        if self._next_prune_at is not None and now < self._next_prune_at:
            return 0
        deliveries = 0
        if self.retention is not None:
            deliveries = await self.store.prune_finished_deliveries(now - self.retention, self.prune_batch)
            if deliveries:
                log.info("deleted %d finished deliveries older than %s", deliveries, self.retention)
        incoming = await self.store.prune_incoming(now - INCOMING_RETENTION, self.prune_batch)
        prompts = 0 if self.prompts is None else await self.prompts.prune_prompts(now - PROMPT_RETENTION,
                                                                                    self.prune_batch)
        expired = 0
        if self.candidates is not None and self.candidate_expiry is not None:
            expired = await self.candidates.expire_candidates(now - self.candidate_expiry, now)
            if expired:
                log.info("expired %d review candidate(s) undecided for %s", expired, self.candidate_expiry)
        if max(deliveries, incoming, prompts) < self.prune_batch:
            self._next_prune_at = now + PRUNE_INTERVAL
        return deliveries + incoming + prompts + expired

    def wake(self) -> None:
        """Ask the delivery loop to look for work now (after a tick or a broadcast)."""
        self._wake.set()

    async def _tick_safely(self) -> None:
        started = time.perf_counter()
        if self.leadership is not None and not await self.leadership.is_leader():
            self.metrics.scheduler_tick(time.perf_counter() - started, leading=False)
            return
        try:
            await self.tick()
        except Exception:
            log.exception("digest tick failed; the next tick retries")
        try:
            await self.prune()
        except Exception:
            log.exception("deleting old deliveries failed; the next tick retries")
        self.metrics.scheduler_tick(time.perf_counter() - started, leading=True)
        self.start_polling_round()

    def start_polling_round(self) -> asyncio.Task[None] | None:
        """Start a polling round in the background unless one is running (or polling is off); returns its task."""
        if self.polling is None or self._stop.is_set():
            return None
        if self._poll_task is not None and not self._poll_task.done():
            return None
        self._poll_task = asyncio.create_task(self._poll_safely(self.polling), name="sources-poll")
        return self._poll_task

    async def _poll_safely(self, polling: PollingRound) -> None:
        try:
            await polling.round()
        except Exception:
            log.exception("polling the official sources failed; the next tick retries")

    async def _deliver_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                report = await self.engine.run_once(self._stop)
            except Exception:
                log.exception("delivery run failed; retrying after a pause")
                report = None
            if report is not None and (report.sent or report.failed or report.retried):
                self.report.last_run, self.report.last_run_at = report, self.clock()
            if self._stop.is_set():
                break
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self._stop.wait())]
            wait = await self.seconds_until_next_look()
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def seconds_until_next_look(self) -> float:
        """Seconds until the delivery loop looks again: when a retry falls due, or after idle_seconds at most."""
        try:
            claimable_at = await self.store.next_claimable_at()
        except Exception:
            log.exception("cannot tell when the next delivery falls due; looking again in %g s", self.idle_seconds)
            return self.idle_seconds
        if claimable_at is None:
            return self.idle_seconds
        # The floor keeps a delivery the engine cannot claim yet from turning this into a busy loop.
        return min(self.idle_seconds, max(MIN_IDLE_WAIT, (claimable_at - self.clock()).total_seconds()))

    def start(self, *, schedule: bool = True) -> None:
        """Start the delivery loop and (unless another process schedules) the APScheduler tick."""
        self._stop.clear()
        self._loop_task = asyncio.create_task(self._deliver_forever(), name="digest-delivery")
        if schedule:
            self._scheduler = AsyncIOScheduler(timezone=UTC)
            # coalesce + no misfire grace: a late tick (busy loop, suspended host) still runs, once.
            self._scheduler.add_job(self._tick_safely, IntervalTrigger(seconds=self.tick_seconds, timezone=UTC),
                                    id="digest-tick", next_run_time=utc_now(), coalesce=True,
                                    max_instances=1, misfire_grace_time=None)
            self._scheduler.start()

    async def stop(self) -> None:
        """Stop ticking; let in-flight sends finish and leave the rest in the store to be resumed."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        self._stop.set()
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll_task
            self._poll_task = None
        if self.polling is not None:
            try:
                await self.polling.close()
            except Exception:
                log.exception("closing the sources' HTTP session failed")
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for resource in self._closing:
            try:
                await resource.close()
            except Exception:
                log.exception("closing %r failed", resource)
