"""SqlStore: the one SubscriptionStore and CandidateStore, on SQLite and PostgreSQL alike (see drivers.py)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from bot.core.addresses import PLATFORMS, ChatAddress
from bot.core.candidates import Candidate, CandidateState, FoundItem, ReviewDraft, SourceState
from bot.core.document import Document
from bot.core.messages import ChatKind
from bot.core.prompts import OpenPrompt
from bot.core.schedule import Cadence, QuietHours, Schedule
from bot.core.subscriptions import (
    Delivery,
    DeliveryKind,
    DeliveryStats,
    DeliveryStatus,
    DigestHistory,
    DigestPayload,
    IncomingClaim,
    OperationsCounts,
    Subscription,
    SubscriptionRequest,
)
from bot.store.drivers import Dialect, Driver, Row, Transaction, Write

if TYPE_CHECKING:
    from bot.core.candidates import CandidateStore
    from bot.core.prompts import PromptStore
    from bot.core.subscriptions import SubscriptionStore

log = logging.getLogger(__name__)

NO_TOPIC = 0  # stored for thread_id None, so that UNIQUE (chat, thread_id) holds for plain chats too
RELEASED_LEASE = datetime(1970, 1, 1, tzinfo=UTC)  # a lease that has always expired
INACTIVE_ERROR = "subscription inactive"
# Ids per set-based statement: well under SQLite's 32766 and PostgreSQL's 65535 parameters.
BATCH = 1000

_SUBSCRIPTION_FIELDS = (
    "id", "chat", "thread_id", "chat_kind", "cadence", "weekday", "at_time", "timezone",
    "sections", "spotlight", "active", "created_at", "next_due_at",
)
# The chat's language comes with every subscription read (kept in chat_settings, one per chat): digests go out in it.
CHAT_LANGUAGE = "(SELECT c.language FROM chat_settings c WHERE c.chat = s.chat)"
SUBSCRIPTION_COLUMNS = ", ".join(f"s.{name}" for name in _SUBSCRIPTION_FIELDS) + f", {CHAT_LANGUAGE}"
_SUBSCRIPTION_WIDTH = len(_SUBSCRIPTION_FIELDS) + 1
DELIVERY_COLUMNS = (
    "d.id, d.period, d.kind, d.status, d.attempts, d.parts_sent, d.payload, d.in_flight_at_crash, d.not_before"
)
_DELIVERY_WIDTH = DELIVERY_COLUMNS.count(",") + 1
_CANDIDATE_FIELDS = (
    "source_id", "title", "link", "published", "excerpt", "language", "sections", "title_key", "found_at",
)
CANDIDATE_COLUMNS = ("id, state, decided_by, decided_at, draft_title, draft_summary, draft_sections, "
                     + ", ".join(_CANDIDATE_FIELDS))
# Rows per multi-row candidate INSERT: 9 parameters each, well under both databases' limits.
CANDIDATE_BATCH = 500
_DECISIONS = (CandidateState.PUBLISHED, CandidateState.REJECTED)
# A link or title_key longer than this (UTF-8 bytes) is not queued: PostgreSQL's btree refuses index entries over
# about 2,700 bytes, and one hostile feed entry would otherwise fail the whole batch. No real article link is near.
MAX_KEY_BYTES = 2000
_SOURCE_STATE_FIELDS = (
    "source_id", "etag", "last_modified", "last_poll_at", "last_success_at", "consecutive_failures",
    "next_poll_at", "items_seen", "errors", "last_error",
)


def due_subscriptions_sql(dialect: Dialect) -> str:
    """The scheduler's query for due subscriptions; `active` repeats the partial index's predicate so it applies."""
    return (
        "SELECT id, cadence, weekday, at_time, timezone FROM subscriptions" + dialect.indexed_by("subscriptions_due") +
        " WHERE active AND next_due_at <= ? ORDER BY next_due_at LIMIT ?" + dialect.lock_rows()
    )


def claimable_deliveries_sql(dialect: Dialect) -> str:
    """The senders' query for deliveries to claim, with their subscription's state.

    The open deliveries are picked first, on their own (through the partial index `deliveries_open`, which the
    `status IN` term matches), and only then joined: left to itself a planner may walk every subscription.
    MATERIALIZED keeps the locking pick from being re-run or flattened into the join.
    """
    return (
        "WITH picked AS MATERIALIZED ("
        " SELECT id, status, worker, subscription_id, started FROM deliveries" + dialect.indexed_by("deliveries_open") +
        " WHERE status IN ('pending', 'sending')"
        " AND ((status = 'pending' AND (not_before IS NULL OR not_before <= ?))"
        " OR (status = 'sending' AND lease_until < ?))"
        " ORDER BY id LIMIT ?" + dialect.lock_rows() + ")"
        " SELECT p.id, p.status, p.worker, s.active, s.chat, p.started FROM picked p"
        " JOIN subscriptions s ON s.id = p.subscription_id ORDER BY p.id"
    )


def remember_updates_sql(dialect: Dialect) -> str:
    """Add a sent delivery's update keys, read from its stored payload, to its subscription's history."""
    return (
        "INSERT INTO sent_items (subscription_id, kind, item_key, sent_at)"
        " SELECT d.subscription_id, 'update', k.value, ? FROM deliveries d, "
        + dialect.json_texts("d.payload", "update_keys", "k") +
        " WHERE d.id = ? ON CONFLICT (subscription_id, kind, item_key) DO NOTHING"
    )


def remember_spotlight_sql(dialect: Dialect) -> str:
    """Add a sent delivery's spotlight initiative, if its stored payload names one, to the history."""
    spotlight = dialect.json_text("d.payload", "spotlight_key")
    return (
        "INSERT INTO sent_items (subscription_id, kind, item_key, sent_at)"
        f" SELECT d.subscription_id, 'initiative', {spotlight}, ? FROM deliveries d"
        f" WHERE d.id = ? AND {spotlight} IS NOT NULL ON CONFLICT (subscription_id, kind, item_key) DO NOTHING"
    )


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _batches(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the store needs aware datetimes, got naive {moment!r}")
    return moment.astimezone(UTC)


def _clock(at: time) -> str:
    return at.isoformat(timespec="minutes" if not (at.second or at.microsecond) else "auto")


def _thread(thread_id: int | None) -> int:
    return NO_TOPIC if thread_id is None else thread_id


def _sections(sections: Sequence[str]) -> str:
    for name in sections:
        if "," in name or not name:
            raise ValueError(f"a section name must be non-empty and without commas: {name!r}")
    return ",".join(sections)


def _fits(found: FoundItem) -> bool:
    return len(found.link.encode()) <= MAX_KEY_BYTES and len(found.title_key.encode()) <= MAX_KEY_BYTES


def _encode_payload(payload: DigestPayload) -> str:
    data: dict[str, Any] = {"parts": payload.parts, "update_keys": payload.update_keys,
                            "spotlight_key": payload.spotlight_key}
    encoded = json.dumps(data, ensure_ascii=False)
    if payload.message is None:
        return encoded
    # The document, not one platform's markup: each sender renders it when it sends. Chats with the same sections
    # share one document, so it is encoded once and spliced into each chat's payload object.
    return f'{encoded[:-1]}, "message": {_encoded_message(payload.message)}}}'


@functools.lru_cache(maxsize=64)
def _encoded_message(message: Document) -> str:
    return json.dumps(message.to_data(), ensure_ascii=False)


def _decode_payload(text: str | None) -> DigestPayload | None:
    if text is None:
        return None
    data = json.loads(text)
    message = data.get("message")  # absent in rows written before messages were documents: their parts are HTML
    return DigestPayload(
        parts=tuple(data.get("parts", ())),
        update_keys=tuple(data.get("update_keys", ())),
        spotlight_key=data.get("spotlight_key"),
        message=None if message is None else Document.from_data(message),
    )


class SqlStore:
    """Subscriptions, schedules and the delivery log in SQL; every multi-row step is one batch, not a loop."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._remember_updates = remember_updates_sql(driver.dialect)
        self._remember_spotlight = remember_spotlight_sql(driver.dialect)

    # ------------------------------------------------------------------------------------------- decoding

    def _subscription(self, row: Row, start: int = 0) -> Subscription:
        (sid, chat, thread_id, chat_kind, cadence, weekday, at_time, timezone, sections, spotlight, active,
         created_at, next_due_at, language) = row[start : start + _SUBSCRIPTION_WIDTH]
        return Subscription(
            id=int(sid),
            chat=ChatAddress.parse(chat),
            thread_id=None if thread_id == NO_TOPIC else int(thread_id),
            chat_kind=ChatKind(chat_kind),
            schedule=Schedule(Cadence(cadence), time.fromisoformat(at_time), timezone, weekday),
            sections=tuple(sections.split(",")) if sections else (),
            active=bool(active),
            created_at=self.driver.decode_time(created_at),
            next_due_at=self.driver.decode_time(next_due_at),
            spotlight=bool(spotlight),
            language=language or "en",
        )

    def _delivery(self, row: Row) -> Delivery:
        did, period, kind, status, attempts, parts_sent, payload, in_flight, not_before = row[:_DELIVERY_WIDTH]
        return Delivery(
            id=int(did),
            subscription=self._subscription(row, _DELIVERY_WIDTH),
            period=self.driver.decode_time(period),
            kind=DeliveryKind(kind),
            status=DeliveryStatus(status),
            attempts=int(attempts),
            parts_sent=int(parts_sent),
            payload=_decode_payload(payload),
            in_flight_at_crash=bool(in_flight),
            not_before=None if not_before is None else self.driver.decode_time(not_before),
        )

    # ------------------------------------------------------------------------------------------- subscriptions

    async def save_subscription(self, request: SubscriptionRequest, now: datetime) -> Subscription:
        """Create or replace the subscription of (chat, thread_id); it becomes active, due at its next firing."""
        now = _utc(now)
        schedule = request.schedule
        fields = ", ".join(_SUBSCRIPTION_FIELDS)
        async with self.driver.transaction() as tx:
            row = await tx.fetchone(
                "INSERT INTO subscriptions (chat, thread_id, chat_kind, cadence, weekday, at_time, timezone,"
                " sections, spotlight, active, created_at, updated_at, next_due_at, deactivated_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, TRUE, ?, ?, ?, NULL)"
                " ON CONFLICT (chat, thread_id) DO UPDATE SET chat_kind = excluded.chat_kind,"
                " cadence = excluded.cadence, weekday = excluded.weekday, at_time = excluded.at_time,"
                " timezone = excluded.timezone, sections = excluded.sections, spotlight = excluded.spotlight,"
                " active = TRUE, updated_at = excluded.updated_at, next_due_at = excluded.next_due_at,"
                f" deactivated_reason = NULL RETURNING {fields}",
                (
                    str(request.chat), _thread(request.thread_id), request.chat_kind.value, schedule.cadence.value,
                    schedule.weekday, _clock(schedule.at), schedule.timezone, _sections(request.sections),
                    request.spotlight, now, now, schedule.next_after(now),
                ),
            )
            assert row is not None  # INSERT ... RETURNING always yields the row
            language = await tx.fetchone("SELECT language FROM chat_settings WHERE chat = ?", (str(request.chat),))
        return self._subscription((*row, language[0] if language else None))

    async def get_subscription(self, chat: ChatAddress, thread_id: int | None) -> Subscription | None:
        """The subscription of a chat or forum topic, active or not."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.chat = ? AND s.thread_id = ?",
                (str(chat), _thread(thread_id)),
            )
        return None if row is None else self._subscription(row)

    async def unsubscribe(self, chat: ChatAddress, thread_id: int | None, now: datetime) -> bool:
        """Deactivate it; False when there was no active subscription."""
        now = _utc(now)
        async with self.driver.transaction() as tx:
            changed = await tx.execute(
                "UPDATE subscriptions SET active = FALSE, updated_at = ?, deactivated_reason = 'unsubscribed'"
                " WHERE chat = ? AND thread_id = ? AND active",
                (now, str(chat), _thread(thread_id)),
            )
            await self._fail_pending(tx, "chat = ? AND thread_id = ?", (str(chat), _thread(thread_id)), now)
        return changed > 0

    async def deactivate_chat(self, chat: ChatAddress, reason: str, now: datetime) -> int:
        """Deactivate every subscription of a chat (bot blocked or removed); returns how many."""
        now = _utc(now)
        async with self.driver.transaction() as tx:
            changed = await tx.execute(
                "UPDATE subscriptions SET active = FALSE, updated_at = ?, deactivated_reason = ?"
                " WHERE chat = ? AND active",
                (now, reason, str(chat)),
            )
            await self._fail_pending(tx, "chat = ?", (str(chat),), now)
        return changed

    async def deactivate_workspace(self, prefix: str, reason: str, now: datetime) -> int:
        """Deactivate every subscription of every chat whose address starts with `prefix` (`slack:T0123/`: a
        workspace that revoked the bot); returns how many."""
        if ":" not in prefix:
            raise ValueError(f"a workspace prefix names its platform: {prefix!r}")
        now = _utc(now)
        # substr rather than LIKE: nothing in the prefix can act as a wildcard.
        where = "substr(chat, 1, ?) = ?"
        params = (len(prefix), prefix)
        async with self.driver.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE subscriptions SET active = FALSE, updated_at = ?, deactivated_reason = ? WHERE {where}"
                " AND active",
                (now, reason, *params),
            )
            await self._fail_pending(tx, where, params, now)
        return changed

    @staticmethod
    async def _fail_pending(tx: Transaction, where: str, params: tuple[Any, ...], now: datetime) -> None:
        # Only pending ones: a `sending` delivery belongs to a live sender, which finishes or fails it itself.
        await tx.execute(
            "UPDATE deliveries SET status = 'failed', last_error = ?, updated_at = ?"
            f" WHERE status = 'pending' AND subscription_id IN (SELECT id FROM subscriptions WHERE {where})",
            (INACTIVE_ERROR, now, *params),
        )

    async def migrate_chat(self, old: ChatAddress, new: ChatAddress) -> int:
        """Move a chat's subscriptions (their deliveries and history follow) and settings to its new address (a
        Telegram group that became a supergroup).

        Where the new chat already has a subscription for the same topic, the more recently updated one is kept
        and the other dropped, its history merged into the survivor. Returns how many subscriptions moved.
        """
        if old == new:
            return 0
        old_key, new_key = str(old), str(new)
        async with self.driver.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT id, chat, thread_id, updated_at FROM subscriptions WHERE chat IN (?, ?)",
                (old_key, new_key),
            )
            existing = {thread: (sid, self.driver.decode_time(at)) for sid, chat, thread, at in rows
                        if chat == new_key}
            moves: list[tuple[str, int]] = []
            merges: list[tuple[int, int]] = []  # (survivor, dropped)
            for sid, chat, thread, at in rows:
                if chat != old_key:
                    continue
                rival = existing.get(thread)
                if rival is None or self.driver.decode_time(at) > rival[1]:
                    moves.append((new_key, sid))
                    if rival is not None:
                        merges.append((sid, rival[0]))
                else:
                    merges.append((rival[0], sid))
            await tx.executemany(
                "INSERT INTO sent_items (subscription_id, kind, item_key, sent_at)"
                " SELECT ?, kind, item_key, sent_at FROM sent_items WHERE subscription_id = ?"
                " ON CONFLICT (subscription_id, kind, item_key) DO NOTHING",
                merges,
            )
            # The dropped rows go first: moving onto a (chat, topic) still taken would break the unique key.
            await tx.executemany("DELETE FROM subscriptions WHERE id = ?", [(dropped,) for _, dropped in merges])
            await tx.executemany(
                f"UPDATE subscriptions SET chat = ?, chat_kind = '{ChatKind.SUPERGROUP.value}' WHERE id = ?", moves
            )
            await tx.execute(
                "DELETE FROM chat_settings WHERE chat = ?"
                " AND EXISTS (SELECT 1 FROM chat_settings WHERE chat = ?)",
                (old_key, new_key),
            )
            await tx.execute("UPDATE chat_settings SET chat = ? WHERE chat = ?", (new_key, old_key))
        return len(moves)

    async def set_quiet_hours(self, chat: ChatAddress, quiet: QuietHours | None) -> None:
        """Set (or clear, with None) a chat's quiet hours."""
        values = (None, None, None) if quiet is None else (_clock(quiet.start), _clock(quiet.end), quiet.timezone)
        async with self.driver.transaction() as tx:
            await tx.execute(
                "INSERT INTO chat_settings (chat, quiet_start, quiet_end, quiet_timezone) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (chat) DO UPDATE SET quiet_start = excluded.quiet_start,"
                " quiet_end = excluded.quiet_end, quiet_timezone = excluded.quiet_timezone",
                (str(chat), *values),
            )

    async def get_quiet_hours(self, chat: ChatAddress) -> QuietHours | None:
        """A chat's quiet hours, if any."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone(
                "SELECT quiet_start, quiet_end, quiet_timezone FROM chat_settings WHERE chat = ?", (str(chat),)
            )
        if row is None or row[0] is None:
            return None
        return QuietHours(time.fromisoformat(row[0]), time.fromisoformat(row[1]), row[2])

    async def set_chat_language(self, chat: ChatAddress, language: str) -> None:
        """Keep a chat's language ("en", "zh-Hant"); its subscriptions' digests go out in it."""
        async with self.driver.transaction() as tx:
            await tx.execute(
                "INSERT INTO chat_settings (chat, language) VALUES (?, ?)"
                " ON CONFLICT (chat) DO UPDATE SET language = excluded.language",
                (str(chat), language),
            )

    async def get_chat_language(self, chat: ChatAddress) -> str | None:
        """A chat's language, or None before its first contact set one."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone("SELECT language FROM chat_settings WHERE chat = ?", (str(chat),))
        return None if row is None or row[0] is None else str(row[0])

    async def count_active(self) -> int:
        """Number of active subscriptions."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone("SELECT COUNT(*) FROM subscriptions WHERE active")
        return int(row[0]) if row else 0

    async def active_by_platform(self) -> dict[str, int]:
        """Active subscriptions per platform (`{"telegram": 120, "slack": 8}`), platforms with none left out."""
        # One pass, one sum per known platform: the address prefix is the platform, and the set of platforms is small.
        sums = ", ".join(f"SUM(CASE WHEN substr(chat, 1, {len(name) + 1}) = '{name}:' THEN 1 ELSE 0 END)"
                         for name in PLATFORMS)
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone(f"SELECT {sums} FROM subscriptions WHERE active")
        counts = zip(PLATFORMS, row or (), strict=False)
        return {name: int(count) for name, count in counts if count}

    async def next_due_at(self) -> datetime | None:
        """The earliest next_due_at among active subscriptions."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone("SELECT MIN(next_due_at) FROM subscriptions WHERE active")
        return None if row is None or row[0] is None else self.driver.decode_time(row[0])

    async def operations_counts(self) -> OperationsCounts:
        """Open deliveries (pending or being sent) and the oldest one's creation, and active subscriptions by cadence,
        for a metrics scrape: two indexed reads."""
        async with self.driver.transaction(write=False) as tx:
            open_row = await tx.fetchone(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries" + self.driver.dialect.indexed_by("deliveries_open") +
                " WHERE status IN ('pending', 'sending')")
            cadences = await tx.fetchall("SELECT cadence, COUNT(*) FROM subscriptions WHERE active GROUP BY cadence")
        count, oldest = open_row if open_row is not None else (0, None)
        return OperationsCounts(open_deliveries=int(count or 0),
                                oldest_open_at=None if oldest is None else self.driver.decode_time(oldest),
                                active_by_cadence={str(cadence): int(n) for cadence, n in cadences})

    async def next_claimable_at(self) -> datetime | None:
        """When the earliest open delivery can next be claimed: a pending one at its not_before (now when it has
        none), one being sent at the end of its lease. None when no delivery is open."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone(
                "SELECT MIN(CASE WHEN status = 'pending' THEN COALESCE(not_before, created_at) ELSE lease_until END)"
                " FROM deliveries" + self.driver.dialect.indexed_by("deliveries_open") +
                " WHERE status IN ('pending', 'sending')")
        return None if row is None or row[0] is None else self.driver.decode_time(row[0])

    # ------------------------------------------------------------------------------------------- enqueueing

    async def enqueue_due(self, now: datetime, limit: int) -> int:
        """Enqueue one digest per due subscription, keyed (subscription, its due period), and move it on.

        One transaction: the due rows (locked, skipping rows another scheduler holds, on PostgreSQL), then
        set-based statements of up to BATCH ids each: the inserts ignore keys already enqueued, and the
        next_due_at updates are grouped by their new value (subscriptions share a handful of firings).
        """
        now = _utc(now)
        if limit <= 0:
            return 0
        async with self.driver.transaction() as tx:
            due = await tx.fetchall(due_subscriptions_sql(self.driver.dialect), (now, limit))
            next_firing: dict[tuple[Any, ...], datetime] = {}
            moving: dict[datetime, list[int]] = {}
            for sid, cadence, weekday, at_time, timezone in due:
                key = (cadence, weekday, at_time, timezone)
                if key not in next_firing:
                    schedule = Schedule(Cadence(cadence), time.fromisoformat(at_time), timezone, weekday)
                    next_firing[key] = schedule.next_after(now)
                moving.setdefault(next_firing[key], []).append(sid)
            inserted = 0
            for ids in _batches([row[0] for row in due]):
                # The period is the row's own next_due_at, read before the update below moves it, in one transaction.
                inserted += await tx.execute(
                    "INSERT INTO deliveries (subscription_id, kind, period, status, created_at, updated_at)"
                    f" SELECT id, '{DeliveryKind.DIGEST.value}', next_due_at, 'pending', ?, ? FROM subscriptions"
                    f" WHERE id IN ({_placeholders(len(ids))})"
                    " ON CONFLICT (subscription_id, kind, period) DO NOTHING",
                    (now, now, *ids),
                )
            for firing, all_ids in moving.items():
                for ids in _batches(all_ids):
                    # updated_at stays: it tells when the chat last changed its subscription (see migrate_chat).
                    await tx.execute(
                        f"UPDATE subscriptions SET next_due_at = ? WHERE id IN ({_placeholders(len(ids))})",
                        (firing, *ids),
                    )
        return inserted

    async def enqueue_broadcast(self, payload: DigestPayload, now: datetime) -> int:
        """Enqueue one broadcast delivery per active subscription; returns how many."""
        now = _utc(now)
        if not payload.parts and not payload.message:
            raise ValueError("a broadcast needs a message")
        encoded = _encode_payload(payload)
        async with self.driver.transaction() as tx:
            # One set-based statement however many subscribers there are.
            return await tx.execute(
                "INSERT INTO deliveries (subscription_id, kind, period, status, payload, created_at, updated_at)"
                f" SELECT id, '{DeliveryKind.BROADCAST.value}', ?, 'pending', ?, ?, ? FROM subscriptions WHERE active"
                " ON CONFLICT (subscription_id, kind, period) DO NOTHING",
                (now, encoded, now, now),
            )

    # ------------------------------------------------------------------------------------------- sending

    async def claim_deliveries(self, worker: str, now: datetime, lease_seconds: float, limit: int) -> list[Delivery]:
        """Claim up to `limit` sendable deliveries for `worker` (see the Protocol); three statements in all.

        Deliveries whose subscription was deactivated meanwhile are failed ('subscription inactive'), not claimed.
        """
        now = _utc(now)
        if limit <= 0:
            return []
        lease_until = now + timedelta(seconds=lease_seconds)
        async with self.driver.transaction() as tx:
            candidates = await tx.fetchall(claimable_deliveries_sql(self.driver.dialect), (now, now, limit))
            claim = [row[0] for row in candidates if row[3]]
            inactive = [row[0] for row in candidates if not row[3]]
            if inactive:
                await tx.execute(
                    "UPDATE deliveries SET status = 'failed', last_error = ?, lease_until = NULL, updated_at = ?"
                    f" WHERE id IN ({_placeholders(len(inactive))})",
                    (INACTIVE_ERROR, now, *inactive),
                )
            if not claim:
                return []
            await tx.execute(
                "UPDATE deliveries SET status = 'sending', worker = ?, lease_until = ?, attempts = attempts + 1,"
                " updated_at = ?, in_flight_at_crash = CASE WHEN status = 'sending' AND started THEN TRUE"
                " ELSE in_flight_at_crash END, started = FALSE"
                f" WHERE id IN ({_placeholders(len(claim))})",
                (worker, lease_until, now, *claim),
            )
            rows = await tx.fetchall(
                f"SELECT {DELIVERY_COLUMNS}, {SUBSCRIPTION_COLUMNS} FROM deliveries d"
                " JOIN subscriptions s ON s.id = d.subscription_id"
                f" WHERE d.id IN ({_placeholders(len(claim))}) ORDER BY d.id",
                claim,
            )
            deliveries = [self._delivery(row) for row in rows]
            # The composer needs each digest's history: one query for the batch, not one trip per delivery.
            to_compose = sorted({d.subscription.id for d in deliveries
                                 if d.payload is None and d.kind is DeliveryKind.DIGEST})
            histories: dict[int, tuple[set[str], set[str]]] = {sid: (set(), set()) for sid in to_compose}
            if to_compose:
                for subscription_id, kind, key in await tx.fetchall(
                    "SELECT subscription_id, kind, item_key FROM sent_items"
                    f" WHERE subscription_id IN ({_placeholders(len(to_compose))})",
                    to_compose,
                ):
                    histories[int(subscription_id)][0 if kind == "update" else 1].add(key)
        for did, status, previous_worker, active, chat, started in candidates:
            if active and started and status == DeliveryStatus.SENDING.value:
                log.warning(
                    "possible duplicate: delivery %s to chat %s was being sent by %s when its lease expired;"
                    " %s resumes it",
                    did, chat, previous_worker, worker,
                )
        return [replace(d, history=DigestHistory(frozenset(histories[d.subscription.id][0]),
                                                 frozenset(histories[d.subscription.id][1])))
                if d.payload is None and d.kind is DeliveryKind.DIGEST else d for d in deliveries]

    async def release_claims(self, worker: str | None = None) -> int:
        """End leases early (all, or one worker's) so a restarted single process resumes at once."""
        # The `status IN` term lets SQLite use the partial index deliveries_open.
        sql = (
            "UPDATE deliveries SET lease_until = ?"
            " WHERE status IN ('pending', 'sending') AND status = 'sending'"
        )
        params: tuple[Any, ...] = (RELEASED_LEASE,)
        if worker is not None:
            sql += " AND worker = ?"
            params += (worker,)
        async with self.driver.transaction() as tx:
            return await tx.execute(sql, params)

    async def set_payload(self, delivery_id: int, payload: DigestPayload) -> None:
        """Record the composed message, and that its first part is being sent now."""
        await self.driver.write(Write("UPDATE deliveries SET payload = ?, started = TRUE WHERE id = ?",
                                      (_encode_payload(payload), delivery_id)))

    async def mark_started(self, delivery_id: int) -> None:
        """Record that a delivery whose payload was already stored is being sent now."""
        await self.driver.write(Write("UPDATE deliveries SET started = TRUE WHERE id = ?", (delivery_id,)))

    async def record_part_sent(self, delivery_id: int, parts_sent: int, now: datetime) -> None:
        """Record after each part went out, so a resumed delivery continues with the next part."""
        await self.driver.write(Write("UPDATE deliveries SET parts_sent = ?, updated_at = ? WHERE id = ?",
                                      (parts_sent, _utc(now), delivery_id)))

    async def complete_delivery(self, delivery_id: int, now: datetime) -> None:
        """Mark sent, and remember the update and spotlight keys in the subscription's history."""
        now = _utc(now)
        # Three statements that read nothing back (the history comes from the stored payload, in SQL), so the
        # hot path of every delivery can share a commit with others.
        await self.driver.write(
            Write("UPDATE deliveries SET status = 'sent', sent_at = ?, updated_at = ?, lease_until = NULL,"
                  " last_error = NULL WHERE id = ?", (now, now, delivery_id)),
            Write(self._remember_updates, (now, delivery_id)),
            Write(self._remember_spotlight, (now, delivery_id)),
        )

    async def retry_delivery(self, delivery_id: int, not_before: datetime, error: str) -> None:
        """Put a delivery back to pending, not to be sent before `not_before` (transient failure)."""
        await self.driver.write(Write(
            "UPDATE deliveries SET status = 'pending', not_before = ?, last_error = ?, lease_until = NULL,"
            " worker = NULL, started = FALSE WHERE id = ?",
            (_utc(not_before), error, delivery_id),
        ))

    async def fail_delivery(self, delivery_id: int, error: str, now: datetime) -> None:
        """Mark a delivery permanently failed (it will not be retried)."""
        await self.driver.write(Write(
            "UPDATE deliveries SET status = 'failed', last_error = ?, lease_until = NULL, updated_at = ?"
            " WHERE id = ?",
            (error, _utc(now), delivery_id),
        ))

    async def prune_finished_deliveries(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` sent or failed deliveries last changed before `finished_before`; returns how many.

        Safe at any age: a digest period is never enqueued again once its subscription moved on, and the history
        of what each chat was sent lives in `sent_items`, which this leaves alone.
        """
        if limit <= 0:
            return 0
        async with self.driver.transaction() as tx:
            return await tx.execute(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
                + self.driver.dialect.indexed_by("deliveries_finished") +
                " WHERE status IN ('sent', 'failed') AND updated_at < ? LIMIT ?)",
                (_utc(finished_before), limit),
            )

    # ------------------------------------------------------------------------------------------- incoming updates

    async def claim_incoming(self, update_id: int, worker: str, now: datetime, lease_seconds: float) -> IncomingClaim:
        """Claim an incoming update for `worker` until now + lease_seconds, unless it was handled already or is
        held under a live lease. Atomic: of concurrent claims on any number of processes, one gets NEW."""
        now = _utc(now)
        async with self.driver.transaction() as tx:
            # One statement decides: a new id is inserted; a known one is retaken only while it is still being
            # handled under an expired lease (its handler died). A row comes back only when we got the claim.
            claimed = await tx.fetchone(
                "INSERT INTO incoming_updates (update_id, state, worker, lease_until, attempts, received_at)"
                " VALUES (?, 'handling', ?, ?, 1, ?)"
                " ON CONFLICT (update_id) DO UPDATE SET worker = excluded.worker,"
                " lease_until = excluded.lease_until, attempts = incoming_updates.attempts + 1"
                " WHERE incoming_updates.state = 'handling' AND incoming_updates.lease_until < ?"
                " RETURNING attempts",
                (update_id, worker, now + timedelta(seconds=lease_seconds), now, now),
            )
            if claimed is not None:
                return IncomingClaim.NEW if int(claimed[0]) == 1 else IncomingClaim.RETAKEN
            row = await tx.fetchone("SELECT state FROM incoming_updates WHERE update_id = ?", (update_id,))
        # No row: its holder released it between the two statements; the caller asks again.
        return IncomingClaim.DONE if row is not None and row[0] == "done" else IncomingClaim.BUSY

    async def finish_incoming(self, update_id: int, now: datetime) -> None:
        """Record that a claimed incoming update was handled: later claims get DONE."""
        async with self.driver.transaction() as tx:
            await tx.execute(
                "UPDATE incoming_updates SET state = 'done', lease_until = NULL WHERE update_id = ?", (update_id,)
            )

    async def release_incoming(self, update_id: int, worker: str) -> None:
        """Give up `worker`'s claim on an update it could not handle, so that it is handled when posted again."""
        async with self.driver.transaction() as tx:
            await tx.execute(
                "DELETE FROM incoming_updates WHERE update_id = ? AND state = 'handling' AND worker = ?",
                (update_id, worker),
            )

    async def prune_incoming(self, received_before: datetime, limit: int) -> int:
        """Forget up to `limit` incoming update ids first received before `received_before`; returns how many."""
        if limit <= 0:
            return 0
        async with self.driver.transaction() as tx:
            return await tx.execute(
                "DELETE FROM incoming_updates WHERE update_id IN (SELECT update_id FROM incoming_updates"
                + self.driver.dialect.indexed_by("incoming_updates_received") +
                " WHERE received_at < ? LIMIT ?)",
                (_utc(received_before), limit),
            )

    # ------------------------------------------------------------------------------------------- prompts

    async def save_prompt(self, chat: ChatAddress, message_id: int, prompt: OpenPrompt) -> None:
        """Remember the prompt sent as message `message_id` in `chat` (a second save replaces it)."""
        async with self.driver.transaction() as tx:
            await tx.execute(
                "INSERT INTO prompts (chat, message_id, action, user_id, asked_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (chat, message_id) DO UPDATE SET action = excluded.action,"
                " user_id = excluded.user_id, asked_at = excluded.asked_at",
                (str(chat), message_id, prompt.action, prompt.user_id, _utc(prompt.asked_at)),
            )

    async def find_prompt(self, chat: ChatAddress, message_id: int) -> OpenPrompt | None:
        """The prompt sent as that message, if it was one and is still remembered."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone(
                "SELECT action, user_id, asked_at FROM prompts WHERE chat = ? AND message_id = ?",
                (str(chat), message_id))
        if row is None:
            return None
        return OpenPrompt(str(row[0]), None if row[1] is None else int(row[1]), self.driver.decode_time(row[2]))

    async def prune_prompts(self, asked_before: datetime, limit: int) -> int:
        """Forget up to `limit` prompts asked before `asked_before`; returns how many."""
        if limit <= 0:
            return 0
        async with self.driver.transaction() as tx:
            return await tx.execute(
                "DELETE FROM prompts WHERE (chat, message_id) IN (SELECT chat, message_id FROM prompts"
                + self.driver.dialect.indexed_by("prompts_asked") +
                " WHERE asked_at < ? LIMIT ?)",
                (_utc(asked_before), limit),
            )

    # ------------------------------------------------------------------------------------------- review queue

    def _candidate(self, row: Row) -> Candidate:
        (cid, state, decided_by, decided_at, draft_title, draft_summary, draft_sections, source_id, title, link,
         published, excerpt, language, sections, title_key, found_at) = row
        item = FoundItem(
            source_id=source_id, title=title, link=link,
            published=None if published is None else self.driver.decode_time(published),
            excerpt=excerpt, language=language, sections=tuple(sections.split(",")) if sections else (),
            title_key=title_key,
        )
        return Candidate(
            id=int(cid), item=item, state=CandidateState(state), found_at=self.driver.decode_time(found_at),
            decided_by=None if decided_by is None else int(decided_by),
            decided_at=None if decided_at is None else self.driver.decode_time(decided_at),
            draft=ReviewDraft(draft_title, draft_summary,
                              None if draft_sections is None else tuple(filter(None, draft_sections.split(",")))),
        )

    async def add_candidates(self, items: Sequence[FoundItem], now: datetime) -> list[Candidate]:
        """Queue the items not seen before (by link, whatever its state, and by title_key among open candidates);
        returns the new candidates, in the order given. An item whose link or title_key is over MAX_KEY_BYTES is
        left out (and logged)."""
        now = _utc(now)
        fitting = [found for found in items if _fits(found)]
        if len(fitting) < len(items):
            log.warning("not queued: %d item(s) whose link or title is over %d bytes", len(items) - len(fitting),
                        MAX_KEY_BYTES)
        inserted: dict[str, int] = {}
        async with self.driver.transaction() as tx:
            for start in range(0, len(fitting), CANDIDATE_BATCH):
                chunk = fitting[start : start + CANDIDATE_BATCH]
                params: list[Any] = []
                for found in chunk:
                    params += [found.source_id, found.title, found.link,
                               None if found.published is None else _utc(found.published), found.excerpt,
                               found.language, _sections(found.sections), found.title_key, now]
                # Rows go in the order given, each skipped when it meets the link or an open title_key, including
                # one inserted by an earlier row of the same statement or by another replica at the same moment.
                # RETURNING's order is not promised, hence the link to map ids back.
                rows = await tx.fetchall(
                    f"INSERT INTO candidates ({', '.join(_CANDIDATE_FIELDS)}) VALUES "
                    + ", ".join([f"({_placeholders(len(_CANDIDATE_FIELDS))})"] * len(chunk))
                    + " ON CONFLICT DO NOTHING RETURNING id, link",
                    params,
                )
                inserted.update((str(link), int(cid)) for cid, link in rows)
        added: list[Candidate] = []
        for found in fitting:
            cid = inserted.pop(found.link, None)
            if cid is not None:
                item = found if found.published is None else replace(found, published=_utc(found.published))
                added.append(Candidate(id=cid, item=item, state=CandidateState.NEW, found_at=now))
        return added

    async def get_candidate(self, candidate_id: int) -> Candidate | None:
        """One candidate, in any state."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone(f"SELECT {CANDIDATE_COLUMNS} FROM candidates WHERE id = ?", (candidate_id,))
        return None if row is None else self._candidate(row)

    async def next_candidate(self, after_id: int | None = None) -> Candidate | None:
        """The oldest NEW candidate (after `after_id`, to skip one), or None."""
        async with self.driver.transaction(write=False) as tx:
            row = await tx.fetchone(
                f"SELECT {CANDIDATE_COLUMNS} FROM candidates" + self.driver.dialect.indexed_by("candidates_open")
                + " WHERE state = 'new' AND id > ? ORDER BY id LIMIT 1",
                (0 if after_id is None else after_id,),
            )
        return None if row is None else self._candidate(row)

    async def decide_candidate(self, candidate_id: int, state: CandidateState, actor_id: int | None,
                               now: datetime) -> bool:
        """Move a NEW candidate to PUBLISHED or REJECTED; False when it was not NEW any more (decided elsewhere),
        so two admins pressing Publish at once publish it once."""
        if state not in _DECISIONS:
            raise ValueError(f"a candidate is decided as published or rejected, not {state.value}")
        async with self.driver.transaction() as tx:
            # One conditional statement: of concurrent decisions on any number of replicas, exactly one changes
            # the row (PostgreSQL re-checks `state` after waiting for the other writer; SQLite writes one at a time).
            changed = await tx.execute(
                "UPDATE candidates SET state = ?, decided_by = ?, decided_at = ? WHERE id = ? AND state = 'new'",
                (state.value, actor_id, _utc(now), candidate_id),
            )
        return changed > 0

    async def save_draft(self, candidate_id: int, draft: ReviewDraft) -> bool:
        """Keep an admin's draft for a NEW candidate; False when it was not NEW any more."""
        sections = None if draft.sections is None else _sections(draft.sections)
        async with self.driver.transaction() as tx:
            changed = await tx.execute(
                "UPDATE candidates SET draft_title = ?, draft_summary = ?, draft_sections = ?"
                " WHERE id = ? AND state = 'new'",
                (draft.title, draft.summary, sections, candidate_id),
            )
        return changed > 0

    async def reopen_candidate(self, candidate_id: int) -> None:
        """Put a candidate back to NEW (its publication failed after it was claimed)."""
        async with self.driver.transaction() as tx:
            # While it was decided, the same story may have been queued again from another link: that one stays
            # the open one and this one expires, as only one open candidate per title_key may exist.
            await tx.execute(
                "UPDATE candidates SET decided_by = NULL, decided_at = NULL, state = CASE WHEN EXISTS ("
                " SELECT 1 FROM candidates o WHERE o.state = 'new' AND o.title_key = candidates.title_key"
                " AND o.title_key <> '') THEN 'expired' ELSE 'new' END"
                " WHERE id = ? AND state <> 'new'",
                (candidate_id,),
            )

    async def expire_candidates(self, found_before: datetime, now: datetime) -> int:
        """Expire NEW candidates found before `found_before`; returns how many."""
        async with self.driver.transaction() as tx:
            return await tx.execute(
                "UPDATE candidates SET state = 'expired', decided_by = NULL, decided_at = ?"
                " WHERE id IN (SELECT id FROM candidates" + self.driver.dialect.indexed_by("candidates_open_found")
                + " WHERE state = 'new' AND found_at < ?)",
                (_utc(now), _utc(found_before)),
            )

    async def count_open_candidates(self) -> dict[str, int]:
        """NEW candidates per source id."""
        async with self.driver.transaction(write=False) as tx:
            rows = await tx.fetchall(
                "SELECT source_id, COUNT(*) FROM candidates WHERE state = 'new' GROUP BY source_id"
            )
        return {str(source): int(count) for source, count in rows}

    async def known_links(self, links: Sequence[str]) -> set[str]:
        """Which of these links the queue holds already, in any state."""
        known: set[str] = set()
        unique = list(dict.fromkeys(links))
        async with self.driver.transaction(write=False) as tx:
            for start in range(0, len(unique), BATCH):
                chunk = unique[start : start + BATCH]
                rows = await tx.fetchall(
                    f"SELECT link FROM candidates WHERE link IN ({_placeholders(len(chunk))})", chunk
                )
                known.update(str(link) for (link,) in rows)
        return known

    async def source_states(self) -> dict[str, SourceState]:
        """Every source's polling state, by source id."""
        async with self.driver.transaction(write=False) as tx:
            rows = await tx.fetchall(f"SELECT {', '.join(_SOURCE_STATE_FIELDS)} FROM source_states")

        def when(value: Any) -> datetime | None:
            return None if value is None else self.driver.decode_time(value)

        return {
            str(source_id): SourceState(
                source_id=str(source_id), etag=etag, last_modified=last_modified, last_poll_at=when(last_poll_at),
                last_success_at=when(last_success_at), consecutive_failures=int(failures),
                next_poll_at=when(next_poll_at), items_seen=int(items_seen), errors=int(errors),
                last_error=last_error,
            )
            for (source_id, etag, last_modified, last_poll_at, last_success_at, failures, next_poll_at, items_seen,
                 errors, last_error) in rows
        }

    async def save_source_state(self, state: SourceState) -> None:
        """Create or replace a source's polling state."""

        def when(value: datetime | None) -> datetime | None:
            return None if value is None else _utc(value)

        updates = ", ".join(f"{name} = excluded.{name}" for name in _SOURCE_STATE_FIELDS[1:])
        async with self.driver.transaction() as tx:
            await tx.execute(
                f"INSERT INTO source_states ({', '.join(_SOURCE_STATE_FIELDS)})"
                f" VALUES ({_placeholders(len(_SOURCE_STATE_FIELDS))})"
                f" ON CONFLICT (source_id) DO UPDATE SET {updates}",
                (state.source_id, state.etag, state.last_modified, when(state.last_poll_at),
                 when(state.last_success_at), state.consecutive_failures, when(state.next_poll_at),
                 state.items_seen, state.errors, state.last_error),
            )

    # ------------------------------------------------------------------------------------------- reporting

    async def history(self, subscription_id: int) -> DigestHistory:
        """What a subscription has already received."""
        async with self.driver.transaction(write=False) as tx:
            rows = await tx.fetchall(
                "SELECT kind, item_key FROM sent_items WHERE subscription_id = ?", (subscription_id,)
            )
        return DigestHistory(
            sent_update_keys=frozenset(key for kind, key in rows if kind == "update"),
            shown_initiative_keys=frozenset(key for kind, key in rows if kind == "initiative"),
        )

    async def delivery_stats(self) -> DeliveryStats:
        """Counts by status, and the outcome of the latest digest period."""
        async with self.driver.transaction(write=False) as tx:
            totals = await tx.fetchall(
                "SELECT status, COUNT(*), SUM(CASE WHEN in_flight_at_crash THEN 1 ELSE 0 END)"
                " FROM deliveries GROUP BY status"
            )
            latest = await tx.fetchone(
                f"SELECT MAX(period) FROM deliveries WHERE kind = '{DeliveryKind.DIGEST.value}'"
            )
            last_period = None if latest is None or latest[0] is None else self.driver.decode_time(latest[0])
            outcome: list[Row] = []
            if last_period is not None:
                outcome = await tx.fetchall(
                    f"SELECT status, COUNT(*) FROM deliveries WHERE kind = '{DeliveryKind.DIGEST.value}'"
                    " AND period = ? GROUP BY status",
                    (last_period,),
                )
        counts = {status: int(count) for status, count, _ in totals}
        period_counts = {status: int(count) for status, count in outcome}
        return DeliveryStats(
            pending=counts.get(DeliveryStatus.PENDING.value, 0),
            sending=counts.get(DeliveryStatus.SENDING.value, 0),
            sent=counts.get(DeliveryStatus.SENT.value, 0),
            failed=counts.get(DeliveryStatus.FAILED.value, 0),
            possible_duplicates=sum(int(flagged or 0) for _, _, flagged in totals),
            last_period=last_period,
            last_period_sent=period_counts.get(DeliveryStatus.SENT.value, 0),
            last_period_failed=period_counts.get(DeliveryStatus.FAILED.value, 0),
        )

    async def save_broadcast_draft(self, draft_id: str, text: str, actor_id: int | None, now: datetime) -> None:
        """Keep a broadcast until an admin confirms or cancels it."""
        async with self.driver.transaction() as tx:
            await tx.execute("INSERT INTO broadcast_drafts (id, text, created_by, created_at) VALUES (?, ?, ?, ?)",
                             (draft_id, text, actor_id, _utc(now)))

    async def take_broadcast_draft(self, draft_id: str) -> str | None:
        """Remove and return a draft; None when it was already taken (sent or cancelled, by any replica)."""
        async with self.driver.transaction() as tx:
            row = await tx.fetchone("DELETE FROM broadcast_drafts WHERE id = ? RETURNING text", (draft_id,))
        return None if row is None else str(row[0])

    async def record_audit(self, actor_id: int | None, action: str, detail: str, now: datetime) -> None:
        """Append an admin action to the audit log."""
        async with self.driver.transaction() as tx:
            await tx.execute(
                "INSERT INTO audit_log (at, actor_id, action, detail) VALUES (?, ?, ?, ?)",
                (_utc(now), actor_id, action, detail),
            )

    async def audit_entries(self, limit: int) -> list[tuple[datetime, int | None, str, str]]:
        """The newest audit entries, newest first: (when, who, action, detail)."""
        async with self.driver.transaction(write=False) as tx:
            rows = await tx.fetchall(
                "SELECT at, actor_id, action, detail FROM audit_log ORDER BY id DESC LIMIT ?", (max(limit, 0),)
            )
        return [(self.driver.decode_time(at), actor, action, detail) for at, actor, action, detail in rows]

    async def close(self) -> None:
        """Release connections."""
        await self.driver.close()


if TYPE_CHECKING:
    # mypy checks here, once, that SqlStore implements every method of the Protocol with matching signatures.
    _conforms: type[SubscriptionStore] = SqlStore
    _queues: type[CandidateStore] = SqlStore
    _prompts: type[PromptStore] = SqlStore
