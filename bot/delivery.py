"""Digest and broadcast fan-out: claims deliveries from the store and sends each to its chat's platform, under that
platform's rate limits. The engine knows platforms only through `Platform`: the address prefix picks one."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import operator
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any, Protocol

from bot.core.addresses import ChatAddress
from bot.core.document import Document
from bot.core.ports import NO_METRICS, Metrics, MonotonicClock, WallClock, utc_now
from bot.core.subscriptions import Delivery, DeliveryKind, DigestPayload, SubscriptionStore
from bot.logs import log_context

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


# --- What a sender reports -------------------------------------------------------------------------------------


class DeliveryOutcome(Exception):
    """Base of the outcomes a Sender raises instead of its transport's own exceptions."""


class _Failure(DeliveryOutcome):
    """An outcome described by the transport's own words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryAfter(DeliveryOutcome):
    """Flood control: hold this chat (every chat, in a flood) for `seconds`, then retry the same message."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"flood control, retry after {seconds:g} s")
        self.seconds = seconds


class ChatGone(_Failure):
    """The bot can no longer write to the chat (blocked, kicked, chat not found): deactivate it, never retry."""


class WorkspaceGone(_Failure):
    """The bot can no longer write anywhere in a workspace (its token revoked, the workspace closed): deactivate
    every chat whose address starts with `prefix` (`slack:T0123/`), never retry."""

    def __init__(self, prefix: str, reason: str) -> None:
        super().__init__(reason)
        self.prefix = prefix


class ChatMoved(DeliveryOutcome):
    """The chat now lives at `new` (a group that became a supergroup): migrate it and resend there once."""

    def __init__(self, new: ChatAddress) -> None:
        super().__init__(f"chat moved to {new}")
        self.new = new


class PermanentFailure(_Failure):
    """This message will never go through (e.g. bad request): record it as failed."""


