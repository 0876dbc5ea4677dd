"""The delivery engine: its rate limiter on a virtual clock, and the engine against the real SQLite store."""

from __future__ import annotations

import asyncio
import random
from bisect import bisect_left
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from itertools import pairwise
from pathlib import Path

import pytest

from bot.core.addresses import SLACK, TELEGRAM, ChatAddress, telegram
from bot.core.candidates import CandidateState, FoundItem
from bot.core.messages import ChatKind
from bot.core.prompts import OpenPrompt
from bot.core.schedule import Cadence, Schedule
from bot.core.subscriptions import Delivery, DigestPayload, IncomingClaim, SubscriptionRequest, SubscriptionStore
from bot.delivery import (
    ChatGone,
    ChatMoved,
    ChatPace,
    DeliveryEngine,
    DeliveryReport,
    PermanentFailure,
    Platform,
    RateLimiter,
    RateLimits,
    RetryAfter,
    SharedPace,
    TransientFailure,
    WorkspaceGone,
)
from bot.digest_scheduler import MIN_IDLE_WAIT, DigestService
from bot.store import SqlStore, open_store
from bot.tg.platform import TelegramPace, telegram_platform

# --- The rate limiter on a virtual clock -------------------------------------------------------------------------


class VirtualTime:
    """A clock that jumps to each sleeper's wake-up time, optionally waking it late, without real waiting."""

    def __init__(self, oversleep: float = 0.0, seed: int = 1) -> None:
        self.now = 0.0
        self.oversleep = oversleep
        self._rng = random.Random(seed)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        late = self._rng.uniform(0, self.oversleep) if self.oversleep else 0.0
        self.now += max(seconds, 0.0) + late
        await asyncio.sleep(0)


