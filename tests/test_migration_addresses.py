"""Migration 011 on a database filled by the schema before it: every row is kept (a chat's quiet hours and language
too), and chats become `telegram:<id>`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import psycopg
import pytest

from bot.core.addresses import telegram
from bot.core.messages import ChatKind
from bot.core.prompts import OpenPrompt
from bot.core.schedule import Cadence, QuietHours, Schedule
from bot.core.subscriptions import DeliveryStatus, SubscriptionRequest
from bot.store import SqlStore, _driver_for
from bot.store.drivers import Driver
from bot.store.migrations import MIGRATIONS, apply_migrations

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
BEFORE = [step for step in MIGRATIONS if step.version < 11]  # the schema every existing database has
TABLES = ("subscriptions", "chat_settings", "deliveries", "sent_items", "audit_log", "send_pacer", "content_snapshot",
          "broadcast_drafts", "incoming_updates", "candidates", "source_states", "prompts")
PRIVATE, GROUP, FORUM = 42, -1001234567890, -1009876543210

# (id, chat_id, thread_id, chat_kind, cadence, weekday, at_time, timezone, sections, spotlight, active, reason)
SUBSCRIPTIONS = [
    (1, PRIVATE, 0, "private", "daily", None, "09:00", "Asia/Hong_Kong", "", True, True, None),
    (2, GROUP, 0, "supergroup", "weekly", 4, "18:30", "Europe/London", "finance,startups", False, True, None),
    (3, FORUM, 0, "supergroup", "daily", None, "08:00", "Asia/Hong_Kong", "", True, True, None),
    (4, FORUM, 7, "supergroup", "daily", None, "08:00", "Asia/Hong_Kong", "research", True, True, None),
    (5, 77, 0, "private", "daily", None, "07:15", "Asia/Hong_Kong", "", True, False, "blocked by the user"),
]
# (id, subscription_id, kind, period offset in days, status, attempts, parts_sent, payload, started, in_flight)
PAYLOAD = json.dumps({"parts": ["<b>Old</b> part"], "update_keys": ["u-1"], "spotlight_key": "i-1"})
DELIVERIES = [
    (1, 1, "digest", -1, "sent", 1, 1, PAYLOAD, True, False),
    (2, 1, "digest", 0, "pending", 0, 0, None, False, False),
    (3, 2, "broadcast", 0, "sending", 1, 0, PAYLOAD, True, False),
    (4, 4, "digest", 0, "failed", 12, 0, None, False, False),
    (5, 5, "digest", -2, "sent", 2, 1, PAYLOAD, True, True),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of each backend."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_db_url")
    return url


@pytest.fixture
async def driver(database_url: str) -> AsyncIterator[Driver]:
    """A database at the schema before addresses, filled with a row of every kind."""
    opened = _driver_for(database_url)
    await opened.open()
    try:
        assert [step.version for step in await apply_migrations(opened, BEFORE)] == [step.version for step in BEFORE]
        await _fill(opened)
        yield opened
    finally:
        await opened.close()


async def _fill(driver: Driver) -> None:
    async with driver.transaction() as tx:
        await tx.executemany(
            "INSERT INTO subscriptions (id, chat_id, thread_id, chat_kind, cadence, weekday, at_time, timezone,"
            " sections, spotlight, active, deactivated_reason, created_at, updated_at, next_due_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, T0, T0, T0 + timedelta(days=1)) for row in SUBSCRIPTIONS],
        )
        await tx.executemany(
            "INSERT INTO deliveries (id, subscription_id, kind, period, status, attempts, parts_sent, payload,"
            " started, in_flight_at_crash, worker, lease_until, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(did, sid, kind, T0 + timedelta(days=days), status, attempts, parts, payload, started, flagged,
              "w1" if status == "sending" else None, T0 - timedelta(minutes=5) if status == "sending" else None,
              T0, T0) for did, sid, kind, days, status, attempts, parts, payload, started, flagged in DELIVERIES],
        )
        await tx.executemany(
            "INSERT INTO sent_items (subscription_id, kind, item_key, sent_at) VALUES (?, ?, ?, ?)",
            [(1, "update", "u-1", T0), (1, "initiative", "i-1", T0), (2, "update", "u-9", T0)],
        )
        await tx.executemany(
            "INSERT INTO chat_settings (chat_id, quiet_start, quiet_end, quiet_timezone, language)"
            " VALUES (?, ?, ?, ?, ?)",
            # Quiet hours and a language (migration 010); either may be missing.
            [(PRIVATE, "22:00", "07:00", "Asia/Hong_Kong", "zh-Hant"), (GROUP, None, None, None, None),
             (77, None, None, None, "en")],
        )
        await tx.execute("INSERT INTO audit_log (at, actor_id, action, detail) VALUES (?, ?, ?, ?)",
                         (T0, 900, "preview", str(GROUP)))
        await tx.execute("INSERT INTO send_pacer (name, next_at) VALUES (?, ?)", ("telegram", T0))
        await tx.execute(
            "INSERT INTO content_snapshot (name, version, base_version, files, published_by, published_at)"
            " VALUES (?, ?, ?, ?, ?, ?)", ("content", "v2", "v1", "{}", "replica-1", T0))
        await tx.execute("INSERT INTO broadcast_drafts (id, text, created_by, created_at) VALUES (?, ?, ?, ?)",
                         ("d1", "Hello all", 900, T0))
        await tx.execute("INSERT INTO incoming_updates (update_id, state, received_at) VALUES (?, ?, ?)",
                         (5001, "done", T0))
        await tx.execute(
            "INSERT INTO candidates (source_id, title, link, language, found_at) VALUES (?, ?, ?, ?, ?)",
            ("hkma", "A circular", "https://www.hkma.gov.hk/x", "en", T0))
        await tx.execute("INSERT INTO source_states (source_id, items_seen) VALUES (?, ?)", ("hkma", 3))
        await tx.execute("INSERT INTO prompts (chat_id, message_id, action, user_id, asked_at) VALUES (?, ?, ?, ?, ?)",
                         (GROUP, 77, "review edit 1", 900, T0))
        if driver.dialect.name == "postgres":
            # The rows above name their ids; the ones the bot wrote took them from the identity, which moved on.
            for table in ("subscriptions", "deliveries"):
                await tx.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")


async def _counts(driver: Driver) -> dict[str, int]:
    counts = {}
    async with driver.transaction(write=False) as tx:
        for table in TABLES:
            row = await tx.fetchone(f"SELECT COUNT(*) FROM {table}")
            assert row is not None
            counts[table] = int(row[0])
    return counts


async def test_every_row_is_kept_and_chats_become_telegram_addresses(driver: Driver) -> None:
    before = await _counts(driver)
    assert all(before.values()), before

    assert [step.version for step in await apply_migrations(driver)] == [11]

    assert await _counts(driver) == before
    async with driver.transaction(write=False) as tx:
        chats = await tx.fetchall("SELECT id, chat, thread_id, active FROM subscriptions ORDER BY id")
        settings = await tx.fetchall("SELECT chat FROM chat_settings ORDER BY chat")
        deliveries = await tx.fetchall(
            "SELECT id, subscription_id, status, attempts, parts_sent, payload, started, in_flight_at_crash"
            " FROM deliveries ORDER BY id")
    assert [(sid, chat, thread) for sid, chat, thread, _ in chats] == [
        (sid, f"telegram:{chat_id}", thread) for sid, chat_id, thread, *_ in SUBSCRIPTIONS]
    assert sorted(chat for (chat,) in settings) == sorted([f"telegram:{PRIVATE}", f"telegram:{GROUP}", "telegram:77"])
    assert [(did, sid, status, attempts, parts, payload, bool(started), bool(flagged))
            for did, sid, status, attempts, parts, payload, started, flagged in deliveries] == [
        (did, sid, status, attempts, parts, payload, started, flagged)
        for did, sid, _, _, status, attempts, parts, payload, started, flagged in DELIVERIES]

    store = SqlStore(driver)
    forum = await store.get_subscription(telegram(FORUM), 7)
    assert forum is not None and forum.id == 4 and forum.sections == ("research",) and forum.active
    group = await store.get_subscription(telegram(GROUP), None)
    assert group is not None and group.schedule.weekday == 4 and not group.spotlight
    blocked = await store.get_subscription(telegram(77), None)
    assert blocked is not None and not blocked.active
    assert await store.get_quiet_hours(telegram(PRIVATE)) == QuietHours(time(22), time(7), "Asia/Hong_Kong")
    # Each chat's language (migration 010) stays with it, and its subscriptions' digests follow it.
    assert [await store.get_chat_language(telegram(chat)) for chat in (PRIVATE, GROUP, 77, FORUM)] == [
        "zh-Hant", None, "en", None]
    assert await store.get_quiet_hours(telegram(77)) is None
    private = await store.get_subscription(telegram(PRIVATE), None)
    assert private is not None and private.language == "zh-Hant" and group.language == "en"
    history = await store.history(1)
    assert (history.sent_update_keys, history.shown_initiative_keys) == (frozenset({"u-1"}), frozenset({"i-1"}))
    assert await store.audit_entries(5) == [(T0, 900, "preview", str(GROUP))]
    assert await store.take_broadcast_draft("d1") == "Hello all"
    assert await store.find_prompt(telegram(GROUP), 77) == OpenPrompt("review edit 1", 900, T0)
    stats = await store.delivery_stats()
    assert (stats.pending, stats.sending, stats.sent, stats.failed, stats.possible_duplicates) == (1, 1, 2, 1, 1)

    # The pending digest and the broadcast whose sender died are claimed as before, with their chats' addresses.
    claimed = await store.claim_deliveries("w2", T0 + timedelta(hours=1), 60, 10)
    assert [(d.id, d.subscription.chat, d.status, d.subscription.language) for d in claimed] == [
        (2, telegram(PRIVATE), DeliveryStatus.SENDING, "zh-Hant"), (3, telegram(GROUP), DeliveryStatus.SENDING, "en")]
    assert claimed[1].in_flight_at_crash  # it had started when its lease ran out


async def test_the_migrated_schema_keeps_its_keys_and_cascades(driver: Driver) -> None:
    await apply_migrations(driver)
    store = SqlStore(driver)
    async with driver.transaction() as tx:
        await tx.execute("DELETE FROM subscriptions WHERE id = ?", (1,))
    async with driver.transaction(write=False) as tx:
        left = await tx.fetchall("SELECT id FROM deliveries WHERE subscription_id = 1")
        items = await tx.fetchall("SELECT item_key FROM sent_items WHERE subscription_id = 1")
    assert (left, items) == ([], [])  # the foreign keys still point at subscriptions, with their cascade
    # New rows take fresh ids after the copied ones, and a chat keeps one subscription per topic.
    schedule = Schedule(Cadence.DAILY, time(9), "Asia/Hong_Kong")
    saved = await store.save_subscription(SubscriptionRequest(telegram(PRIVATE), None, ChatKind.PRIVATE, schedule), T0)
    assert saved.id > max(row[0] for row in SUBSCRIPTIONS)
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):  # one subscription per chat and topic
        async with driver.transaction() as tx:
            await tx.execute(
                "INSERT INTO subscriptions (chat, thread_id, chat_kind, cadence, at_time, timezone, created_at,"
                " updated_at, next_due_at) VALUES (?, 7, 'supergroup', 'daily', '08:00', 'UTC', ?, ?, ?)",
                (f"telegram:{FORUM}", T0, T0, T0))