class TransientFailure(_Failure):
    """A server error, network error or timeout: retry later with back-off. `status` is the HTTP status of a
    server error's answer (None for a network error or a timeout)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class Sender(Protocol):
    """The edge that puts one message part, rendered for its platform, into a chat; raises a DeliveryOutcome when it
    cannot."""

    async def send(self, chat: ChatAddress, thread_id: int | None, part: str, *, silent: bool) -> None:
        """Send one message part."""
        ...


@dataclass(frozen=True)
class SharedPace:
    """A budget several chats share, named by `key`: at most `sends` starts in any `period` seconds among them all
    (a Slack workspace's tier limit: SharedPace("slack:T0123/", 50, 60.0))."""

    key: str
    sends: int
    period: float


@dataclass(frozen=True)
class ChatPace:
    """How often one chat may get a message: at most `sends` starts in any `period` seconds, and within `shared`
    when it shares a budget with other chats."""

    sends: int
    period: float
    shared: SharedPace | None = None


ChatPacing = Callable[[ChatAddress], ChatPace | None]  # a chat's own limit; None: only the overall ceiling


def unpaced(chat: ChatAddress) -> ChatPace | None:
    """No per-chat limit (tests, benchmarks and the console)."""
    return None


def pacing_interval(messages_per_second: float, pacing: float) -> float:
    """Seconds between two evenly paced sends: the ceiling, scaled by a pacing share clamped to 1%..100%."""
    return 1.0 / (messages_per_second * min(max(pacing, 0.01), 1.0))


class SharedPacer(Protocol):
    """The overall ceiling shared with other replicas (bot.store.cluster.GlobalPacer); same clock as the limiter."""

    async def acquire(self) -> float:
        """Wait for this process's next send slot; returns the clock time the send starts."""
        ...

    def pause(self, seconds: float) -> None:
        """Flood control: hold every replica's new slots for `seconds`."""
        ...


# --- Rate limits ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimits:
    """Pacing and retry policy. A limit of 0 disables that limit (tests, paid broadcasts)."""

    messages_per_second: float = 30.0  # the ceiling: never more starts than this in any 1 s window
    max_in_flight: int = 64  # sends awaiting their answer at once
    max_claimed: int = 256  # deliveries held at once, including those waiting for their chat's turn
    # A 5xx is retried after 1, 2, 4 ... 300 s: about 18 minutes of server errors before a digest is given up.
    max_attempts: int = 12
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    lease_seconds: float = 300.0
    # Even pacing below the ceiling leaves room for network jitter between our start and the platform's count.
    pacing: float = 0.98
    # Lateness (a slow wake-up, a busy loop) the pacer may make up by sending sooner; idle time is never banked.
    catch_up_seconds: float = 0.05
    # Added to every window so a start exactly one window after another is not counted in both by the server.
    window_margin: float = 0.01
    # Longer flood-control pauses hand the delivery back to the store instead of holding its lease.
    max_inline_pause: float = 60.0
    # A 429 for one chat holds that chat. When at least `flood_burst` 429s in a second are also at least
    # `flood_share` of that second's sends, the bot as a whole is over the limit: every send pauses for the time
    # the platform asked. A real flood refuses nearly every send, so it crosses both within a fraction of a second;
    # 2% of chats answering 429 by chance does not (at 30/s, 3 of 30 in one second used to pause everyone in 7%
    # of the seconds: 6 of 30 happens by chance about once in 25,000 seconds).
    flood_burst: int = 5
    flood_share: float = 0.2

    def backoff(self, attempts: int) -> float:
        """Seconds to wait before the next attempt after `attempts` failed ones (exponential, capped)."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1)))


class _ChatGate:
    """One chat's recent start times and the lock that queues its sends one at a time."""

    __slots__ = ("lock", "period", "shared", "starts")

    def __init__(self, capacity: int, period: float, shared: _ChatGate | None = None) -> None:
        self.lock = asyncio.Lock()
        self.period = period
        self.shared = shared  # the gate of a budget shared with other chats, taken after this one
        self.starts: deque[float] = deque(maxlen=capacity)



class RateLimiter:
    """Paces the start of sends: a global ceiling per second, per-chat limits, and a global pause on flood control.

    Every constraint is checked against the clock at the moment a send is allowed to start, so a late wake-up
    can delay sends but never squeeze more of them into a window. A send that acquire() let start holds one of
    `max_in_flight` slots until release(); a send waiting for its chat's turn holds none.
    """

    WINDOW = 1.0

    def __init__(self, limits: RateLimits, *, pace: ChatPacing = unpaced, monotonic: MonotonicClock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, global_pacer: SharedPacer | None = None) -> None:
        self._pace = pace
        self._monotonic = monotonic
        # Several replicas: the overall ceiling comes from the shared pacer; per-chat limits stay local, which is
        # enough because each delivery is claimed by exactly one replica.
        self.global_pacer = global_pacer
        self._sleep = sleep
        ceiling = limits.messages_per_second
        self._margin = max(limits.window_margin, 0.0)
        self._interval = pacing_interval(ceiling, limits.pacing) if ceiling > 0 else 0.0
        self._catch_up = max(limits.catch_up_seconds, 0.0)
        self._next_slot = -math.inf  # when the evenly paced schedule allows the next start
        cap = max(math.floor(ceiling * self.WINDOW + 1e-9), 1) if ceiling > 0 else 0
        self._recent: deque[float] | None = deque(maxlen=cap) if cap else None
        # The same window, kept on the moments requests actually leave (see at_send()).
        self._sent: deque[float] | None = deque(maxlen=cap) if cap else None
        self._send_lock = asyncio.Lock()
        self._paused_until = -math.inf
        self._lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(limits.max_in_flight) if limits.max_in_flight > 0 else None
        self._gates: dict[ChatAddress, _ChatGate] = {}
        self._shared: dict[str, _ChatGate] = {}  # budgets shared by several chats: a few, kept for good
        self._sweep_at = 1024
        self._held: dict[ChatAddress, float] = {}  # chat -> clock time before which it gets nothing (its own 429)
        self._floods: deque[float] = deque()
        self._flood_burst = max(limits.flood_burst, 1)
        self._flood_share = max(limits.flood_share, 0.0)

    @property
    def paused_until(self) -> float:
        """MonotonicClock time until which every send waits (flood control)."""
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Hold every send that has not started yet for `seconds` from now."""
        self._paused_until = max(self._paused_until, self._monotonic() + seconds)
        if self.global_pacer is not None:
            self.global_pacer.pause(seconds)

    def flood(self, chat: ChatAddress, seconds: float) -> bool:
        """The platform answered "too many requests" for `chat`: hold that chat for `seconds`; pause everything when
        such answers are a large share of the last second's sends (the bot as a whole is over the limit).
        Returns True when everything paused."""
        now = self._monotonic()
        self._held[chat] = max(self._held.get(chat, -math.inf), now + seconds)
        floods = self._floods
        floods.append(now)
        while floods and floods[0] < now - self.WINDOW:
            floods.popleft()
        started = sum(1 for start in self._recent if start >= now - self.WINDOW) if self._recent is not None else 0
        if len(floods) >= self._flood_burst and len(floods) >= self._flood_share * started:
            self.pause(seconds)
            floods.clear()
            return True
        return False

    async def acquire(self, chat: ChatAddress) -> float:
        """Wait until a message to `chat` may start; returns the clock time it started. Pair with release()."""
        if self._held:
            while (wait := self._held.get(chat, -math.inf) - self._monotonic()) > 0:
                await self._sleep(wait)
            self._held.pop(chat, None)
        gate = self._gate(chat)
        if gate is None:
            return await self._start()
        async with gate.lock:
            # Holding the chat's lock through the global wait keeps a second send to this chat behind this one.
            await self._wait_turn(gate)
            shared = gate.shared
            if shared is None:
                started = await self._start()
            else:
                # Taken after the chat's own turn: a chat waiting for itself never holds up the others sharing.
                async with shared.lock:
                    await self._wait_turn(shared)
                    started = await self._start()
                    shared.starts.append(started)
            gate.starts.append(started)
            return started

    async def at_send(self) -> None:
        """Just before a request leaves: hold the 1 s window on the moments sends actually go out as well.

        Work between acquire() and the send (the bookkeeping write) takes a varying time, so sends granted in
        order can leave bunched; the platform counts them as they arrive.
        """
        sent = self._sent
        if sent is None or self.global_pacer is not None:
            return
        async with self._send_lock:
            while len(sent) == sent.maxlen and (wait := sent[0] + self.WINDOW + self._margin - self._monotonic()) > 0:
                await self._sleep(wait)
            sent.append(self._monotonic())

    def release(self) -> None:
        """The send that acquire() let start got its answer: free its in-flight slot."""
        if self._slots is not None:
            self._slots.release()

    async def _start(self) -> float:
        if self._slots is not None:
            await self._slots.acquire()
        try:
            return await self._acquire_global()
        except BaseException:
            self.release()
            raise

    async def _acquire_global(self) -> float:
        if self.global_pacer is not None:
            return await self._acquire_shared(self.global_pacer)
        async with self._lock:
            while True:
                now = self._monotonic()
                earliest = self._earliest()
                if earliest <= now:
                    self._grant(now)
                    return now
                await self._sleep(earliest - now)

    async def _acquire_shared(self, pacer: SharedPacer) -> float:
        async with self._lock:
            while (wait := self._paused_until - self._monotonic()) > 0:
                await self._sleep(wait)
            return await pacer.acquire()

    def _earliest(self) -> float:
        earliest = max(self._paused_until, self._next_slot)
        recent = self._recent
        if recent is not None and len(recent) == recent.maxlen:
            earliest = max(earliest, recent[0] + self.WINDOW + self._margin)
        return earliest

    def _grant(self, now: float) -> None:
        if self._recent is None:
            return
        self._recent.append(now)
        # Keep to the schedule when only a little late; after idle time or a pause start a fresh one from now,
        # so no burst is ever banked.
        base = self._next_slot if now - self._next_slot <= self._catch_up else now
        self._next_slot = base + self._interval

    async def _wait_turn(self, gate: _ChatGate) -> None:
        """Sleep until one more start fits in the gate's window (the caller holds its lock)."""
        starts, period = gate.starts, gate.period + self._margin
        while len(starts) == starts.maxlen and (wait := starts[0] + period - self._monotonic()) > 0:
            await self._sleep(wait)

    def _gate(self, chat: ChatAddress) -> _ChatGate | None:
        gate = self._gates.get(chat)
        if gate is not None:
            return gate
        pace = self._pace(chat)
        if pace is None or pace.sends <= 0 or pace.period <= 0:
            return None
        shared = None
        if pace.shared is not None and pace.shared.sends > 0 and pace.shared.period > 0:
            shared = self._shared.get(pace.shared.key)
            if shared is None:
                shared = self._shared[pace.shared.key] = _ChatGate(pace.shared.sends, pace.shared.period)
        gate = _ChatGate(pace.sends, pace.period, shared)
        if len(self._gates) >= self._sweep_at:
            self._sweep()
        self._gates[chat] = gate
        return gate

    def _sweep(self) -> None:
        """Forget chats whose last send is older than their period and that nobody is waiting on."""
        now = self._monotonic()
        idle = [chat for chat, gate in self._gates.items()
                if not gate.lock.locked()
                and (not gate.starts or gate.starts[-1] + gate.period + self._margin <= now)]
        for chat in idle:
            del self._gates[chat]
        self._sweep_at = max(1024, 2 * len(self._gates))


# --- The engine -------------------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What one run did: deliveries sent, failed, handed back for a retry, chats deactivated or migrated.

    The engine counts into one for its whole life (`DeliveryEngine.total`); a run's report is the difference.
    """

    sent: int = 0
    failed: int = 0
    retried: int = 0
    deactivated: int = 0
    migrated: int = 0
    possible_duplicates: int = 0
    empty: int = 0
    rate_limited: int = 0
    released: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return self._field_by_field(operator.add, other)

    def __sub__(self, other: DeliveryReport) -> DeliveryReport:
        return self._field_by_field(operator.sub, other)

    def _field_by_field(self, combine: Callable[[int, int], int], other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(**{f.name: combine(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})

    @property
    def settled(self) -> int:
        """Deliveries brought to an end: sent, failed, or with nothing to send."""
        return self.sent + self.failed + self.empty


Compose = Callable[[Delivery], Awaitable[DigestPayload | None]]
Silent = Callable[[Delivery], Awaitable[bool]]
RENDERED_DOCUMENTS = 64  # distinct digests rendered and kept per engine (a day brings a handful)
Render = Callable[[Document], Sequence[str]]  # a message as the parts its sender's platform sends


@dataclass(frozen=True)
class Platform:
    """One chat platform, as the engine sees it; the chats whose address starts with `name:` go through it.

    `sender` puts a part into a chat and classifies the platform's errors as DeliveryOutcomes (retry after N s,
    chat gone, workspace gone, moved, transient, permanent); `pace` is each chat's own limit; `render` turns a
    message document into the parts it sends; `limiter`, when given, holds the platform's overall ceiling (the
    engine builds one from its RateLimits otherwise).
    """

    name: str
    sender: Sender
    pace: ChatPacing = unpaced
    render: Render | None = None
    limiter: RateLimiter | None = None


class _Route:
    """A platform with the engine's per-platform state: its limiter and its cache of rendered documents."""

    def __init__(self, platform: Platform, limiter: RateLimiter) -> None:
        self.platform = platform
        self.sender = platform.sender
        self.limiter = limiter
        render = platform.render
        # Chats with the same sections get one digest document (the composer shares it): render it once.
        self.render = None if render is None else functools.lru_cache(maxsize=RENDERED_DOCUMENTS)(
            lambda message: tuple(render(message)))  # a tuple: every delivery of the document shares it