class ManualTime:
    """A clock that moves only when the test advances it; sleepers wake when their time has come."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, wake))
        await wake

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for entry in [entry for entry in self._sleepers if entry[0] <= self.now]:
            self._sleepers.remove(entry)
            entry[1].set_result(None)
        await settle()


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(10):
        await asyncio.sleep(0)


def most_in_any_window(starts: list[float], window: float) -> int:
    """The largest number of starts in any half-open window [t, t + window)."""
    ordered = sorted(starts)
    return max((bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0)


def limiter(time: VirtualTime, *, private_interval: float = 1.0, group_per_minute: int = 20,
            **overrides: float) -> RateLimiter:
    """A limiter at Telegram's pace on virtual time; in-flight slots are off unless asked for, as these tests never
    release()."""
    settings = {"max_in_flight": 0, **overrides}
    return RateLimiter(RateLimits(**settings), pace=TelegramPace(private_interval, group_per_minute),  # type: ignore[arg-type]
                       monotonic=time.clock, sleep=time.sleep)


@pytest.mark.parametrize("oversleep", [0.0, 0.004])
async def test_global_pace_holds_the_ceiling_and_at_least_95_percent_of_it(oversleep: float) -> None:
    time = VirtualTime(oversleep=oversleep)
    pacer = limiter(time, messages_per_second=30)
    starts = [await pacer.acquire(telegram(chat_id)) for chat_id in range(1, 601)]
    assert most_in_any_window(starts, 1.0) <= 30
    assert 600 / (starts[-1] - starts[0]) >= 0.95 * 30


async def test_concurrent_senders_never_exceed_the_ceiling_in_any_second() -> None:
    time = VirtualTime(oversleep=0.002)
    pacer = limiter(time, messages_per_second=50)
    starts = await asyncio.gather(*(pacer.acquire(telegram(chat_id)) for chat_id in range(1, 501)))
    assert most_in_any_window(starts, 1.0) <= 50
    assert most_in_any_window(starts, 1.0) >= 0.95 * 50


async def test_a_high_ceiling_is_held_too() -> None:
    time = VirtualTime(oversleep=0.0005)
    pacer = limiter(time, messages_per_second=1000)
    starts = [await pacer.acquire(telegram(chat_id)) for chat_id in range(1, 5001)]
    assert most_in_any_window(starts, 1.0) <= 1000
    assert 5000 / (starts[-1] - starts[0]) >= 950


async def test_a_private_chat_gets_one_message_per_second() -> None:
    time = VirtualTime()
    pacer = limiter(time)
    starts = await asyncio.gather(*(pacer.acquire(telegram(7)) for _ in range(5)))
    gaps = [b - a for a, b in pairwise(sorted(starts))]
    assert min(gaps) >= 1.0


async def test_other_chats_are_not_held_up_by_a_busy_private_chat() -> None:
    time = VirtualTime()
    pacer = limiter(time)
    await pacer.acquire(telegram(7))
    started = await pacer.acquire(telegram(8))
    assert started < 0.1


async def test_a_group_gets_at_most_twenty_messages_a_minute() -> None:
    time = VirtualTime()
    pacer = limiter(time)
    starts = sorted(await asyncio.gather(*(pacer.acquire(telegram(-100123)) for _ in range(45))))
    assert most_in_any_window(starts, 60.0) <= 20
    assert starts[20] - starts[0] >= 60.0
    assert starts[19] - starts[0] < 5.0  # the first twenty need not wait for each other


async def test_flood_control_pauses_every_chat() -> None:
    time = VirtualTime()
    pacer = limiter(time)
    first = await pacer.acquire(telegram(1))
    pacer.pause(5.0)
    starts = await asyncio.gather(*(pacer.acquire(telegram(chat_id)) for chat_id in (2, 3, -1004)))
    assert min(starts) >= first + 5.0


async def test_sends_delayed_after_their_slot_still_leave_within_the_window() -> None:
    time = VirtualTime()
    pacer = limiter(time, messages_per_second=10, private_interval=0)
    granted = [await pacer.acquire(telegram(chat)) for chat in range(1, 11)]
    for _ in granted:
        pacer.release()
    # The first five sends were held up (a slow bookkeeping write) until the next second began.
    time.now = granted[0] + 0.9
    left = []
    for _ in range(10):
        await pacer.at_send()
        left.append(time.now)
    late = await pacer.acquire(telegram(99))
    pacer.release()
    time.now = max(time.now, late)
    await pacer.at_send()
    left.append(time.now)
    assert all(sum(1 for t in left if start <= t < start + 1.0) <= 10 for start in left)


async def test_one_chats_429_holds_only_that_chat() -> None:
    time = VirtualTime()
    pacer = limiter(time, private_interval=0)
    assert not pacer.flood(telegram(1), 5.0)
    other = await pacer.acquire(telegram(2))
    pacer.release()
    held = await pacer.acquire(telegram(1))
    assert other < 1.0 and held >= 5.0


async def test_scattered_429s_at_a_high_rate_do_not_pause_everyone() -> None:
    time = VirtualTime()
    pacer = limiter(time, private_interval=0, messages_per_second=1000)
    for chat in range(100, 200):  # 100 sends started within the last second
        await pacer.acquire(telegram(chat))
        pacer.release()
    assert [pacer.flood(telegram(chat), 1.0) for chat in range(1, 11)] == [False] * 10  # 10% of the sends
    assert pacer.paused_until < 0


async def test_a_few_429s_at_30_per_second_hold_their_chats_but_a_fifth_of_the_sends_pauses_all() -> None:
    time = VirtualTime()
    pacer = limiter(time, private_interval=0, messages_per_second=30)
    for chat in range(100, 130):  # a full second of sends at the free ceiling
        await pacer.acquire(telegram(chat))
        pacer.release()
    assert [pacer.flood(telegram(chat), 1.0) for chat in range(1, 7)] == [False] * 5 + [True]  # 5 of 30 by chance: no
    assert pacer.paused_until > time.now


async def test_429s_in_a_burst_pause_every_chat() -> None:
    time = VirtualTime()
    pacer = limiter(time, private_interval=0)
    assert [pacer.flood(telegram(chat), 2.0) for chat in range(1, 6)] == [False] * 4 + [True]
    assert await pacer.acquire(telegram(9)) >= 2.0


async def test_a_pause_during_a_wait_still_holds_the_waiters() -> None:
    time = VirtualTime()
    pacer = limiter(time)
    await pacer.acquire(telegram(1))
    waiting = asyncio.ensure_future(pacer.acquire(telegram(1)))  # waits a second for its chat
    await asyncio.sleep(0)
    pacer.pause(10.0)
    assert await waiting >= 10.0


async def test_disabled_limits_do_not_wait() -> None:
    time = VirtualTime()
    pacer = limiter(time, messages_per_second=0, private_interval=0, group_per_minute=0)
    starts = [await pacer.acquire(telegram(chat_id)) for chat_id in (5, 5, -5, -5) * 10]
    assert max(starts) == 0.0


async def test_pacing_is_even_with_no_burst_after_idle_time() -> None:
    time = VirtualTime()
    pacer = limiter(time, messages_per_second=30)
    await pacer.acquire(telegram(1))
    time.now += 10.0  # idle: nothing is banked for later
    starts = [await pacer.acquire(telegram(chat_id)) for chat_id in range(2, 12)]
    gaps = [b - a for a, b in pairwise(starts)]
    assert min(gaps) >= 1 / 30


async def test_sends_in_flight_are_capped_but_a_chat_waiting_its_turn_holds_no_slot() -> None:
    time = ManualTime()
    pacer = RateLimiter(RateLimits(messages_per_second=0, max_in_flight=1), pace=TelegramPace(), monotonic=time.clock,
                        sleep=time.sleep)
    await pacer.acquire(telegram(1))
    pacer.release()
    chat_1_again = asyncio.ensure_future(pacer.acquire(telegram(1)))  # must wait a second for its chat
    await settle()
    assert await asyncio.wait_for(pacer.acquire(telegram(2)), 0.5) == 0.0  # the slot was free for another chat
    chat_3 = asyncio.ensure_future(pacer.acquire(telegram(3)))
    await settle()
    assert not chat_3.done()  # one send in flight already
    pacer.release()
    assert await asyncio.wait_for(chat_3, 0.5) == 0.0
    await time.advance(1.1)
    assert not chat_1_again.done()  # its chat's turn came, but the only slot is taken
    pacer.release()
    assert await asyncio.wait_for(chat_1_again, 0.5) >= 1.0


async def test_chats_sharing_a_budget_stay_within_it_and_within_their_own() -> None:
    time = VirtualTime()

    def workspace_pace(chat: ChatAddress) -> ChatPace:
        workspace = chat.id.partition("/")[0]
        return ChatPace(1, 1.0, SharedPace(f"slack:{workspace}/", 5, 10.0))

    pacer = RateLimiter(RateLimits(messages_per_second=0, max_in_flight=0), pace=workspace_pace,
                        monotonic=time.clock, sleep=time.sleep)
    busy = [ChatAddress("slack", f"T1/C{n}") for n in range(1, 11)]
    other = ChatAddress("slack", "T2/C1")
    busy_starts = await asyncio.gather(*(pacer.acquire(chat) for chat in [*busy, *busy]))
    assert most_in_any_window(busy_starts, 10.0) <= 5  # the workspace's budget, over all its channels
    assert max(busy_starts) >= 30.0  # 20 starts at 5 per 10 s
    for n in range(10):  # and each channel's own: one a second
        assert abs(busy_starts[n + 10] - busy_starts[n]) >= 1.0
    await pacer.acquire(busy[0])
    now = time.now
    assert await pacer.acquire(other) == now  # another workspace's budget is its own, untouched


async def test_idle_chats_are_forgotten() -> None:
    time = VirtualTime()
    pacer = limiter(time, messages_per_second=0)
    for chat_id in range(1, 5001):
        await pacer.acquire(telegram(chat_id))
        time.now += 0.01
    assert len(pacer._gates) < 2100


# --- The engine against the real SQLite store --------------------------------------------------------------------

NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)
DAILY = Schedule(Cadence.DAILY, dtime(9, 0), "Asia/Hong_Kong")
FAST = RateLimits(messages_per_second=1000, max_in_flight=16, max_attempts=3, backoff_base=60.0, backoff_cap=600.0)
UNPACED = TelegramPace(private_interval=0, group_per_minute=0)


class Crash(Exception):
    """Stands for the process dying: not an outcome the engine knows, so it stops the run."""


class FakeSender:
    """The Telegram edge: records every part sent and raises scripted outcomes for chosen chats."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int | None, str, bool]] = []
        self.calls: list[int] = []
        self._scripts: dict[int, list[BaseException | None]] = {}
        self._always: dict[int, BaseException] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self.latency = 0.0
        self._progress = asyncio.Event()

    async def wait_sent(self, count: int) -> None:
        """Wait until `count` parts in all went out."""
        while len(self.sent) < count:
            self._progress.clear()
            await self._progress.wait()

    def script(self, chat_id: int, *outcomes: BaseException | None) -> None:
        """Raise these, one per call (None: that call succeeds), before sends to `chat_id` succeed."""
        self._scripts.setdefault(chat_id, []).extend(outcomes)

    def always(self, chat_id: int, outcome: BaseException) -> None:
        self._always[chat_id] = outcome

    def to(self, chat_id: int) -> list[str]:
        return [html for chat, _, html, _ in self.sent if chat == chat_id]

    async def send(self, chat: ChatAddress, thread_id: int | None, html: str, *, silent: bool) -> None:
        chat_id = int(chat.id)
        self.calls.append(chat_id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            if chat_id in self._always:
                raise self._always[chat_id]
            script = self._scripts.get(chat_id)
            outcome = script.pop(0) if script else None
            if outcome is not None:
                raise outcome
            self.sent.append((chat_id, thread_id, html, silent))
            self._progress.set()
        finally:
            self.in_flight -= 1


class Composer:
    """Composes `parts` numbered parts per delivery and counts its calls."""

    def __init__(self, parts: int = 1) -> None:
        self.parts = parts
        self.calls = 0

    async def __call__(self, delivery: Delivery) -> DigestPayload | None:
        self.calls += 1
        if self.parts == 0:
            return None
        chat = int(delivery.subscription.chat.id)
        return DigestPayload(parts=tuple(f"digest {chat} part {n}" for n in range(1, self.parts + 1)),
                             update_keys=(f"u-{chat}",))


class Clock:
    """The engine's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.value = NOW

    def __call__(self) -> datetime:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += timedelta(seconds=seconds)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/bot.sqlite3"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SubscriptionStore]:
    opened = await open_store(db_url)
    yield opened
    await opened.close()


async def subscribe(store: SubscriptionStore, *chat_ids: int, thread_id: int | None = None) -> None:
    """Subscribe the chats two days ago, then enqueue their digests due now."""
    for chat_id in chat_ids:
        kind = ChatKind.PRIVATE if chat_id > 0 else ChatKind.SUPERGROUP
        await store.save_subscription(SubscriptionRequest(telegram(chat_id), thread_id, kind, DAILY),
                                      NOW - timedelta(days=2))
    assert await store.enqueue_due(NOW, 10_000) == len(chat_ids)


def engine(store: SubscriptionStore, sender: FakeSender, compose: Composer | None = None, *,
           clock: Clock | None = None, limits: RateLimits = FAST, pace: TelegramPace = UNPACED,
           worker_id: str = "w1") -> DeliveryEngine:
    return DeliveryEngine(store, telegram_platform(sender, pace), limits, worker_id=worker_id,
                          compose=compose or Composer(), now=clock or Clock())


async def test_every_due_delivery_is_sent_exactly_once(store: SubscriptionStore) -> None:
    chats = [*range(1, 41), *range(-100_001, -100_011, -1)]
    await subscribe(store, *chats)
    sender = FakeSender()
    sender.latency = 0.005
    report = await engine(store, sender).run_once()
    assert report == DeliveryReport(sent=50)
    assert sorted(chat for chat, *_ in sender.sent) == sorted(chats)
    assert 1 < sender.most_in_flight <= FAST.max_in_flight
    assert await engine(store, sender).run_once() == DeliveryReport()
    stats = await store.delivery_stats()
    assert (stats.sent, stats.pending, stats.sending, stats.failed) == (50, 0, 0, 0)


async def test_parts_go_out_in_order_to_the_subscribed_topic(store: SubscriptionStore) -> None:
    await subscribe(store, -100_500, thread_id=12)
    sender = FakeSender()
    await engine(store, sender, Composer(parts=3)).run_once()
    assert sender.sent == [(-100_500, 12, f"digest -100500 part {n}", False) for n in (1, 2, 3)]


async def test_a_composed_digest_remembers_what_it_sent(store: SubscriptionStore) -> None:
    await subscribe(store, 5)
    await engine(store, FakeSender()).run_once()
    subscription = await store.get_subscription(telegram(5), None)
    assert subscription is not None
    assert (await store.history(subscription.id)).sent_update_keys == {"u-5"}


async def test_nothing_to_say_completes_the_delivery_without_a_message(store: SubscriptionStore) -> None:
    await subscribe(store, 5)
    sender = FakeSender()
    report = await engine(store, sender, Composer(parts=0)).run_once()
    assert report == DeliveryReport(empty=1)
    assert sender.calls == []
    assert (await store.delivery_stats()).pending == 0


async def test_a_broadcast_is_sent_as_enqueued_without_composing(store: SubscriptionStore) -> None:
    await subscribe(store, 1, 2)
    await engine(store, FakeSender()).run_once()
    assert await store.enqueue_broadcast(DigestPayload(("<b>News</b>", "more")), NOW) == 2
    sender, composer = FakeSender(), Composer()
    report = await engine(store, sender, composer).run_once()
    assert report.sent == 2
    assert composer.calls == 0
    assert sender.to(1) == ["<b>News</b>", "more"]


async def test_a_silent_hook_mutes_the_messages_it_chooses(store: SubscriptionStore) -> None:
    await subscribe(store, 1, 2)
    sender = FakeSender()

    async def quiet_for_two(delivery: Delivery) -> bool:
        return int(delivery.subscription.chat.id) == 2

    run = DeliveryEngine(store, telegram_platform(sender, UNPACED), FAST,
                         worker_id="w", compose=Composer(), now=Clock(), silent=quiet_for_two)
    await run.run_once()
    assert sorted((chat, silent) for chat, _, _, silent in sender.sent) == [(1, False), (2, True)]


async def test_a_crash_mid_send_resumes_at_that_part_and_flags_a_possible_duplicate(db_url: str) -> None:
    first = await open_store(db_url)
    await subscribe(first, 7)
    dying, composer = FakeSender(), Composer(parts=3)
    dying.script(7, None, Crash("power cut while part 2 was on the wire"))
    with pytest.raises(Crash):
        await engine(first, dying, composer, worker_id="dead").run_once()
    assert dying.to(7) == ["digest 7 part 1"]
    await first.close()  # the process is gone; its lease on the delivery is left behind

    restarted = await open_store(db_url)  # SQLite is single-process: opening releases the dead worker's leases
    try:
        sender = FakeSender()
        report = await engine(restarted, sender, composer, worker_id="new").run_once()
        assert sender.to(7) == ["digest 7 part 2", "digest 7 part 3"]
        assert composer.calls == 1  # the payload fixed before the first send is reused, not recomposed
        assert report == DeliveryReport(sent=1, possible_duplicates=1)
        assert (await restarted.delivery_stats()).possible_duplicates == 1
    finally:
        await restarted.close()


async def test_a_crash_between_parts_resumes_at_the_next_part(db_url: str) -> None:
    first = await open_store(db_url)
    await subscribe(first, 7)
    dying, composer = FakeSender(), Composer(parts=2)
    with pytest.raises(Crash):
        await engine(CrashAfterFirstPart(first), dying, composer, worker_id="dead").run_once()  # type: ignore[arg-type]
    assert dying.to(7) == ["digest 7 part 1"]
    await first.close()

    restarted = await open_store(db_url)
    try:
        await restarted.release_claims()
        sender = FakeSender()
        report = await engine(restarted, sender, composer, worker_id="new").run_once()
        assert sender.to(7) == ["digest 7 part 2"]
        assert report.sent == 1
        # Between parts the next send is about to start, so the delivery is (conservatively) flagged.
        assert report.possible_duplicates == 1
    finally:
        await restarted.close()


async def test_a_chat_that_blocked_the_bot_is_deactivated_and_not_retried(store: SubscriptionStore) -> None:
    await subscribe(store, 1, 2)
    sender = FakeSender()
    sender.always(2, ChatGone("Forbidden: bot was blocked by the user"))
    clock = Clock()
    report = await engine(store, sender, clock=clock).run_once()
    assert report == DeliveryReport(sent=1, failed=1, deactivated=1)
    gone = await store.get_subscription(telegram(2), None)
    assert gone is not None and not gone.active
    clock.advance(3600)
    assert await engine(store, sender, clock=clock).run_once() == DeliveryReport()
    assert sender.calls.count(2) == 1


async def test_a_migrated_group_is_moved_and_the_message_resent_to_its_new_id(store: SubscriptionStore) -> None:
    await subscribe(store, -555)
    sender = FakeSender()
    sender.always(-555, ChatMoved(telegram(-100_555)))
    report = await engine(store, sender, Composer(parts=2)).run_once()
    assert report == DeliveryReport(sent=1, migrated=1)
    assert sender.to(-100_555) == ["digest -555 part 1", "digest -555 part 2"]
    moved = await store.get_subscription(telegram(-100_555), None)
    assert moved is not None and moved.active
    assert await store.get_subscription(telegram(-555), None) is None


async def test_a_chat_moving_twice_in_one_delivery_fails_it(store: SubscriptionStore) -> None:
    await subscribe(store, -555)
    sender = FakeSender()
    sender.always(-555, ChatMoved(telegram(-100_555)))
    sender.always(-100_555, ChatMoved(telegram(-100_556)))
    report = await engine(store, sender).run_once()
    assert report == DeliveryReport(failed=1, migrated=1)


async def test_transient_failures_are_retried_later_then_succeed(store: SubscriptionStore) -> None:
    await subscribe(store, 3)
    sender = FakeSender()
    sender.script(3, TransientFailure("502 Bad Gateway"), TransientFailure("timed out"))
    clock = Clock()
    run = engine(store, sender, clock=clock)
    assert await run.run_once() == DeliveryReport(retried=1)
    assert await run.run_once() == DeliveryReport()  # backing off: not claimable yet
    clock.advance(FAST.backoff(1))
    assert await run.run_once() == DeliveryReport(retried=1)
    clock.advance(FAST.backoff(2))
    assert await run.run_once() == DeliveryReport(sent=1)
    assert sender.calls == [3, 3, 3]
    assert sender.to(3) == ["digest 3 part 1"]


async def test_the_delivery_loop_waits_until_the_next_retry_falls_due(store: SubscriptionStore) -> None:
    await subscribe(store, 3)
    sender = FakeSender()
    sender.script(3, TransientFailure("502 Bad Gateway"))
    clock = Clock()
    run = engine(store, sender, clock=clock)
    service = DigestService(store, run, clock, tick_seconds=60.0, idle_seconds=600.0)
    assert await service.seconds_until_next_look() == MIN_IDLE_WAIT  # claimable now
    assert await run.run_once() == DeliveryReport(retried=1)
    assert await service.seconds_until_next_look() == FAST.backoff(1)
    clock.advance(FAST.backoff(1) - 15)
    assert await service.seconds_until_next_look() == 15
    clock.advance(15)
    assert await run.run_once() == DeliveryReport(sent=1)
    assert await service.seconds_until_next_look() == 600.0  # nothing open: the idle wait


async def test_a_retry_goes_out_when_due_not_after_the_idle_wait(store: SubscriptionStore) -> None:
    await subscribe(store, 3)
    sender = FakeSender()
    sender.script(3, TransientFailure("502 Bad Gateway"))
    run = engine(store, sender, clock=lambda: datetime.now(UTC), limits=replace(FAST, backoff_base=0.2))
    service = DigestService(store, run, lambda: datetime.now(UTC), tick_seconds=60.0, idle_seconds=60.0)
    service.start(schedule=False)
    try:
        await asyncio.wait_for(sender.wait_sent(1), timeout=10)  # 0.2 s back-off; the idle wait is 60 s
    finally:
        await service.stop()
    assert sender.calls == [3, 3]
    assert run.total == DeliveryReport(sent=1, retried=1)


async def test_the_retention_sweep_deletes_a_batch_a_tick_until_caught_up_then_waits_a_day(
        store: SubscriptionStore) -> None:
    await subscribe(store, *range(1, 6))
    clock = Clock()
    run = engine(store, FakeSender(), clock=clock)
    assert await run.run_once() == DeliveryReport(sent=5)
    hour = 3600.0
    service = DigestService(store, run, clock, tick_seconds=60.0, retention=timedelta(hours=1), prune_batch=2)
    assert await service.prune() == 0  # nothing old yet: swept, so the next sweep is a day later
    clock.advance(2 * hour)
    assert await service.prune() == 0  # five are old enough, but a day has not passed
    clock.advance(24 * hour)
    assert [await service.prune() for _ in range(3)] == [2, 2, 1]  # a batch a tick; a short one: caught up
    await subscribe(store, 6)
    assert await run.run_once() == DeliveryReport(sent=1)
    clock.advance(2 * hour)
    assert await service.prune() == 0
    clock.advance(24 * hour)
    assert await DigestService(store, run, clock, tick_seconds=60.0).prune() == 0  # no retention: kept forever
    assert await service.prune() == 1


async def test_the_retention_sweep_forgets_incoming_update_ids_after_two_days(store: SubscriptionStore) -> None:
    clock = Clock()
    for update_id in (1, 2, 3):
        assert await store.claim_incoming(update_id, "w1", clock(), 60) is IncomingClaim.NEW
        await store.finish_incoming(update_id, clock())
    hour = 3600.0
    # Deliveries kept forever: the update ids are forgotten all the same.
    service = DigestService(store, engine(store, FakeSender(), clock=clock), clock, tick_seconds=60.0, prune_batch=2)
    clock.advance(47 * hour)
    assert await service.prune() == 0  # Telegram may still post them again
    assert await store.claim_incoming(1, "w1", clock(), 60) is IncomingClaim.DONE
    clock.advance(24 * hour)
    assert [await service.prune() for _ in range(2)] == [2, 1]
    assert await store.claim_incoming(1, "w1", clock(), 60) is IncomingClaim.NEW


async def test_the_retention_sweep_forgets_unanswered_prompts_after_a_week(store: SubscriptionStore) -> None:
    assert isinstance(store, SqlStore)
    clock = Clock()
    for message_id in (1, 2, 3):
        await store.save_prompt(telegram(100), message_id, OpenPrompt("review edit 1", 900, clock()))
    hour = 3600.0
    service = DigestService(store, engine(store, FakeSender(), clock=clock), clock, tick_seconds=60.0, prune_batch=2,
                            prompts=store)
    clock.advance(7 * 24 * hour - 1)
    assert await service.prune() == 0  # an admin may still answer them
    assert await store.find_prompt(telegram(100), 1) is not None
    clock.advance(24 * hour)
    assert [await service.prune() for _ in range(2)] == [2, 1]
    assert await store.find_prompt(telegram(100), 1) is None


def found_item(n: int) -> FoundItem:
    """An item found on the government's press releases."""
    return FoundItem(source_id="gov-press-en", title=f"AI item {n}", link=f"https://www.info.gov.hk/gia/P{n}.htm",
                     published=None, excerpt="", language="en", sections=(), title_key=f"ai item {n}")


async def test_the_retention_sweep_expires_review_candidates_nobody_decided_on(store: SubscriptionStore) -> None:
    assert isinstance(store, SqlStore)
    (old,) = await store.add_candidates([found_item(1)], NOW - timedelta(days=15))
    (recent,) = await store.add_candidates([found_item(2)], NOW - timedelta(days=13))
    clock = Clock()
    run = engine(store, FakeSender(), clock=clock)
    assert await DigestService(store, run, clock, tick_seconds=60.0, candidates=store).prune() == 0  # no expiry set

    service = DigestService(store, run, clock, tick_seconds=60.0, candidates=store,
                            candidate_expiry=timedelta(days=14))
    assert await service.prune() == 1
    assert [await store.get_candidate(c.id) for c in (old, recent)] == [
        replace(old, state=CandidateState.EXPIRED, decided_at=NOW), recent]


class FakeLeadership:
    """Leads or not, as told; remembers that it was asked."""

    def __init__(self, leads: bool) -> None:
        self.leads = leads
        self.asked = asyncio.Event()

    async def is_leader(self) -> bool:
        self.asked.set()
        return self.leads


async def test_only_the_scheduler_leader_expires_review_candidates(store: SubscriptionStore) -> None:
    assert isinstance(store, SqlStore)
    (old,) = await store.add_candidates([found_item(1)], NOW - timedelta(days=15))
    clock = Clock()

    async def tick_once(leadership: FakeLeadership) -> None:
        service = DigestService(store, engine(store, FakeSender(), clock=clock), clock, tick_seconds=3600.0,
                                leadership=leadership, candidates=store, candidate_expiry=timedelta(days=14))
        service.start()  # the first tick runs at once
        try:
            await asyncio.wait_for(leadership.asked.wait(), timeout=30)
            # The leader's sweep takes a few store round trips after the question; a follower gets as long to
            # (wrongly) sweep before it is checked.
            for _ in range(10 if not leadership.leads else 200):
                candidate = await store.get_candidate(old.id)
                if candidate is None or candidate.state is not CandidateState.NEW:
                    break
                await asyncio.sleep(0.05)
        finally:
            await service.stop()

    await tick_once(FakeLeadership(leads=False))
    follower_saw = await store.get_candidate(old.id)
    assert follower_saw is not None and follower_saw.state is CandidateState.NEW
    await tick_once(FakeLeadership(leads=True))
    leader_saw = await store.get_candidate(old.id)
    assert leader_saw is not None and leader_saw.state is CandidateState.EXPIRED


async def test_a_delivery_that_keeps_failing_gives_up_at_the_attempt_cap(store: SubscriptionStore) -> None:
    await subscribe(store, 3)
    sender = FakeSender()
    sender.always(3, TransientFailure("500 Internal Server Error"))
    clock = Clock()
    run = engine(store, sender, clock=clock)
    total = DeliveryReport()
    for _ in range(10):
        total += await run.run_once()
        clock.advance(FAST.backoff_cap)
    assert sender.calls == [3] * FAST.max_attempts
    assert (total.retried, total.failed) == (FAST.max_attempts - 1, 1)
    assert (await store.delivery_stats()).failed == 1


async def test_a_permanent_failure_is_recorded_and_never_retried(store: SubscriptionStore) -> None:
    await subscribe(store, 3, 4)
    sender = FakeSender()
    sender.always(3, PermanentFailure("Can't parse entities"))
    clock = Clock()
    assert await engine(store, sender, clock=clock).run_once() == DeliveryReport(sent=1, failed=1)
    clock.advance(86_400)
    assert await engine(store, sender, clock=clock).run_once() == DeliveryReport()
    assert sender.calls.count(3) == 1
    subscription = await store.get_subscription(telegram(3), None)
    assert subscription is not None and subscription.active  # a bad message is no reason to drop the chat


async def test_flood_control_for_one_chat_holds_that_chat_and_resends_the_same_part(store: SubscriptionStore) -> None:
    await subscribe(store, 3, 4)
    sender = FakeSender()
    sender.script(3, RetryAfter(0.05))
    run = engine(store, sender, Composer(parts=2))
    report = await run.run_once()
    assert report == DeliveryReport(sent=2, rate_limited=1)
    assert sender.to(3) == ["digest 3 part 1", "digest 3 part 2"]
    assert run.limiter(TELEGRAM).paused_until < 0  # one chat's 429 does not stop the others


async def test_a_burst_of_429s_pauses_every_send(store: SubscriptionStore) -> None:
    await subscribe(store, 3, 4, 5, 6, 7, 8)
    sender = FakeSender()
    for chat in (3, 4, 5, 6, 7):
        sender.script(chat, RetryAfter(0.05))
    run = engine(store, sender)
    report = await run.run_once()
    assert report == DeliveryReport(sent=6, rate_limited=5)
    assert run.limiter(TELEGRAM).paused_until > 0


async def test_a_long_flood_wait_hands_the_delivery_back_until_it_is_over(store: SubscriptionStore) -> None:
    await subscribe(store, 3)
    sender = FakeSender()
    sender.script(3, RetryAfter(3600))
    clock = Clock()
    assert await engine(store, sender, clock=clock).run_once() == DeliveryReport(retried=1, rate_limited=1)
    clock.advance(3590)
    assert await engine(store, sender, clock=clock).run_once() == DeliveryReport()
    clock.advance(10)
    assert await engine(store, sender, clock=clock).run_once() == DeliveryReport(sent=1)


async def test_a_failing_composer_is_retried_like_a_transient_failure(store: SubscriptionStore) -> None:
    await subscribe(store, 3)

    async def broken(delivery: Delivery) -> DigestPayload | None:
        raise KeyError("section")

    run = DeliveryEngine(store, telegram_platform(FakeSender(), UNPACED), FAST,
                         worker_id="w", compose=broken, now=Clock())
    assert await run.run_once() == DeliveryReport(retried=1)


async def test_a_graceful_stop_finishes_sends_in_flight_and_leaves_the_rest_pending(db_url: str) -> None:
    store = await open_store(db_url)
    chats = list(range(1, 31))
    await subscribe(store, *chats)
    stop = asyncio.Event()
    sender = StopAfter(3, stop)
    limits = replace(FAST, max_in_flight=4)
    report = await engine(store, sender, limits=limits).run_once(stop)
    started = len(sender.calls)
    assert 3 <= started <= limits.max_in_flight
    assert report.sent == started == len(sender.sent)
    stats = await store.delivery_stats()
    assert (stats.sent, stats.sending, stats.pending) == (started, 0, 30 - started)
    await store.close()

    resumed = await open_store(db_url)
    try:
        rest = FakeSender()
        report = await engine(resumed, rest, worker_id="w2").run_once()
        assert report.sent == 30 - started and report.possible_duplicates == 0
        assert sorted(chat for chat, *_ in sender.sent + rest.sent) == chats
    finally:
        await resumed.close()


async def test_a_stop_interrupts_a_wait_for_the_chat_and_keeps_the_parts_already_sent(
        store: SubscriptionStore) -> None:
    await subscribe(store, 9)
    stop = asyncio.Event()
    sender = StopAfter(1, stop)
    slow_chat = TelegramPace(private_interval=30.0)  # part 2 would wait 30 s of real time for its chat
    started = loop_time()
    report = await engine(store, sender, Composer(parts=2), pace=slow_chat).run_once(stop)
    assert loop_time() - started < 1.0
    assert report == DeliveryReport(released=1)
    assert sender.to(9) == ["digest 9 part 1"]
    rest = FakeSender()
    assert (await engine(store, rest, Composer(parts=2), worker_id="w2").run_once()).sent == 1
    assert rest.to(9) == ["digest 9 part 2"]


async def test_a_delivery_held_nearly_as_long_as_its_lease_is_handed_back_and_reclaimed(
        store: SubscriptionStore) -> None:
    await subscribe(store, 9)
    monotonic = VirtualTime()

    class SlowFirstPart(FakeSender):
        async def send(self, chat: ChatAddress, thread_id: int | None, html: str, *, silent: bool) -> None:
            await super().send(chat, thread_id, html, silent=silent)
            if len(self.sent) == 1:
                monotonic.now += 0.95 * FAST.lease_seconds  # e.g. a long wait for a busy group's turn

    sender = SlowFirstPart()
    run = DeliveryEngine(store, telegram_platform(sender, UNPACED), FAST,
                         worker_id="w", compose=Composer(parts=2), now=Clock(),
                         monotonic=monotonic.clock, sleep=monotonic.sleep)
    assert await run.run_once() == DeliveryReport(sent=1, released=1)  # re-claimed at once, with a fresh lease
    assert sender.to(9) == ["digest 9 part 1", "digest 9 part 2"]


async def test_run_forever_sends_what_is_due_and_stops_when_told(store: SubscriptionStore) -> None:
    await subscribe(store, 1, 2)
    sender = FakeSender()
    stop = asyncio.Event()
    run = engine(store, sender)
    task = asyncio.create_task(run.run_forever(stop, idle_interval=0.01))
    await asyncio.wait_for(sender.wait_sent(2), 1.0)
    assert await store.enqueue_broadcast(DigestPayload(("late news",)), NOW) == 2
    await asyncio.wait_for(sender.wait_sent(4), 1.0)
    stop.set()
    total = await asyncio.wait_for(task, 1.0)
    assert total.sent == 4


# --- helpers for the engine tests ---------------------------------------------------------------------------------

class StopAfter(FakeSender):
    """Sets `stop` when the n-th send starts; every send takes a moment, so others are in flight."""

    def __init__(self, n: int, stop: asyncio.Event) -> None:
        super().__init__()
        self._n = n
        self._stop = stop
        self.latency = 0.01

    async def send(self, chat: ChatAddress, thread_id: int | None, html: str, *, silent: bool) -> None:
        if len(self.calls) + 1 == self._n:
            self._stop.set()
        await super().send(chat, thread_id, html, silent=silent)


class CrashAfterFirstPart:
    """A store whose process dies right after recording the first part sent (no send in flight)."""

    def __init__(self, inner: SubscriptionStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def record_part_sent(self, delivery_id: int, parts_sent: int, now: datetime) -> None:
        await self._inner.record_part_sent(delivery_id, parts_sent, now)
        raise Crash("power cut after part 1 was recorded")


def loop_time() -> float:
    return asyncio.get_running_loop().time()


# --- Platforms: the address picks the sender -------------------------------------------------------------------


class Workspace:
    """Another platform's edge (Slack-like addresses): records what it sends, refuses a revoked workspace's chats."""

    def __init__(self, revoked: str | None = None) -> None:
        self.sent: list[tuple[ChatAddress, str]] = []
        self.revoked = revoked

    async def send(self, chat: ChatAddress, thread_id: int | None, part: str, *, silent: bool) -> None:
        if self.revoked and str(chat).startswith(self.revoked):
            raise WorkspaceGone(self.revoked, "token_revoked")
        self.sent.append((chat, part))


async def subscribe_addresses(store: SubscriptionStore, *chats: str) -> list[ChatAddress]:
    addresses = [ChatAddress.parse(chat) for chat in chats]
    for chat in addresses:
        await store.save_subscription(SubscriptionRequest(chat, None, ChatKind.GROUP, DAILY), NOW - timedelta(days=2))
    assert await store.enqueue_due(NOW, 100) == len(addresses)
    return addresses


async def test_each_chat_goes_through_the_platform_its_address_names(store: SubscriptionStore) -> None:
    telegram_chats, slack = FakeSender(), Workspace()
    await subscribe_addresses(store, "telegram:1", "slack:T0123/C1", "telegram:-100200", "slack:T0123/C2")
    slack_platform = Platform(SLACK, slack, pace=lambda chat: ChatPace(1, 1.0))
    run = DeliveryEngine(store, [telegram_platform(telegram_chats, UNPACED), slack_platform], FAST, worker_id="w",
                         compose=AddressedComposer(), now=Clock())
    assert await run.run_once() == DeliveryReport(sent=4)
    assert sorted(chat for chat, _, _, _ in telegram_chats.sent) == [-100200, 1]
    assert sorted(str(chat) for chat, _ in slack.sent) == ["slack:T0123/C1", "slack:T0123/C2"]
    assert "digest for slack:T0123/C1" in [part for _, part in slack.sent]
    with pytest.raises(ValueError, match="two platforms"):
        DeliveryEngine(store, [slack_platform, slack_platform], FAST, worker_id="w", compose=Composer())


async def test_a_chat_whose_platform_this_process_lacks_waits_and_is_not_lost(store: SubscriptionStore) -> None:
    sender = FakeSender()
    await subscribe_addresses(store, "telegram:1", "slack:T0123/C1")
    clock = Clock()
    only_telegram = DeliveryEngine(store, telegram_platform(sender, UNPACED), FAST, worker_id="w",
                                   compose=AddressedComposer(), now=clock)
    assert await only_telegram.run_once() == DeliveryReport(sent=1, retried=1)
    clock.advance(FAST.backoff_cap)
    slack = Workspace()
    both = DeliveryEngine(store, [telegram_platform(sender, UNPACED), Platform(SLACK, slack)], FAST, worker_id="w2",
                          compose=AddressedComposer(), now=clock)
    assert await both.run_once() == DeliveryReport(sent=1)
    assert [str(chat) for chat, _ in slack.sent] == ["slack:T0123/C1"]


async def test_a_revoked_workspace_deactivates_every_chat_in_it_and_no_other(store: SubscriptionStore) -> None:
    slack = Workspace(revoked="slack:T0123/")
    chats = await subscribe_addresses(store, "slack:T0123/C1", "slack:T0123/C2", "slack:T0999/C3")
    run = DeliveryEngine(store, Platform(SLACK, slack), FAST, worker_id="w", compose=AddressedComposer(), now=Clock())
    report = await run.run_once()
    assert (report.sent, report.failed, report.retried) == (1, 2, 0)
    assert report.deactivated >= 1
    active = [(await store.get_subscription(chat, None)).active for chat in chats]  # type: ignore[union-attr]
    assert active == [False, False, True]
    assert [str(chat) for chat, _ in slack.sent] == ["slack:T0999/C3"]


class AddressedComposer:
    """One part per delivery, naming its chat's address."""

    async def __call__(self, delivery: Delivery) -> DigestPayload | None:
        return DigestPayload(parts=(f"digest for {delivery.subscription.chat}",))
