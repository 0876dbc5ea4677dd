"""The store contract: every test runs against SQLite (a real file) and PostgreSQL (a real server)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from bot.core.addresses import ChatAddress, telegram
from bot.core.candidates import CandidateState, FoundItem, ReviewDraft, SourceState
from bot.core.document import block, bold, code, doc, heading, italic, item, line, link, pre
from bot.core.messages import ChatKind
from bot.core.prompts import OpenPrompt
from bot.core.schedule import Cadence, QuietHours, Schedule
from bot.core.subscriptions import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    DigestHistory,
    DigestPayload,
    IncomingClaim,
    SubscriptionRequest,
)
from bot.store import SqlStore, StoreError, open_store
from bot.store.drivers import SqliteDriver, Write
from bot.store.migrations import MIGRATIONS, Migration, applied_migrations, apply_migrations
from bot.store.sql import claimable_deliveries_sql, due_subscriptions_sql

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Hong Kong
HK_9AM = Schedule(Cadence.DAILY, time(9, 0), "Asia/Hong_Kong")
LEASE = 60.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_db_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    """An open, migrated store on a fresh database."""
    opened = await open_store(database_url, single_process=False)
    try:
        yield opened
    finally:
        await opened.close()


def req(
    chat_id: int = 100,
    thread_id: int | None = None,
    schedule: Schedule = HK_9AM,
    sections: tuple[str, ...] = (),
    kind: ChatKind = ChatKind.PRIVATE,
    spotlight: bool = True,
) -> SubscriptionRequest:
    """A /subscribe request, daily at 09:00 Hong Kong time unless told otherwise."""
    return SubscriptionRequest(telegram(chat_id), thread_id, kind, schedule, sections, spotlight)


async def subscribe_due(store: SqlStore, *chat_ids: int) -> None:
    """Subscribe chats at 08:00 Hong Kong time and enqueue their 09:00 digests (period T0)."""
    for chat_id in chat_ids:
        await store.save_subscription(req(chat_id), T0 - timedelta(hours=1))
    assert await store.enqueue_due(T0, 1000) == len(chat_ids)


async def claim_one(store: SqlStore, now: datetime = T0, worker: str = "w1") -> Delivery:
    """Claim, expecting exactly one delivery."""
    claimed = await store.claim_deliveries(worker, now, LEASE, 10)
    assert len(claimed) == 1
    return claimed[0]


# ---------------------------------------------------------------------------------------------------- subscriptions


async def test_subscribe_twice_keeps_one_subscription(store: SqlStore) -> None:
    first = await store.save_subscription(req(sections=("finance",)), T0)
    second = await store.save_subscription(req(sections=("health", "policy")), T0 + timedelta(minutes=5))

    assert second.id == first.id
    assert await store.count_active() == 1
    assert await store.get_subscription(telegram(100), None) == second
    assert second.sections == ("health", "policy")


async def test_saved_subscription_roundtrips_every_field(store: SqlStore) -> None:
    weekly = Schedule(Cadence.WEEKLY, time(18, 30), "Europe/London", weekday=4)
    saved = await store.save_subscription(
        req(-1001, 42, weekly, ("finance", "startups"), ChatKind.SUPERGROUP, spotlight=False), T0
    )

    loaded = await store.get_subscription(telegram(-1001), 42)
    assert loaded == saved
    assert (loaded.chat, loaded.thread_id, loaded.chat_kind) == (telegram(-1001), 42, ChatKind.SUPERGROUP)
    assert (loaded.schedule, loaded.sections, loaded.spotlight, loaded.active) == (
        weekly, ("finance", "startups"), False, True
    )
    assert loaded.created_at == T0 and loaded.created_at.tzinfo == UTC
    assert loaded.next_due_at == datetime(2026, 3, 6, 18, 30, tzinfo=UTC)


async def test_resubscribe_reactivates_and_keeps_id(store: SqlStore) -> None:
    first = await store.save_subscription(req(), T0)
    assert await store.unsubscribe(telegram(100), None, T0 + timedelta(hours=1))
    inactive = await store.get_subscription(telegram(100), None)
    assert inactive is not None and not inactive.active
    assert await store.count_active() == 0

    later = T0 + timedelta(days=3)
    again = await store.save_subscription(req(), later)

    assert again.id == first.id and again.active
    assert again.created_at == first.created_at
    assert again.next_due_at == HK_9AM.next_after(later)


async def test_thread_subscriptions_are_separate_from_the_chat(store: SqlStore) -> None:
    chat = await store.save_subscription(req(-1001, None, kind=ChatKind.SUPERGROUP), T0)
    topic = await store.save_subscription(req(-1001, 7, kind=ChatKind.SUPERGROUP), T0)

    assert chat.id != topic.id
    assert (chat.thread_id, topic.thread_id) == (None, 7)
    assert await store.unsubscribe(telegram(-1001), 7, T0)
    still = await store.get_subscription(telegram(-1001), None)
    assert still is not None and still.active
    assert await store.get_subscription(telegram(-1001), 8) is None


async def test_unsubscribe_returns_false_when_not_subscribed(store: SqlStore) -> None:
    assert not await store.unsubscribe(telegram(100), None, T0)
    await store.save_subscription(req(), T0)
    assert await store.unsubscribe(telegram(100), None, T0)
    assert not await store.unsubscribe(telegram(100), None, T0)


async def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.save_subscription(req(), T0.replace(tzinfo=None))


async def test_quiet_hours_roundtrip(store: SqlStore) -> None:
    assert await store.get_quiet_hours(telegram(100)) is None
    overnight = QuietHours(time(22, 0), time(7, 30), "Asia/Hong_Kong")

    await store.set_quiet_hours(telegram(100), overnight)
    assert await store.get_quiet_hours(telegram(100)) == overnight
    assert await store.get_quiet_hours(telegram(200)) is None

    daytime = QuietHours(time(12, 0), time(13, 0), "Europe/London")
    await store.set_quiet_hours(telegram(100), daytime)
    assert await store.get_quiet_hours(telegram(100)) == daytime

    await store.set_quiet_hours(telegram(100), None)
    assert await store.get_quiet_hours(telegram(100)) is None


async def test_chat_language_roundtrip_beside_quiet_hours(store: SqlStore) -> None:
    assert await store.get_chat_language(telegram(100)) is None  # no first contact yet
    await store.set_chat_language(telegram(100), "zh-Hant")
    assert await store.get_chat_language(telegram(100)) == "zh-Hant"
    assert await store.get_chat_language(telegram(200)) is None
    assert await store.get_chat_language(ChatAddress("console", "100")) is None  # the same id on another platform

    overnight = QuietHours(time(22, 0), time(7, 30), "Asia/Hong_Kong")
    await store.set_quiet_hours(telegram(100), overnight)  # one row per chat: neither setting overwrites the other
    await store.set_quiet_hours(telegram(100), None)
    assert await store.get_chat_language(telegram(100)) == "zh-Hant"
    await store.set_quiet_hours(telegram(300), overnight)
    await store.set_chat_language(telegram(300), "en")
    assert await store.get_quiet_hours(telegram(300)) == overnight
    assert await store.get_chat_language(telegram(300)) == "en"


async def test_subscriptions_and_claimed_digests_carry_the_chat_s_language(store: SqlStore) -> None:
    saved = await store.save_subscription(req(100), T0 - timedelta(hours=1))
    assert saved.language == "en"  # a chat that never set one reads English
    await store.set_chat_language(telegram(100), "zh-Hant")
    assert (await store.get_subscription(telegram(100), None)).language == "zh-Hant"  # type: ignore[union-attr]
    assert (await store.save_subscription(req(100), T0 - timedelta(hours=1))).language == "zh-Hant"
    await store.save_subscription(req(200), T0 - timedelta(hours=1))
    assert await store.enqueue_due(T0, 10) == 2

    deliveries = await store.claim_deliveries("w", T0, LEASE, 10)
    claimed = {delivery.subscription.chat: delivery.subscription.language for delivery in deliveries}

    assert claimed == {telegram(100): "zh-Hant", telegram(200): "en"}


async def test_a_group_s_language_moves_with_it_to_the_supergroup(store: SqlStore) -> None:
    await store.save_subscription(req(-100, kind=ChatKind.GROUP), T0)
    await store.set_chat_language(telegram(-100), "zh-Hant")
    await store.migrate_chat(telegram(-100), telegram(-1001))
    assert await store.get_chat_language(telegram(-1001)) == "zh-Hant"
    assert (await store.get_subscription(telegram(-1001), None)).language == "zh-Hant"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------- scheduling


async def test_enqueue_due_uses_period_key_and_is_idempotent(store: SqlStore) -> None:
    await store.save_subscription(req(), T0 - timedelta(hours=1))
    assert await store.next_due_at() == T0
    assert await store.enqueue_due(T0 - timedelta(seconds=1), 100) == 0

    assert await store.enqueue_due(T0, 100) == 1
    assert await store.enqueue_due(T0, 100) == 0  # next_due_at moved on

    # A replica with a lagging clock re-saves the subscription: it is due at T0 again, a key already enqueued.
    await store.save_subscription(req(), T0 - timedelta(minutes=30))
    assert await store.enqueue_due(T0, 100) == 0

    delivery = await claim_one(store)
    assert (delivery.kind, delivery.period, delivery.payload) == (DeliveryKind.DIGEST, T0, None)
    assert (await store.delivery_stats()).sending == 1


async def test_missed_slots_collapse_into_one_delivery(store: SqlStore) -> None:
    await store.save_subscription(req(), T0 - timedelta(hours=1))
    back_up = T0 + timedelta(days=2, minutes=30)  # down through three 09:00 firings

    assert await store.enqueue_due(back_up, 100) == 1
    assert await store.enqueue_due(back_up, 100) == 0

    subscription = await store.get_subscription(telegram(100), None)
    assert subscription is not None and subscription.next_due_at == T0 + timedelta(days=3)
    assert (await claim_one(store, back_up)).period == T0
    stats = await store.delivery_stats()
    assert (stats.pending, stats.sending) == (0, 1)


@pytest.mark.parametrize(
    ("schedule", "subscribed", "first", "after_first"),
    [
        # London moves to BST on Sunday 29 March 2026: 09:00 local is 09:00 UTC before, 08:00 UTC after.
        (
            Schedule(Cadence.DAILY, time(9, 0), "Europe/London"),
            datetime(2026, 3, 28, 10, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 8, 0, tzinfo=UTC),
            datetime(2026, 3, 30, 8, 0, tzinfo=UTC),
        ),
        (
            Schedule(Cadence.WEEKLY, time(9, 0), "Europe/London", weekday=0),
            datetime(2026, 3, 23, 10, 0, tzinfo=UTC),
            datetime(2026, 3, 30, 8, 0, tzinfo=UTC),
            datetime(2026, 4, 6, 8, 0, tzinfo=UTC),
        ),
    ],
    ids=["daily-across-dst", "weekly-across-dst"],
)
async def test_next_due_moves_to_the_first_firing_after_now(
    store: SqlStore, schedule: Schedule, subscribed: datetime, first: datetime, after_first: datetime
) -> None:
    saved = await store.save_subscription(req(schedule=schedule), subscribed)
    assert saved.next_due_at == first
    assert await store.next_due_at() == first

    assert await store.enqueue_due(first + timedelta(minutes=1), 10) == 1

    moved = await store.get_subscription(telegram(100), None)
    assert moved is not None and moved.next_due_at == after_first
    assert await store.next_due_at() == after_first


async def test_enqueue_due_takes_the_earliest_due_first_up_to_the_limit(store: SqlStore) -> None:
    for minutes, chat_id in [(30, 1), (10, 2), (20, 3)]:
        schedule = Schedule(Cadence.DAILY, time(8, minutes), "Asia/Hong_Kong")
        await store.save_subscription(req(chat_id, schedule=schedule), T0 - timedelta(hours=2))

    assert await store.enqueue_due(T0, 2) == 2
    claimed = await store.claim_deliveries("w1", T0, LEASE, 10)
    assert sorted(int(d.subscription.chat.id) for d in claimed) == [2, 3]
    assert await store.enqueue_due(T0, 2) == 1


async def test_deactivate_chat_stops_enqueueing(store: SqlStore) -> None:
    await store.save_subscription(req(-1001, None, kind=ChatKind.SUPERGROUP), T0 - timedelta(hours=1))
    await store.save_subscription(req(-1001, 7, kind=ChatKind.SUPERGROUP), T0 - timedelta(hours=1))
    await store.save_subscription(req(200), T0 - timedelta(hours=1))

    assert await store.deactivate_chat(telegram(-1001), "bot was blocked", T0 - timedelta(minutes=1)) == 2
    assert await store.deactivate_chat(telegram(-1001), "bot was blocked", T0) == 0

    assert await store.enqueue_due(T0, 100) == 1
    assert await store.count_active() == 1
    assert [int(d.subscription.chat.id) for d in await store.claim_deliveries("w1", T0, LEASE, 10)] == [200]


async def test_a_gone_workspace_deactivates_its_chats_and_no_other(store: SqlStore) -> None:
    chats = [ChatAddress.parse(text) for text in
             ("slack:T0123/C1", "slack:T0123/C2", "slack:T01234/C3", "slack:T9/C0123")]
    for chat in [*chats, telegram(5)]:
        await store.save_subscription(SubscriptionRequest(chat, None, ChatKind.GROUP, HK_9AM),
                                      T0 - timedelta(days=1))
    await store.enqueue_due(T0, 100)

    assert await store.deactivate_workspace("slack:T0123/", "token_revoked", T0) == 2
    assert await store.deactivate_workspace("slack:T0123/", "token_revoked", T0) == 0
    with pytest.raises(ValueError):
        await store.deactivate_workspace("T0123/", "no platform", T0)

    assert await store.active_by_platform() == {"slack": 2, "telegram": 1}
    states = {str(chat): (await store.get_subscription(chat, None)).active  # type: ignore[union-attr]
              for chat in [*chats, telegram(5)]}
    assert states == {"slack:T0123/C1": False, "slack:T0123/C2": False, "slack:T01234/C3": True,
                      "slack:T9/C0123": True, "telegram:5": True}
    claimed = await store.claim_deliveries("w1", T0, LEASE, 10)
    assert sorted(str(d.subscription.chat) for d in claimed) == ["slack:T01234/C3", "slack:T9/C0123", "telegram:5"]
    assert (await store.delivery_stats()).failed == 2  # the pending digests of the gone workspace


async def test_deliveries_of_deactivated_subscriptions_are_failed_not_claimed(store: SqlStore) -> None:
    await subscribe_due(store, 100, 200, 300)
    sending = await store.claim_deliveries("w1", T0, LEASE, 1)
    assert [int(d.subscription.chat.id) for d in sending] == [100]

    await store.unsubscribe(telegram(100), None, T0)  # its delivery is being sent: the sender finishes it
    await store.deactivate_chat(telegram(200), "kicked", T0)  # pending: failed at once

    stats = await store.delivery_stats()
    assert (stats.pending, stats.sending, stats.failed) == (1, 1, 1)
    later = T0 + timedelta(seconds=LEASE + 1)
    assert [int(d.subscription.chat.id) for d in await store.claim_deliveries("w2", later, LEASE, 10)] == [300]
    stats = await store.delivery_stats()
    assert (stats.pending, stats.sending, stats.failed) == (0, 1, 2)


# ---------------------------------------------------------------------------------------------------- sending


async def test_claim_marks_sending_and_leases(store: SqlStore) -> None:
    await subscribe_due(store, 100)
    subscription = await store.get_subscription(telegram(100), None)

    delivery = await claim_one(store)

    assert delivery.subscription == subscription
    assert (delivery.status, delivery.attempts, delivery.parts_sent) == (DeliveryStatus.SENDING, 1, 0)
    assert not delivery.in_flight_at_crash
    assert await store.claim_deliveries("w2", T0 + timedelta(seconds=LEASE - 1), LEASE, 10) == []
    stats = await store.delivery_stats()
    assert (stats.pending, stats.sending) == (0, 1)


async def test_claim_takes_deliveries_in_order_up_to_the_limit(store: SqlStore) -> None:
    await subscribe_due(store, 1, 2, 3, 4, 5)
    first = await store.claim_deliveries("w1", T0, LEASE, 2)
    second = await store.claim_deliveries("w2", T0, LEASE, 10)

    assert [int(d.subscription.chat.id) for d in first] == [1, 2]
    assert [int(d.subscription.chat.id) for d in second] == [3, 4, 5]
    assert [d.id for d in first + second] == sorted(d.id for d in first + second)


async def test_expired_lease_is_reclaimed_and_flagged_as_possible_duplicate(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    await subscribe_due(store, 100)
    delivery = await claim_one(store)
    payload = DigestPayload(("part one", "part two"), ("u1",), "i1")
    await store.set_payload(delivery.id, payload)
    await store.record_part_sent(delivery.id, 1, T0 + timedelta(seconds=1))
    # The sender dies here, maybe in the middle of sending part two.

    assert await store.claim_deliveries("w2", T0 + timedelta(seconds=LEASE - 1), LEASE, 10) == []
    with caplog.at_level(logging.WARNING, logger="bot.store.sql"):
        resumed = await claim_one(store, T0 + timedelta(seconds=LEASE + 1), "w2")

    assert resumed.id == delivery.id
    assert resumed.in_flight_at_crash
    assert (resumed.attempts, resumed.parts_sent, resumed.payload) == (2, 1, payload)
    assert "possible duplicate" in caplog.text
    assert (await store.delivery_stats()).possible_duplicates == 1


async def test_a_claim_whose_send_never_started_is_not_flagged(store: SqlStore) -> None:
    await subscribe_due(store, 1, 2)
    waiting, sending = await store.claim_deliveries("w1", T0, LEASE, 2)
    await store.set_payload(sending.id, DigestPayload(("hello",)))  # written just before its send
    # The sender dies: `waiting` was still queued behind the rate limiter, `sending` was on the wire.
    later = T0 + timedelta(seconds=LEASE + 1)
    resumed = {d.id: d.in_flight_at_crash for d in await store.claim_deliveries("w2", later, LEASE, 10)}
    assert resumed == {waiting.id: False, sending.id: True}
    assert (await store.delivery_stats()).possible_duplicates == 1


async def test_a_retried_delivery_starts_unflagged(store: SqlStore) -> None:
    await subscribe_due(store, 1)
    delivery = await claim_one(store)
    await store.mark_started(delivery.id)
    await store.retry_delivery(delivery.id, T0, "timeout")  # the send failed cleanly: it did not go out
    again = await claim_one(store, T0 + timedelta(seconds=1), "w2")
    await store.release_claims()
    assert not (await claim_one(store, T0 + timedelta(seconds=2), "w3")).in_flight_at_crash
    assert again.id == delivery.id


async def test_release_claims_makes_rows_reclaimable(store: SqlStore) -> None:
    await subscribe_due(store, 1, 2, 3)
    mine = await store.claim_deliveries("w1", T0, LEASE, 1)
    theirs = await store.claim_deliveries("w2", T0, LEASE, 2)
    await store.mark_started(mine[0].id)

    assert await store.release_claims("w1") == 1
    reclaimed = await store.claim_deliveries("w3", T0, LEASE, 10)
    assert [d.id for d in reclaimed] == [d.id for d in mine]
    assert reclaimed[0].in_flight_at_crash

    assert await store.release_claims() == 3
    assert {d.id for d in await store.claim_deliveries("w4", T0, LEASE, 10)} == {d.id for d in mine + theirs}


async def test_reopening_a_single_process_store_releases_its_claims(database_url: str) -> None:
    store = await open_store(database_url, single_process=True)
    try:
        await subscribe_due(store, 100)
        claimed = await claim_one(store)
        await store.mark_started(claimed.id)
    finally:
        await store.close()

    restarted = await open_store(database_url, single_process=True)
    try:
        resumed = await claim_one(restarted, T0 + timedelta(seconds=1))  # the old lease has not run out yet
        assert resumed.id == claimed.id and resumed.in_flight_at_crash
    finally:
        await restarted.close()


async def test_concurrent_claims_never_hand_out_the_same_delivery(store: SqlStore, database_url: str) -> None:
    chats = list(range(1, 61))
    await subscribe_due(store, *chats)
    other = await open_store(database_url, single_process=False)

    async def drain(claimer: SqlStore, worker: str) -> list[int]:
        ids: list[int] = []
        while batch := await claimer.claim_deliveries(worker, T0, LEASE, 3):
            ids += [d.id for d in batch]
        return ids

    try:
        results = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate([store, other] * 3)))
    finally:
        await other.close()

    handed_out = [i for ids in results for i in ids]
    assert len(handed_out) == len(set(handed_out)) == len(chats)
    stats = await store.delivery_stats()
    assert (stats.sending, stats.possible_duplicates) == (len(chats), 0)


async def test_concurrent_schedulers_enqueue_each_due_subscription_once(store: SqlStore, database_url: str) -> None:
    for chat_id in range(1, 51):
        await store.save_subscription(req(chat_id), T0 - timedelta(hours=1))
    other = await open_store(database_url, single_process=False)

    async def schedule(scheduler: SqlStore) -> int:
        total = 0
        while enqueued := await scheduler.enqueue_due(T0, 7):
            total += enqueued
        return total

    try:
        counts = await asyncio.gather(*(schedule(s) for s in [store, other] * 2))
    finally:
        await other.close()

    assert sum(counts) == 50
    assert len(await store.claim_deliveries("w1", T0, LEASE, 100)) == 50
    assert await store.next_due_at() == T0 + timedelta(days=1)


async def test_complete_delivery_records_history(store: SqlStore) -> None:
    await subscribe_due(store, 100)
    delivery = await claim_one(store)
    assert await store.history(delivery.subscription.id) == DigestHistory()

    await store.set_payload(delivery.id, DigestPayload(("one", "two"), ("u1", "u2"), "initiative-7"))
    await store.record_part_sent(delivery.id, 1, T0)
    await store.record_part_sent(delivery.id, 2, T0)
    await store.complete_delivery(delivery.id, T0 + timedelta(seconds=2))

    assert await store.history(delivery.subscription.id) == DigestHistory(
        frozenset({"u1", "u2"}), frozenset({"initiative-7"})
    )
    stats = await store.delivery_stats()
    assert (stats.sending, stats.sent) == (0, 1)
    assert await store.claim_deliveries("w2", T0 + timedelta(days=1), LEASE, 10) == []


async def test_concurrent_completions_are_each_committed_when_they_return(store: SqlStore, database_url: str) -> None:
    chats = range(1, 201)
    await subscribe_due(store, *chats)
    claimed = await store.claim_deliveries("w1", T0, LEASE, 500)
    # Keys with quotes, backslashes and Chinese go through the JSON the history is read from in SQL.
    odd_key = 'u "quoted" \\ 港'
    await asyncio.gather(*(store.set_payload(d.id, DigestPayload(("text",), (f"u{d.id}", odd_key), f"i{d.id}"))
                           for d in claimed))
    await asyncio.gather(*(store.complete_delivery(d.id, T0) for d in claimed))

    other = await open_store(database_url, single_process=False)  # another connection sees every commit
    try:
        assert (await other.delivery_stats()).sent == len(chats)
        for delivery in claimed[:3] + claimed[-3:]:
            assert await other.history(delivery.subscription.id) == DigestHistory(
                frozenset({f"u{delivery.id}", odd_key}), frozenset({f"i{delivery.id}"}))
    finally:
        await other.close()


async def test_a_write_that_fails_fails_alone(store: SqlStore) -> None:
    await subscribe_due(store, 1, 2, 3)
    first, second, third = await store.claim_deliveries("w1", T0, LEASE, 10)
    broken = Write("UPDATE deliveries SET status = 'lost' WHERE id = ?", (second.id,))  # breaks a CHECK
    outcomes = await asyncio.gather(
        store.complete_delivery(first.id, T0), store.driver.write(broken), store.complete_delivery(third.id, T0),
        return_exceptions=True)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], sqlite3.IntegrityError | psycopg.errors.CheckViolation)
    stats = await store.delivery_stats()
    assert (stats.sent, stats.sending) == (2, 1)


async def test_a_write_cancelled_before_it_ran_is_not_committed(sqlite_url: str) -> None:
    store = await open_store(sqlite_url)
    try:
        await subscribe_due(store, 1)
        delivery = await claim_one(store)
        async with store.driver.transaction(write=False):  # the connection is busy: the write must queue
            cancelled = asyncio.create_task(store.fail_delivery(delivery.id, "never", T0))
            kept = asyncio.create_task(store.set_payload(delivery.id, DigestPayload(("kept",))))
            await asyncio.sleep(0)
            cancelled.cancel()
        await kept
        assert cancelled.cancelled()
        assert (await store.delivery_stats()).failed == 0
    finally:
        await store.close()


async def test_writes_fail_together_at_once_while_another_process_holds_the_database(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    driver = SqliteDriver(path, busy_timeout_ms=300)
    await driver.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await driver.write(Write("CREATE TABLE t (x INTEGER)"))
        other.execute("BEGIN IMMEDIATE")  # another process writing, and taking its time
        began = asyncio.get_running_loop().time()
        outcomes = await asyncio.gather(*(driver.write(Write("INSERT INTO t VALUES (?)", (i,))) for i in range(20)),
                                        return_exceptions=True)
        waited = asyncio.get_running_loop().time() - began
        other.execute("ROLLBACK")
    finally:
        other.close()
        await driver.close()
    assert all(isinstance(outcome, sqlite3.OperationalError) for outcome in outcomes)
    assert waited < 20 * 0.3  # one busy timeout for the group (or two), not one per write


async def test_closing_the_store_commits_the_writes_still_queued(sqlite_url: str) -> None:
    store = await open_store(sqlite_url)
    await subscribe_due(store, 1, 2)
    claimed = await store.claim_deliveries("w1", T0, LEASE, 10)
    writes = [asyncio.create_task(store.complete_delivery(d.id, T0)) for d in claimed]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*writes)
    reopened = await open_store(sqlite_url)
    try:
        assert (await reopened.delivery_stats()).sent == 2
    finally:
        await reopened.close()


async def test_next_claimable_at_is_the_earliest_retry_or_lease_end(store: SqlStore) -> None:
    assert await store.next_claimable_at() is None
    await subscribe_due(store, 1, 2)
    assert await store.next_claimable_at() <= T0  # type: ignore[operator]  # pending, no not_before: now
    first, second = await store.claim_deliveries("w1", T0, LEASE, 10)
    assert await store.next_claimable_at() == T0 + timedelta(seconds=LEASE)  # both being sent: their lease
    await store.retry_delivery(first.id, T0 + timedelta(seconds=7), "502 Bad Gateway")
    assert await store.next_claimable_at() == T0 + timedelta(seconds=7)
    await store.complete_delivery(second.id, T0)
    await store.fail_delivery(first.id, "gone", T0)
    assert await store.next_claimable_at() is None


async def test_pruning_deletes_only_old_finished_deliveries_and_keeps_the_history(store: SqlStore) -> None:
    await subscribe_due(store, 1, 2, 3, 4, 5)
    old_sent, old_failed, recent_sent, stuck_sending, waiting = await store.claim_deliveries("w1", T0, LEASE, 10)
    await store.set_payload(old_sent.id, DigestPayload(("text",), ("u1",)))
    await store.complete_delivery(old_sent.id, T0)
    await store.fail_delivery(old_failed.id, "Forbidden: bot was blocked by the user", T0)
    await store.complete_delivery(recent_sent.id, T0 + timedelta(days=20))
    await store.retry_delivery(waiting.id, T0 + timedelta(days=40), "502 Bad Gateway")
    cutoff = T0 + timedelta(days=10)

    assert await store.prune_finished_deliveries(cutoff, 1) == 1  # the limit holds
    assert await store.prune_finished_deliveries(cutoff, 100) == 1
    assert await store.prune_finished_deliveries(cutoff, 100) == 0

    stats = await store.delivery_stats()
    assert (stats.sent, stats.failed, stats.sending, stats.pending) == (1, 0, 1, 1)
    assert await store.history(old_sent.subscription.id) == DigestHistory(frozenset({"u1"}))
    assert await store.enqueue_due(T0, 1000) == 0  # a pruned period is not owed again
    assert {d.id for d in await store.claim_deliveries("w2", T0 + timedelta(days=41), LEASE, 10)} == {
        stuck_sending.id, waiting.id}


async def test_retry_delivery_respects_not_before(store: SqlStore) -> None:
    await subscribe_due(store, 100)
    delivery = await claim_one(store)
    retry_at = T0 + timedelta(minutes=5)

    await store.retry_delivery(delivery.id, retry_at, "429 Too Many Requests")

    assert (await store.delivery_stats()).pending == 1
    assert await store.claim_deliveries("w1", retry_at - timedelta(seconds=1), LEASE, 10) == []
    again = await claim_one(store, retry_at)
    assert (again.id, again.attempts, again.not_before, again.in_flight_at_crash) == (delivery.id, 2, retry_at, False)


async def test_fail_delivery_is_not_reclaimed(store: SqlStore) -> None:
    await subscribe_due(store, 100)
    delivery = await claim_one(store)

    await store.fail_delivery(delivery.id, "chat not found", T0)

    assert await store.claim_deliveries("w1", T0 + timedelta(days=1), LEASE, 10) == []
    stats = await store.delivery_stats()
    assert (stats.pending, stats.sending, stats.failed) == (0, 0, 1)


async def test_broadcast_enqueues_one_per_active_subscription(store: SqlStore) -> None:
    for chat_id in (1, 2, 3):
        await store.save_subscription(req(chat_id), T0)
    await store.save_subscription(req(3, 9), T0)
    await store.unsubscribe(telegram(2), None, T0)

    assert await store.enqueue_broadcast(DigestPayload(("Hello", "world")), T0) == 3
    claimed = await store.claim_deliveries("w1", T0, LEASE, 10)

    assert {(int(d.subscription.chat.id), d.subscription.thread_id) for d in claimed} == {(1, None), (3, None), (3, 9)}
    assert {(d.kind, d.period, d.payload) for d in claimed} == {
        (DeliveryKind.BROADCAST, T0, DigestPayload(("Hello", "world")))
    }
    await store.complete_delivery(claimed[0].id, T0)
    assert await store.history(claimed[0].subscription.id) == DigestHistory()


async def test_a_payload_keeps_its_document_and_keys_as_written(store: SqlStore) -> None:
    await store.save_subscription(req(1), T0)
    message = doc(block(heading("Digest · 1 Aug"), line("Émoji 😀 & <tags> ", link("more", "https://e.org/?a=1&b=2"))),
                  block(item(bold("x"), " ", italic("y"), " ", code("z")), pre("a\n  b")))
    await store.enqueue_broadcast(DigestPayload(message=message), T0)
    (claimed,) = await store.claim_deliveries("w1", T0, LEASE, 10)
    assert claimed.payload == DigestPayload(message=message)
    await store.set_payload(claimed.id, DigestPayload((), ("u1",), "i1", message))
    await store.complete_delivery(claimed.id, T0)
    assert await store.history(claimed.subscription.id) == DigestHistory(frozenset({"u1"}), frozenset({"i1"}))


async def test_delivery_stats_counts(store: SqlStore) -> None:
    empty = await store.delivery_stats()
    assert (empty.pending, empty.sent, empty.failed, empty.last_period) == (0, 0, 0, None)

    await subscribe_due(store, 1, 2, 3, 4)  # period T0
    sent, failed, crashed, fourth = await store.claim_deliveries("w1", T0, LEASE, 10)
    for started in (crashed, fourth):
        await store.mark_started(started.id)
    await store.complete_delivery(sent.id, T0)
    await store.fail_delivery(failed.id, "Forbidden: bot was blocked by the user", T0)
    assert len(await store.claim_deliveries("w2", T0 + timedelta(seconds=LEASE + 1), LEASE, 10)) == 2
    await store.retry_delivery(crashed.id, T0 + timedelta(hours=1), "timeout")
    await store.enqueue_broadcast(DigestPayload(("news",)), T0 + timedelta(hours=2))  # broadcasts have no digest period

    stats = await store.delivery_stats()
    assert (stats.pending, stats.sending, stats.sent, stats.failed) == (4 + 1, 1, 1, 1)
    assert stats.possible_duplicates == 2
    assert (stats.last_period, stats.last_period_sent, stats.last_period_failed) == (T0, 1, 1)

    await store.save_subscription(req(5), T0 + timedelta(hours=3))
    assert await store.enqueue_due(T0 + timedelta(days=1), 10) == 5
    assert (await store.delivery_stats()).last_period == T0 + timedelta(days=1)


async def test_operations_counts_give_open_deliveries_their_oldest_and_subscriptions_by_cadence(
        store: SqlStore) -> None:
    empty = await store.operations_counts()
    assert (empty.open_deliveries, empty.oldest_open_at, empty.active_by_cadence) == (0, None, {})

    await subscribe_due(store, 1, 2, 3)  # three daily digests enqueued at T0
    weekly = Schedule(Cadence.WEEKLY, time(9, 0), "Asia/Hong_Kong", 0)
    await store.save_subscription(req(4, schedule=weekly), T0)
    await store.save_subscription(req(5), T0)
    await store.unsubscribe(telegram(5), None, T0)
    sent, sending, _ = await store.claim_deliveries("w1", T0, LEASE, 10)
    await store.complete_delivery(sent.id, T0)
    await store.mark_started(sending.id)
    await store.enqueue_broadcast(DigestPayload(("news",)), T0 + timedelta(hours=2))

    counts = await store.operations_counts()
    assert counts.open_deliveries == 2 + 4  # one sending, one pending digest; four pending broadcasts
    assert counts.oldest_open_at == T0
    assert counts.active_by_cadence == {"daily": 3, "weekly": 1}


async def test_migrate_chat_moves_subscriptions(store: SqlStore) -> None:
    old, new = -100, -1001
    await store.save_subscription(req(old, kind=ChatKind.GROUP), T0 - timedelta(hours=1))
    await store.save_subscription(req(old, 5, kind=ChatKind.GROUP), T0 - timedelta(hours=1))
    quiet = QuietHours(time(23, 0), time(7, 0), "Asia/Hong_Kong")
    await store.set_quiet_hours(telegram(old), quiet)
    assert await store.enqueue_due(T0, 10) == 2
    before = await store.get_subscription(telegram(old), None)

    assert await store.migrate_chat(telegram(old), telegram(new)) == 2

    assert await store.get_subscription(telegram(old), None) is None
    assert await store.get_subscription(telegram(old), 5) is None
    moved = await store.get_subscription(telegram(new), None)
    assert moved is not None and before is not None
    assert (moved.id, moved.chat_kind, moved.schedule) == (before.id, ChatKind.SUPERGROUP, before.schedule)
    assert await store.get_quiet_hours(telegram(new)) == quiet and await store.get_quiet_hours(telegram(old)) is None
    pending = await store.claim_deliveries("w1", T0, LEASE, 10)
    assert {(int(d.subscription.chat.id), d.subscription.thread_id) for d in pending} == {(new, None), (new, 5)}
    assert await store.migrate_chat(telegram(old), telegram(new)) == 0


async def test_migrate_chat_keeps_the_newer_subscription_of_a_topic(store: SqlStore) -> None:
    old, new = -100, -1001
    evening = Schedule(Cadence.DAILY, time(20, 0), "Asia/Hong_Kong")
    await subscribe_due(store, old)
    sent = await claim_one(store)
    await store.set_payload(sent.id, DigestPayload(("digest",), ("u-old",)))
    await store.complete_delivery(sent.id, T0)
    newer = await store.save_subscription(req(new, schedule=evening, kind=ChatKind.SUPERGROUP), T0 + timedelta(hours=1))
    await store.save_subscription(req(old, 3, kind=ChatKind.GROUP), T0 + timedelta(hours=2))
    await store.save_subscription(req(new, 3, schedule=evening, kind=ChatKind.SUPERGROUP), T0)

    # only topic 3's old subscription is the newer one
    assert await store.migrate_chat(telegram(old), telegram(new)) == 1

    kept = await store.get_subscription(telegram(new), None)
    assert kept is not None and (kept.id, kept.schedule) == (newer.id, evening)
    assert (await store.history(newer.id)).sent_update_keys == {"u-old"}
    topic = await store.get_subscription(telegram(new), 3)
    assert topic is not None and topic.schedule == HK_9AM
    assert await store.count_active() == 2


async def test_audit_log_lists_the_newest_entries_first(store: SqlStore) -> None:
    assert await store.audit_entries(10) == []
    await store.record_audit(42, "reload", "ok", T0)
    await store.record_audit(None, "refused:broadcast", "chat 7", T0 + timedelta(minutes=1))
    await store.record_audit(42, "broadcast-send", "3 chat(s): Hello", T0 + timedelta(minutes=2))

    assert await store.audit_entries(2) == [
        (T0 + timedelta(minutes=2), 42, "broadcast-send", "3 chat(s): Hello"),
        (T0 + timedelta(minutes=1), None, "refused:broadcast", "chat 7"),
    ]
    assert len(await store.audit_entries(10)) == 3


# ---------------------------------------------------------------------------------------------------- schema


async def test_migrations_are_idempotent_and_recorded(store: SqlStore, database_url: str) -> None:
    recorded = await applied_migrations(store.driver)
    assert [(version, name) for version, name, _ in recorded] == [(m.version, m.name) for m in MIGRATIONS]
    assert all(at.tzinfo == UTC for _, _, at in recorded)

    assert await apply_migrations(store.driver) == []
    reopened = await open_store(database_url, single_process=False)
    await reopened.close()
    assert await applied_migrations(store.driver) == recorded


async def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    stores = await asyncio.gather(*(open_store(database_url, single_process=False) for _ in range(4)))
    try:
        recorded = await applied_migrations(stores[0].driver)
        assert [version for version, _, _ in recorded] == [m.version for m in MIGRATIONS]
        await stores[1].save_subscription(req(), T0)
        assert await stores[2].count_active() == 1
    finally:
        for opened in stores:
            await opened.close()


async def test_a_failed_migration_leaves_nothing_behind(store: SqlStore) -> None:
    broken = Migration(900, "broken", lambda d: ["CREATE TABLE half_done (x INTEGER)", "CREATE TABLE oops ("])

    with pytest.raises((sqlite3.Error, psycopg.Error)):
        await apply_migrations(store.driver, [*MIGRATIONS, broken])

    assert [version for version, _, _ in await applied_migrations(store.driver)] == [m.version for m in MIGRATIONS]
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        async with store.driver.transaction(write=False) as tx:
            await tx.fetchall("SELECT x FROM half_done")


async def test_enqueue_due_uses_an_index(store: SqlStore) -> None:
    rows = [
        (f"telegram:{chat_id}", 0, "private", "daily", None, "09:00", "Asia/Hong_Kong", "", True, chat_id % 5 != 0,
         T0, T0, T0 + timedelta(minutes=chat_id - 10))
        for chat_id in range(3000)
    ]
    async with store.driver.transaction() as tx:
        await tx.executemany(
            "INSERT INTO subscriptions (chat, thread_id, chat_kind, cadence, weekday, at_time, timezone, sections,"
            " spotlight, active, created_at, updated_at, next_due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        await tx.execute("ANALYZE")

    dialect = store.driver.dialect
    async with store.driver.transaction(write=False) as tx:
        if dialect.name == "sqlite":
            due_plan = [row[3] for row in await tx.fetchall(
                "EXPLAIN QUERY PLAN " + due_subscriptions_sql(dialect), (T0, 100)
            )]
            claim_plan = [row[3] for row in await tx.fetchall(
                "EXPLAIN QUERY PLAN " + claimable_deliveries_sql(dialect), (T0, T0, 10)
            )]
        else:
            due_plan = [row[0] for row in await tx.fetchall("EXPLAIN " + due_subscriptions_sql(dialect), (T0, 100))]
            claim_plan = []
    plan = "\n".join(due_plan)

    if dialect.name == "sqlite":
        assert "USING INDEX subscriptions_due" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # rows come out of the index already in next_due_at order
        assert any("deliveries_open" in line for line in claim_plan), claim_plan
    else:
        assert "subscriptions_due" in plan and "Seq Scan" not in plan, plan  # an Index or Bitmap Index Scan
    assert await store.enqueue_due(T0, 10_000) == sum(1 for row in rows if row[9] and row[12] <= T0)


# ---------------------------------------------------------------------------------------------------- opening


@pytest.mark.parametrize("url", ["mysql://user:hunter2@db/bot", "sqlite://", "sqlite:///:memory:", "bot.sqlite3"])
async def test_open_store_refuses_urls_it_cannot_serve(url: str) -> None:
    with pytest.raises(StoreError, match="use sqlite:///") as refused:
        await open_store(url)
    assert "hunter2" not in str(refused.value)


async def test_open_store_creates_the_sqlite_folder_for_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///data/nested/bot.sqlite3")
    try:
        await store.save_subscription(req(), T0)
    finally:
        await store.close()
    assert (tmp_path / "data" / "nested" / "bot.sqlite3").is_file()


async def test_a_broadcast_draft_is_taken_once_whichever_replica_asks(database_url: str) -> None:
    first = await open_store(database_url, single_process=False)
    second = await open_store(database_url, single_process=False)
    try:
        await first.save_broadcast_draft("d1", "Meetup at Cyberport", 900, T0)
        taken = await asyncio.gather(first.take_broadcast_draft("d1"), second.take_broadcast_draft("d1"))
        assert taken.count(None) == 1 and "Meetup at Cyberport" in taken  # one confirmation wins
        assert await second.take_broadcast_draft("d1") is None
        assert await first.take_broadcast_draft("never-made") is None
    finally:
        await first.close()
        await second.close()


async def test_a_claimed_digest_comes_with_its_history_in_one_batch(store: SqlStore) -> None:
    await subscribe_due(store, 1, 2)
    first, second = await store.claim_deliveries("w1", T0, LEASE, 10)
    await store.set_payload(first.id, DigestPayload(("one",), ("2024-08-13/Sandbox",), "finance/ITF"))
    await store.complete_delivery(first.id, T0)
    await store.complete_delivery(second.id, T0)
    await store.enqueue_due(T0 + timedelta(days=1), 1000)
    await store.enqueue_broadcast(DigestPayload(("news",)), T0 + timedelta(days=1))
    claimed = {(int(d.subscription.chat.id), d.kind): d for d in
               await store.claim_deliveries("w1", T0 + timedelta(days=1), LEASE, 10)}
    assert claimed[(1, DeliveryKind.DIGEST)].history == DigestHistory(frozenset({"2024-08-13/Sandbox"}),
                                                                      frozenset({"finance/ITF"}))
    assert claimed[(2, DeliveryKind.DIGEST)].history == DigestHistory()
    assert claimed[(1, DeliveryKind.BROADCAST)].history is None  # nothing to compose
    assert claimed[(1, DeliveryKind.DIGEST)].history == await store.history(first.subscription.id)


# ---------------------------------------------------------------------------------------------------- incoming updates


async def test_an_incoming_update_is_handled_once_and_retaken_only_after_its_lease(store: SqlStore) -> None:
    assert await store.claim_incoming(7001, "w1", T0, LEASE) is IncomingClaim.NEW
    assert await store.claim_incoming(7001, "w2", T0 + timedelta(seconds=1), LEASE) is IncomingClaim.BUSY
    # w1 died while handling it: once its lease ran out, the update is handled again (Telegram posts it again).
    after_lease = T0 + timedelta(seconds=LEASE + 1)
    assert await store.claim_incoming(7001, "w2", after_lease, LEASE) is IncomingClaim.RETAKEN
    assert await store.claim_incoming(7001, "w3", after_lease, LEASE) is IncomingClaim.BUSY
    await store.finish_incoming(7001, after_lease)
    assert await store.claim_incoming(7001, "w3", after_lease + timedelta(days=1), LEASE) is IncomingClaim.DONE
    assert await store.claim_incoming(7002, "w3", after_lease, LEASE) is IncomingClaim.NEW  # ids are separate


async def test_a_released_incoming_update_is_claimed_afresh(store: SqlStore) -> None:
    assert await store.claim_incoming(7001, "w1", T0, LEASE) is IncomingClaim.NEW
    await store.release_incoming(7001, "w2")  # not w2's claim: nothing changes
    assert await store.claim_incoming(7001, "w2", T0, LEASE) is IncomingClaim.BUSY
    await store.release_incoming(7001, "w1")
    assert await store.claim_incoming(7001, "w2", T0, LEASE) is IncomingClaim.NEW
    await store.finish_incoming(7001, T0)
    await store.release_incoming(7001, "w2")  # a handled update stays handled
    assert await store.claim_incoming(7001, "w1", T0, LEASE) is IncomingClaim.DONE


async def test_one_of_many_concurrent_claims_of_an_update_wins_across_replicas(database_url: str) -> None:
    replicas = [await open_store(database_url, single_process=False) for _ in range(3)]
    try:
        claims = await asyncio.gather(*(replica.claim_incoming(update_id, f"w{n}", T0, LEASE)
                                        for update_id in (8001, 8002, 8003)
                                        for n, replica in enumerate(replicas * 2)))
    finally:
        for replica in replicas:
            await replica.close()
    assert claims.count(IncomingClaim.NEW) == 3  # one per update
    assert claims.count(IncomingClaim.BUSY) == len(claims) - 3


async def test_pruning_forgets_only_old_incoming_update_ids(store: SqlStore) -> None:
    for update_id, received in ((1, T0), (2, T0), (3, T0 + timedelta(days=2))):
        await store.claim_incoming(update_id, "w1", received, LEASE)
        await store.finish_incoming(update_id, received)
    cutoff = T0 + timedelta(days=1)
    assert await store.prune_incoming(cutoff, 1) == 1  # the limit holds
    assert await store.prune_incoming(cutoff, 100) == 1
    assert await store.prune_incoming(cutoff, 100) == 0
    assert await store.claim_incoming(3, "w1", cutoff, LEASE) is IncomingClaim.DONE  # a recent one is kept
    assert await store.claim_incoming(1, "w1", cutoff, LEASE) is IncomingClaim.NEW  # an old one is forgotten


# ---------------------------------------------------------------------------------------------------- review queue


def found(n: int, source: str = "gov-press-en", *, title_key: str | None = None, language: str = "en",
          published: datetime | None = T0 - timedelta(hours=2)) -> FoundItem:
    """An item found on a source: its link and title_key differ by `n` unless a title_key is given."""
    return FoundItem(source_id=source, title=f"Generative AI sandbox round {n}",
                     link=f"https://www.info.gov.hk/gia/general/202603/02/P{n}.htm", published=published,
                     excerpt=f"The HKMA today announced round {n}...", language=language,
                     sections=("finance", "government"), title_key=title_key or f"generative ai sandbox round {n}")


async def test_a_found_item_roundtrips_every_field(store: SqlStore) -> None:
    item = found(1, published=datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=8))))
    undated = replace(found(2, language="zh-Hant"), published=None, sections=())
    added = await store.add_candidates([item, undated], T0)

    assert [c.item.link for c in added] == [item.link, undated.link]
    first = await store.get_candidate(added[0].id)
    assert first == added[0]
    assert first.item == replace(item, published=datetime(2026, 3, 2, 1, 30, tzinfo=UTC))
    assert first.item.published is not None and first.item.published.tzinfo == UTC
    assert (first.state, first.found_at, first.decided_by, first.decided_at) == (CandidateState.NEW, T0, None, None)
    second = await store.get_candidate(added[1].id)
    assert second is not None and second.item == undated
    assert await store.get_candidate(added[1].id + 1000) is None


async def test_add_candidates_skips_known_links_and_open_stories_in_the_order_given(store: SqlStore) -> None:
    await store.add_candidates([found(1), found(2)], T0)

    chinese = found(3, title_key="generative ai sandbox round 2", language="zh-Hant")  # the same story as 2
    twice = found(4)
    batch = [found(1), twice, chinese, found(5), twice, found(6, title_key="x"), found(7, title_key="x")]
    added = await store.add_candidates(batch, T0 + timedelta(hours=1))

    assert [c.item.link for c in added] == [found(4).link, found(5).link, found(6).link]
    assert await store.add_candidates(batch, T0 + timedelta(hours=2)) == []


async def test_an_item_with_an_absurdly_long_link_or_title_is_left_out_not_the_batch(store: SqlStore) -> None:
    noise = "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(3000))  # incompressible, 9,000 bytes
    long_link = replace(found(1), link=f"https://www.info.gov.hk/gia/{noise}.htm")
    long_title = replace(found(2), title_key=noise)

    added = await store.add_candidates([long_link, found(3), long_title], T0)

    assert [c.item.link for c in added] == [found(3).link]
    assert await store.known_links([long_link.link, found(3).link]) == {found(3).link}


async def test_adding_the_same_items_from_two_replicas_at_once_queues_each_once(database_url: str) -> None:
    replicas = [await open_store(database_url, single_process=False) for _ in range(3)]
    items = [found(n) for n in range(40)]
    try:
        results = await asyncio.gather(*(replica.add_candidates(items, T0) for replica in replicas * 2))
        assert sorted(c.item.link for added in results for c in added) == sorted(i.link for i in items)
        assert await replicas[0].count_open_candidates() == {"gov-press-en": 40}
    finally:
        for replica in replicas:
            await replica.close()


async def test_next_candidate_is_the_oldest_open_one_and_skips_forward(store: SqlStore) -> None:
    assert await store.next_candidate() is None
    first, second, third = await store.add_candidates([found(1), found(2), found(3)], T0)

    assert await store.next_candidate() == first
    assert await store.next_candidate(after_id=first.id) == second
    assert await store.next_candidate(after_id=third.id) is None
    assert await store.decide_candidate(first.id, CandidateState.REJECTED, 900, T0)
    assert await store.next_candidate() == second


async def test_a_decision_is_taken_once_and_recorded(store: SqlStore) -> None:
    (candidate,) = await store.add_candidates([found(1)], T0)
    decided_at = T0 + timedelta(minutes=3)

    assert await store.decide_candidate(candidate.id, CandidateState.PUBLISHED, 900, decided_at)
    assert not await store.decide_candidate(candidate.id, CandidateState.PUBLISHED, 901, decided_at)
    assert not await store.decide_candidate(candidate.id, CandidateState.REJECTED, 901, decided_at)
    assert not await store.decide_candidate(candidate.id + 1000, CandidateState.REJECTED, 901, decided_at)
    decided = await store.get_candidate(candidate.id)
    assert decided is not None
    assert (decided.state, decided.decided_by, decided.decided_at) == (CandidateState.PUBLISHED, 900, decided_at)
    with pytest.raises(ValueError):
        await store.decide_candidate(candidate.id, CandidateState.EXPIRED, 900, decided_at)


async def test_two_admins_on_several_replicas_publish_a_candidate_once(database_url: str) -> None:
    replicas = [await open_store(database_url, single_process=False) for _ in range(3)]
    try:
        added = await replicas[0].add_candidates([found(n) for n in range(5)], T0)
        outcomes = await asyncio.gather(*(
            replica.decide_candidate(candidate.id, CandidateState.PUBLISHED, admin, T0)
            for candidate in added for admin, replica in enumerate(replicas * 2)
        ))
        winners = [await replicas[1].get_candidate(candidate.id) for candidate in added]
    finally:
        for replica in replicas:
            await replica.close()
    assert outcomes.count(True) == len(added)  # one per candidate
    assert all(c is not None and c.state is CandidateState.PUBLISHED for c in winners)


async def test_an_admins_draft_is_kept_until_the_candidate_is_decided(store: SqlStore) -> None:
    (candidate,) = await store.add_candidates([found(1)], T0)
    assert candidate.draft == ReviewDraft()
    draft = ReviewDraft("Sandbox widened to insurers", "Our own words, with a | bar.", ("finance",))

    assert await store.save_draft(candidate.id, draft)
    assert (await store.get_candidate(candidate.id)) == replace(candidate, draft=draft)
    assert await store.save_draft(candidate.id, replace(draft, sections=()))
    kept = await store.get_candidate(candidate.id)
    assert kept is not None and kept.draft.sections == ()
    assert await store.decide_candidate(candidate.id, CandidateState.REJECTED, 900, T0)
    assert not await store.save_draft(candidate.id, ReviewDraft("late"))
    assert not await store.save_draft(candidate.id + 1000, ReviewDraft("none"))


async def test_a_rejected_item_is_never_offered_again(store: SqlStore) -> None:
    (candidate,) = await store.add_candidates([found(1)], T0)
    assert await store.decide_candidate(candidate.id, CandidateState.REJECTED, 900, T0)

    assert await store.add_candidates([found(1)], T0 + timedelta(days=30)) == []
    assert await store.next_candidate() is None
    assert await store.count_open_candidates() == {}


async def test_a_reopened_candidate_is_offered_again(store: SqlStore) -> None:
    first, second = await store.add_candidates([found(1), found(2)], T0)
    assert await store.decide_candidate(first.id, CandidateState.PUBLISHED, 900, T0)
    await store.reopen_candidate(first.id)

    reopened = await store.get_candidate(first.id)
    assert reopened is not None
    assert (reopened.state, reopened.decided_by, reopened.decided_at) == (CandidateState.NEW, None, None)
    assert await store.next_candidate() == reopened
    assert await store.decide_candidate(first.id, CandidateState.PUBLISHED, 901, T0)
    await store.reopen_candidate(second.id)  # open already: nothing changes
    assert await store.get_candidate(second.id) == second


async def test_a_reopened_story_queued_again_meanwhile_stays_offered_once(store: SqlStore) -> None:
    (english,) = await store.add_candidates([found(1, title_key="sandbox")], T0)
    assert await store.decide_candidate(english.id, CandidateState.PUBLISHED, 900, T0)
    (chinese,) = await store.add_candidates([found(2, title_key="sandbox", language="zh-Hant")], T0)

    await store.reopen_candidate(english.id)

    assert await store.next_candidate() == chinese
    assert await store.next_candidate(after_id=chinese.id) is None
    reopened = await store.get_candidate(english.id)
    assert reopened is not None and reopened.state is CandidateState.EXPIRED


async def test_expiry_ends_only_old_open_candidates(store: SqlStore) -> None:
    (old,) = await store.add_candidates([found(1)], T0)
    (decided,) = await store.add_candidates([found(2)], T0)
    (recent,) = await store.add_candidates([found(3)], T0 + timedelta(days=10))
    assert await store.decide_candidate(decided.id, CandidateState.REJECTED, 900, T0)
    now = T0 + timedelta(days=15)

    assert await store.expire_candidates(T0 + timedelta(days=1), now) == 1
    assert await store.expire_candidates(T0 + timedelta(days=1), now) == 0
    expired = await store.get_candidate(old.id)
    assert expired is not None and (expired.state, expired.decided_at) == (CandidateState.EXPIRED, now)
    rejected = await store.get_candidate(decided.id)
    assert rejected is not None and rejected.state is CandidateState.REJECTED
    assert await store.next_candidate() == recent
    assert await store.add_candidates([found(1)], now) == []  # an expired link is not queued again


async def test_open_candidates_are_counted_per_source(store: SqlStore) -> None:
    added = await store.add_candidates([found(1), found(2, "hkma"), found(3, "hkma"), found(4, "pcpd")], T0)
    assert await store.decide_candidate(added[3].id, CandidateState.REJECTED, 900, T0)
    assert await store.count_open_candidates() == {"gov-press-en": 1, "hkma": 2}


async def test_known_links_are_those_queued_in_any_state(store: SqlStore) -> None:
    first, _ = await store.add_candidates([found(1), found(2)], T0)
    assert await store.decide_candidate(first.id, CandidateState.REJECTED, 900, T0)
    asked = [found(n).link for n in range(1, 4)] + [found(1).link]

    assert await store.known_links(asked) == {found(1).link, found(2).link}
    assert await store.known_links([]) == set()
    many = [f"https://example.org/{n}" for n in range(2500)] + [found(2).link]  # more than one batch
    assert await store.known_links(many) == {found(2).link}


async def test_source_states_roundtrip_and_are_replaced(store: SqlStore) -> None:
    assert await store.source_states() == {}
    full = SourceState(source_id="hkma", etag='W/"abc"', last_modified="Mon, 02 Mar 2026 01:00:00 GMT",
                       last_poll_at=T0, last_success_at=T0 - timedelta(hours=1), consecutive_failures=2,
                       next_poll_at=T0 + timedelta(minutes=30), items_seen=1234, errors=7, last_error="HTTP 500")
    await store.save_source_state(full)
    await store.save_source_state(SourceState(source_id="pcpd"))
    assert await store.source_states() == {"hkma": full, "pcpd": SourceState(source_id="pcpd")}

    recovered = replace(full, etag=None, consecutive_failures=0, last_error=None, last_success_at=T0)
    await store.save_source_state(recovered)
    assert (await store.source_states())["hkma"] == recovered


async def test_a_restart_keeps_the_queue_and_the_sources(database_url: str) -> None:
    store = await open_store(database_url, single_process=True)
    try:
        first, second = await store.add_candidates([found(1), found(2)], T0)
        assert await store.decide_candidate(first.id, CandidateState.REJECTED, 900, T0)
        await store.save_source_state(SourceState(source_id="hkma", etag="e1", items_seen=3))
    finally:
        await store.close()

    restarted = await open_store(database_url, single_process=True)
    try:
        assert await restarted.next_candidate() == second
        assert await restarted.get_candidate(first.id) == replace(first, state=CandidateState.REJECTED,
                                                                  decided_by=900, decided_at=T0)
        assert (await restarted.source_states())["hkma"] == SourceState(source_id="hkma", etag="e1", items_seen=3)
        assert await restarted.add_candidates([found(1), found(2)], T0) == []
    finally:
        await restarted.close()


async def test_the_oldest_open_candidate_and_expiry_use_their_indexes(store: SqlStore) -> None:
    await store.add_candidates([found(n) for n in range(50)], T0)
    if store.driver.dialect.name != "sqlite":
        pytest.skip("the plan is pinned on SQLite only (INDEXED BY); PostgreSQL plans by statistics")
    async with store.driver.transaction(write=False) as tx:
        plan = await tx.fetchall(
            "EXPLAIN QUERY PLAN SELECT id FROM candidates INDEXED BY candidates_open"
            " WHERE state = 'new' AND id > 0 ORDER BY id LIMIT 1"
        )
        expiry = await tx.fetchall(
            "EXPLAIN QUERY PLAN SELECT id FROM candidates INDEXED BY candidates_open_found"
            " WHERE state = 'new' AND found_at < ?", (T0,)
        )
    assert "candidates_open" in str(plan) and "candidates_open_found" in str(expiry)


# ---------------------------------------------------------------------------------------------------- prompts


async def test_a_prompt_is_found_by_chat_and_message_and_a_second_save_replaces_it(store: SqlStore) -> None:
    asked = OpenPrompt("review edit 42", 900, datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=8))))
    await store.save_prompt(telegram(-1001234567890), 77, asked)

    found_again = await store.find_prompt(telegram(-1001234567890), 77)
    assert found_again == replace(asked, asked_at=datetime(2026, 3, 2, 1, 30, tzinfo=UTC))
    assert found_again is not None and found_again.asked_at.tzinfo == UTC
    assert await store.find_prompt(telegram(-1001234567890), 78) is None  # another message of the chat
    assert await store.find_prompt(telegram(77), 77) is None  # the same message id in another chat

    await store.save_prompt(telegram(-1001234567890), 77, OpenPrompt("review edit 43", None, T0))
    assert await store.find_prompt(telegram(-1001234567890), 77) == OpenPrompt("review edit 43", None, T0)


async def test_old_prompts_are_pruned_in_batches_and_recent_ones_kept(store: SqlStore) -> None:
    for message_id, asked_at in ((1, T0 - timedelta(days=9)), (2, T0 - timedelta(days=8)), (3, T0)):
        await store.save_prompt(telegram(100), message_id, OpenPrompt("review edit 1", 900, asked_at))
    cutoff = T0 - timedelta(days=7)
    assert await store.prune_prompts(cutoff, 1) == 1  # the limit holds
    assert await store.prune_prompts(cutoff, 100) == 1
    assert await store.prune_prompts(cutoff, 100) == 0
    assert await store.prune_prompts(cutoff, 0) == 0
    assert [await store.find_prompt(telegram(100), m) is not None for m in (1, 2, 3)] == [False, False, True]