class DeliveryEngine:
    """Claims due deliveries and sends them, many at once, with the store's bookkeeping before and after each part."""

    def __init__(
        self,
        store: SubscriptionStore,
        platforms: Platform | Iterable[Platform],
        limits: RateLimits | None = None,
        *,
        worker_id: str,
        compose: Compose,
        now: WallClock = utc_now,
        silent: Silent | None = None,
        monotonic: MonotonicClock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self.limits = limits or RateLimits()
        self.worker_id = worker_id
        self._compose = compose
        self._now = now
        self._silent = silent
        self._monotonic = monotonic
        self._routes: dict[str, _Route] = {}
        for platform in [platforms] if isinstance(platforms, Platform) else platforms:
            if platform.name in self._routes:
                raise ValueError(f"two platforms named {platform.name!r}")
            limiter = platform.limiter or RateLimiter(self.limits, pace=platform.pace, monotonic=monotonic,
                                                      sleep=sleep)
            self._routes[platform.name] = _Route(platform, limiter)
        self.total = DeliveryReport()  # counted in place by every run since the engine was made
        self._stopping = False
        self._waiting: set[asyncio.Task[Any]] = set()  # tasks parked in the limiter: safe to cancel on stop
        self._cancelled_for_stop: set[asyncio.Task[Any]] = set()

    async def run_once(self, stop: asyncio.Event | None = None) -> DeliveryReport:
        """Send everything claimable now; return when nothing claimable remains (or after a graceful stop)."""
        before = replace(self.total)
        self._stopping = False
        limit = max(1, self.limits.max_claimed or self.limits.max_in_flight)
        refill = max(1, limit // 4)  # claim in batches rather than one query per finished delivery
        tasks: dict[asyncio.Task[Any], Delivery] = {}
        # Finished tasks report here through a done-callback: asyncio.wait() over every task in flight on each
        # turn cost O(in flight) per delivery (a tenth of the loop's time at 1,000 messages/s).
        finished: list[asyncio.Task[Any]] = []
        wakeup = asyncio.Event()

        def on_done(task: asyncio.Task[Any]) -> None:
            finished.append(task)
            wakeup.set()

        stop_wait: asyncio.Task[Any] | None = asyncio.create_task(stop.wait()) if stop is not None else None
        if stop_wait is not None:
            stop_wait.add_done_callback(lambda _: wakeup.set())
        error: BaseException | None = None
        drained = False
        try:
            while True:
                if stop is not None and stop.is_set() and not self._stopping:
                    self._begin_stop()
                if not self._stopping:
                    free = limit - len(tasks)
                    if not tasks or (not drained and free >= refill):
                        batch = await self._store.claim_deliveries(
                            self.worker_id, self._now(), self.limits.lease_seconds, free)
                        for delivery in batch:
                            task = asyncio.create_task(self._deliver(delivery))
                            task.add_done_callback(on_done)
                            tasks[task] = delivery
                        drained = len(batch) < free
                if not tasks:
                    break
                stop_pending = stop is not None and stop.is_set() and not self._stopping
                if not finished and not stop_pending:
                    wakeup.clear()
                    await wakeup.wait()
                done, finished[:] = list(finished), []
                for task in done:
                    if task not in tasks:
                        continue
                    delivery = tasks.pop(task)
                    if task.cancelled():
                        continue
                    failure = task.exception()
                    if failure is not None and error is None:
                        log.error("delivery %s to chat %s stopped the run: %r",
                                  delivery.id, delivery.subscription.chat, failure)
                        error = failure
                        self._begin_stop()
        finally:
            if stop_wait is not None:
                stop_wait.cancel()
            if tasks:  # only when run_once itself was cancelled
                self._begin_stop()
                await asyncio.gather(*tasks, return_exceptions=True)
        report = self.total - before
        log.info("delivery run: %s", report)
        if error is not None:
            raise error
        return report

    async def run_forever(self, stop: asyncio.Event, idle_interval: float = 5.0) -> DeliveryReport:
        """Run until `stop` is set, looking for new deliveries every `idle_interval` seconds when idle."""
        total = DeliveryReport()
        while not stop.is_set():
            total += await self.run_once(stop)
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle_interval)
        return total

    def _begin_stop(self) -> None:
        self._stopping = True
        for task in list(self._waiting):
            self._cancelled_for_stop.add(task)
            task.cancel()

    def _platform(self, delivery: Delivery) -> str:
        """The platform a delivery goes to (its chat address's prefix), for the metrics' label."""
        return delivery.subscription.chat.platform

    def _count(self, delivery: Delivery, outcome: str) -> None:
        self._metrics.delivery(self._platform(delivery), delivery.kind.value, outcome)

    async def _release(self, delivery: Delivery, why: str) -> None:
        """Hand an unfinished delivery back to the store: pending, due now, its parts sent so far kept."""
        await self._store.retry_delivery(delivery.id, self._now(), why)
        self.total.released += 1
        log.info("delivery %s to chat %s released: %s", delivery.id, delivery.subscription.chat, why)

    def limiter(self, platform: str) -> RateLimiter:
        """The rate limiter of one platform's sends."""
        return self._routes[platform].limiter

    async def _turn(self, route: _Route, chat: ChatAddress) -> bool:
        """Wait for the limiter; False when the engine is stopping and this send must not start."""
        if self._stopping:
            return False
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            await route.limiter.acquire(chat)
        except asyncio.CancelledError:
            if task in self._cancelled_for_stop:
                self._cancelled_for_stop.discard(task)
                task.uncancel()
                return False
            raise
        finally:
            self._waiting.discard(task)
        return True

    async def _deliver(self, delivery: Delivery) -> None:
        """Compose if needed, send the parts not yet sent, and record each step."""
        counts = self.total
        log_context(chat=str(delivery.subscription.chat), delivery=delivery.id)  # this task's log lines
        if delivery.in_flight_at_crash:
            counts.possible_duplicates += 1
            self._count(delivery, "possible_duplicate")
            log.warning("delivery %s to chat %s may have been sent twice (its sender stopped mid-send)",
                        delivery.id, delivery.subscription.chat)
        route = self._routes.get(delivery.subscription.chat.platform)
        if route is None:
            # Another process may serve that platform (or this one will, once configured): retry, never drop.
            await self._retry_later(delivery, f"no {delivery.subscription.chat.platform} platform in this process")
            return
        payload = delivery.payload
        try:
            if payload is None:
                payload = await self._compose(delivery)
            # Rendered once per claim, whatever number of sends and waits follow: the same document renders to
            # the same parts, so a resumed delivery's parts_sent still counts these parts.
            parts = self._parts(route, payload) if payload is not None else ()
        except Exception as exc:
            log.exception("composing delivery %s failed", delivery.id)
            await self._retry_later(delivery, f"compose failed: {exc!r}")
            return
        if payload is None or (delivery.payload is None and not parts):
            await self._store.complete_delivery(delivery.id, self._now())
            counts.empty += 1
            log.debug("delivery %s to chat %s had nothing to send", delivery.id, delivery.subscription.chat)
            return
        silent = await self._silent(delivery) if self._silent is not None else False
        await self._send_parts(route, delivery, payload, parts, silent, store_payload=delivery.payload is None)

    @staticmethod
    def _parts(route: _Route, payload: DigestPayload) -> Sequence[str]:
        if payload.message is None:
            return payload.parts
        if route.render is None:
            raise RuntimeError(f"the {route.platform.name} platform has no renderer for a message document")
        return route.render(payload.message)

    async def _send_parts(self, route: _Route, delivery: Delivery, payload: DigestPayload, parts: Sequence[str],
                          silent: bool, *, store_payload: bool) -> None:
        counts = self.total
        chat = delivery.subscription.chat
        limiter = route.limiter
        thread_id = delivery.subscription.thread_id
        # Past this age another worker may take the delivery over; hand it back rather than race it.
        hold_until = self._monotonic() + 0.9 * self.limits.lease_seconds
        moved = False
        index = delivery.parts_sent
        while index < len(parts):
            if not await self._turn(route, chat):
                await self._release(delivery, "stopped before sending")
                return
            if self._monotonic() > hold_until:
                limiter.release()
                await self._release(delivery, "lease nearly over")
                return
            outcome: DeliveryOutcome | None = None
            try:
                if index == delivery.parts_sent:
                    # Written once the send's turn has come, just before it goes out: a delivery that waited in
                    # the limiter when the process died is not flagged as a possible duplicate.
                    if store_payload:
                        await self._store.set_payload(delivery.id, payload)
                    else:
                        await self._store.mark_started(delivery.id)
                await limiter.at_send()
                started = time.perf_counter()
                try:
                    await route.sender.send(chat, thread_id, parts[index], silent=silent)
                except DeliveryOutcome as exc:
                    self._metrics.send_round_trip(self._platform(delivery), time.perf_counter() - started)
                    outcome = exc
                else:
                    self._metrics.send_round_trip(self._platform(delivery), time.perf_counter() - started)
                    # The in-flight slot is held until the send is recorded, so the messages that may repeat
                    # after a crash (sent, not yet recorded) never outnumber max_in_flight.
                    index += 1
                    if index == len(parts):
                        # complete_delivery records the last part: one write fewer, the same crash window
                        await self._store.complete_delivery(delivery.id, self._now())
                        self._sent(delivery)
                        log.debug("delivery %s to chat %s sent (%d part(s))", delivery.id, chat, len(parts))
                        return
                    await self._store.record_part_sent(delivery.id, index, self._now())
            finally:
                limiter.release()
            if outcome is None:
                continue
            if isinstance(outcome, RetryAfter):
                counts.rate_limited += 1
                self._metrics.platform_error(self._platform(delivery), "429")
                if limiter.flood(chat, outcome.seconds):
                    log.warning("flood control: refusals in a burst, pausing all %s sends for %g s (delivery %s,"
                                " chat %s)", route.platform.name, outcome.seconds, delivery.id, chat)
                else:
                    log.info("flood control for chat %s: retrying delivery %s in %g s",
                             chat, delivery.id, outcome.seconds)
                if self._monotonic() + outcome.seconds > hold_until or outcome.seconds > self.limits.max_inline_pause:
                    not_before = self._now() + timedelta(seconds=outcome.seconds)
                    await self._store.retry_delivery(delivery.id, not_before, str(outcome))
                    counts.retried += 1
                    self._count(delivery, "retried")
                    return
            elif isinstance(outcome, ChatMoved):
                if moved:
                    await self._fail(delivery, chat, f"chat moved twice: {outcome}")
                    return
                if outcome.new.platform != chat.platform:
                    await self._fail(delivery, chat, f"chat moved to another platform: {outcome}")
                    return
                moved = True
                await self._store.migrate_chat(chat, outcome.new)
                counts.migrated += 1
                self._count(delivery, "migrated")
                log.info("chat %s became %s: subscriptions migrated, resending delivery %s",
                         chat, outcome.new, delivery.id)
                chat = outcome.new
            elif isinstance(outcome, ChatGone):
                deactivated = await self._store.deactivate_chat(chat, outcome.reason, self._now())
                counts.deactivated += 1
                self._count(delivery, "deactivated")
                log.info("chat %s is gone (%s): %d subscription(s) deactivated",
                         chat, outcome.reason, deactivated)
                await self._fail(delivery, chat, f"chat gone: {outcome.reason}")
                return
            elif isinstance(outcome, WorkspaceGone):
                deactivated = await self._store.deactivate_workspace(outcome.prefix, outcome.reason, self._now())
                counts.deactivated += 1
                self._count(delivery, "deactivated")
                log.warning("workspace %s is gone (%s): %d subscription(s) deactivated",
                            outcome.prefix, outcome.reason, deactivated)
                await self._fail(delivery, chat, f"workspace gone: {outcome.reason}")
                return
            elif isinstance(outcome, TransientFailure):
                if outcome.status is not None and outcome.status >= 500:
                    self._metrics.platform_error(self._platform(delivery), "5xx")
                await self._retry_later(delivery, outcome.reason, chat)
                return
            else:  # PermanentFailure, or an outcome this engine does not know: never retried
                await self._fail(delivery, chat, str(outcome))
                return
        await self._store.complete_delivery(delivery.id, self._now())
        self._sent(delivery)
        log.debug("delivery %s to chat %s sent (%d part(s))", delivery.id, chat, len(parts))

    def _sent(self, delivery: Delivery) -> None:
        """Count a delivery sent, and a digest's lag behind its scheduled time."""
        self.total.sent += 1
        platform = self._platform(delivery)
        self._metrics.delivery(platform, delivery.kind.value, "sent")
        if delivery.kind is DeliveryKind.DIGEST:
            self._metrics.digest_lag(platform, (self._now() - delivery.period).total_seconds())

    async def _fail(self, delivery: Delivery, chat: ChatAddress, reason: str) -> None:
        await self._store.fail_delivery(delivery.id, reason, self._now())
        self.total.failed += 1
        self._count(delivery, "failed")
        log.info("delivery %s to chat %s failed: %s", delivery.id, chat, reason)

    async def _retry_later(self, delivery: Delivery, reason: str, chat: ChatAddress | None = None) -> None:
        chat = delivery.subscription.chat if chat is None else chat
        if delivery.attempts >= self.limits.max_attempts:
            await self._fail(delivery, chat, f"gave up after {delivery.attempts} attempts: {reason}")
            return
        delay = self.limits.backoff(delivery.attempts)
        await self._store.retry_delivery(delivery.id, self._now() + timedelta(seconds=delay), reason)
        self.total.retried += 1
        self._count(delivery, "retried")
        log.info("delivery %s to chat %s will be retried in %g s (attempt %d): %s",
                 delivery.id, chat, delay, delivery.attempts, reason)
