"""Subscriptions and deliveries as values, and the store Protocol every backend (SQLite, PostgreSQL) implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol

from bot.core.addresses import ChatAddress
from bot.core.document import Document
from bot.core.messages import ChatKind
from bot.core.schedule import QuietHours, Schedule


@dataclass(frozen=True)
class Subscription:
    """A chat's (or forum topic's) standing order for digests. `sections` empty means all sections."""

    id: int
    chat: ChatAddress
    thread_id: int | None
    chat_kind: ChatKind
    schedule: Schedule
    sections: tuple[str, ...]
    active: bool
    created_at: datetime
    next_due_at: datetime
    spotlight: bool = True
    language: str = "en"  # the chat's language (kept with the chat, not the subscription): digests go out in it


@dataclass(frozen=True)
class SubscriptionRequest:
    """What a chat asked for with /subscribe; the store turns it into a Subscription."""

    chat: ChatAddress
    thread_id: int | None
    chat_kind: ChatKind
    schedule: Schedule
    sections: tuple[str, ...] = ()
    spotlight: bool = True


class DeliveryStatus(Enum):
    """Where a delivery stands. `sending` is written before the first send and after every part sent."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class DeliveryKind(Enum):
    """A scheduled digest, or an admin's broadcast (same rate-limited path)."""

    DIGEST = "digest"
    BROADCAST = "broadcast"


@dataclass(frozen=True)
class DigestPayload:
    """The composed message, fixed when first claimed so a resumed delivery sends exactly the same parts.

    `message` is the document each sender renders for its platform; `parts` are texts ready to send as they
    are (rows stored before messages were documents hold Telegram HTML parts there), used when there is no message.
    """

    parts: tuple[str, ...] = ()
    update_keys: tuple[str, ...] = ()
    spotlight_key: str | None = None
    message: Document | None = None


@dataclass(frozen=True)
class Delivery:
    """One message (possibly in several parts) owed to one chat, under the unique key (subscription, period)."""

    id: int
    subscription: Subscription
    period: datetime
    kind: DeliveryKind
    status: DeliveryStatus
    attempts: int
    parts_sent: int
    payload: DigestPayload | None
    in_flight_at_crash: bool = False
    not_before: datetime | None = None
    history: DigestHistory | None = None  # loaded with the claim for a digest still to compose


@dataclass(frozen=True)
class DigestHistory:
    """What a subscription has already received: update keys and spotlighted initiative keys."""

    sent_update_keys: frozenset[str] = field(default_factory=frozenset)
    shown_initiative_keys: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class DeliveryStats:
    """Counts for /status and for tests: the latest period's outcome and the totals."""

    pending: int
    sending: int
    sent: int
    failed: int
    possible_duplicates: int
    last_period: datetime | None = None
    last_period_sent: int = 0
    last_period_failed: int = 0
    last_broadcast_at: datetime | None = None
    last_broadcast_sent: int = 0
    last_broadcast_failed: int = 0


@dataclass(frozen=True)
class OperationsCounts:
    """What a metrics scrape reads from the store: open deliveries, the oldest one's creation, active subscriptions
    by cadence (`{"daily": 120, "weekly": 14}`)."""

    open_deliveries: int
    oldest_open_at: datetime | None
    active_by_cadence: dict[str, int] = field(default_factory=dict)


class IncomingClaim(Enum):
    """What to do with an incoming update (a chat platform's numbered event, e.g. Telegram's update_id) that may
    have been posted before: NEW and RETAKEN are to be handled (RETAKEN: its earlier handler's lease ran out),
    DONE was handled already, BUSY is being handled under a lease that has not run out yet."""

    NEW = "new"
    RETAKEN = "retaken"
    DONE = "done"
    BUSY = "busy"

    @property
    def handle(self) -> bool:
        """Whether the caller now holds the update and should handle it."""
        return self in (IncomingClaim.NEW, IncomingClaim.RETAKEN)


class SubscriptionStore(Protocol):
    """Persistent subscriptions, their schedule, and the delivery log. All times are aware UTC datetimes."""

    async def save_subscription(self, request: SubscriptionRequest, now: datetime) -> Subscription:
        """Create or replace the subscription of (chat, thread_id); it becomes active, due at its next firing."""
        ...

    async def get_subscription(self, chat: ChatAddress, thread_id: int | None) -> Subscription | None:
        """The subscription of a chat or forum topic, active or not."""
        ...

    async def unsubscribe(self, chat: ChatAddress, thread_id: int | None, now: datetime) -> bool:
        """Deactivate it; False when there was no active subscription."""
        ...

    async def deactivate_chat(self, chat: ChatAddress, reason: str, now: datetime) -> int:
        """Deactivate every subscription of a chat (bot blocked or removed); returns how many."""
        ...

    async def deactivate_workspace(self, prefix: str, reason: str, now: datetime) -> int:
        """Deactivate every subscription of every chat whose address starts with `prefix` (`slack:T0123/`: the
        workspace revoked the bot); returns how many."""
        ...

    async def migrate_chat(self, old: ChatAddress, new: ChatAddress) -> int:
        """The chat moved to a new address (a Telegram group became a supergroup): move its subscriptions, their
        deliveries and history, and its settings there."""
        ...

    async def set_quiet_hours(self, chat: ChatAddress, quiet: QuietHours | None) -> None:
        """Set (or clear, with None) a chat's quiet hours."""
        ...

    async def get_quiet_hours(self, chat: ChatAddress) -> QuietHours | None:
        """A chat's quiet hours, if any."""
        ...

    async def set_chat_language(self, chat: ChatAddress, language: str) -> None:
        """Keep a chat's language ("en", "zh-Hant"); its subscriptions' digests go out in it."""
        ...

    async def get_chat_language(self, chat: ChatAddress) -> str | None:
        """A chat's language, or None before its first contact set one."""
        ...

    async def count_active(self) -> int:
        """Number of active subscriptions."""
        ...

    async def active_by_platform(self) -> dict[str, int]:
        """Active subscriptions per platform (`{"telegram": 120, "slack": 8}`), platforms with none left out."""
        ...

    async def next_due_at(self) -> datetime | None:
        """The earliest next_due_at among active subscriptions."""
        ...

    async def prune_finished_deliveries(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` sent or failed deliveries last changed before `finished_before`; returns how many.
        The history of what each chat was sent is kept."""
        ...

    async def claim_incoming(self, update_id: int, worker: str, now: datetime, lease_seconds: float) -> IncomingClaim:
        """Claim an incoming update for `worker` until now + lease_seconds, unless it was handled already or is
        held under a live lease. Atomic: of concurrent claims on any number of processes, one gets NEW."""
        ...

    async def finish_incoming(self, update_id: int, now: datetime) -> None:
        """Record that a claimed incoming update was handled: later claims get DONE."""
        ...

    async def release_incoming(self, update_id: int, worker: str) -> None:
        """Give up `worker`'s claim on an update it could not handle, so that it is handled when posted again."""
        ...

    async def prune_incoming(self, received_before: datetime, limit: int) -> int:
        """Forget up to `limit` incoming update ids first received before `received_before`; returns how many."""
        ...

    async def next_claimable_at(self) -> datetime | None:
        """When the earliest open delivery can next be claimed: a pending one at its not_before (now when it has
        none), one being sent at the end of its lease. None when no delivery is open."""
        ...

    async def enqueue_due(self, now: datetime, limit: int) -> int:
        """Enqueue one digest delivery per due subscription, keyed (subscription, its due period).

        Due means active and next_due_at <= now (found through an index). Each one's next_due_at moves to
        its schedule's first firing after `now`, so slots missed while the bot was down collapse into one
        delivery. Idempotent: a key already enqueued is not enqueued again. Returns how many were enqueued.
        """
        ...

    async def enqueue_broadcast(self, payload: DigestPayload, now: datetime) -> int:
        """Enqueue one broadcast delivery of `payload` per active subscription; returns how many."""
        ...

    async def claim_deliveries(self, worker: str, now: datetime, lease_seconds: float, limit: int) -> list[Delivery]:
        """Claim up to `limit` deliveries to send: pending ones whose not_before has passed, and `sending` ones
        whose lease expired (their previous sender died: flagged in_flight_at_crash). Claimed rows become
        `sending`, leased to `worker` until now + lease_seconds, attempts + 1. Safe for concurrent workers.
        A digest without a payload yet comes with its subscription's history (one query for the whole batch).
        """
        ...

    async def release_claims(self, worker: str | None = None) -> int:
        """End leases early (all, or one worker's) so a restarted single process resumes at once."""
        ...

    async def set_payload(self, delivery_id: int, payload: DigestPayload) -> None:
        """Record the composed message and that its first part is being sent now (written just before the send)."""
        ...

    async def mark_started(self, delivery_id: int) -> None:
        """Record that a delivery whose payload was already stored (a broadcast, a resumed digest) is being sent
        now. Only a delivery whose send had started is flagged in_flight_at_crash when its lease is retaken."""
        ...

    async def record_part_sent(self, delivery_id: int, parts_sent: int, now: datetime) -> None:
        """Record after each part went out, so a resumed delivery continues with the next part."""
        ...

    async def complete_delivery(self, delivery_id: int, now: datetime) -> None:
        """Mark sent, and remember the update and spotlight keys in the subscription's history."""
        ...

    async def retry_delivery(self, delivery_id: int, not_before: datetime, error: str) -> None:
        """Put a delivery back to pending, not to be sent before `not_before` (transient failure)."""
        ...

    async def fail_delivery(self, delivery_id: int, error: str, now: datetime) -> None:
        """Mark a delivery permanently failed (it will not be retried)."""
        ...

    async def history(self, subscription_id: int) -> DigestHistory:
        """What a subscription has already received."""
        ...

    async def delivery_stats(self) -> DeliveryStats:
        """Counts by status, and the outcome of the latest digest period and of the latest broadcast."""
        ...

    async def record_audit(self, actor_id: int | None, action: str, detail: str, now: datetime) -> None:
        """Append an admin action to the audit log."""
        ...

    async def save_broadcast_draft(self, draft_id: str, text: str, actor_id: int | None, now: datetime) -> None:
        """Keep a broadcast until an admin confirms or cancels it."""
        ...

    async def take_broadcast_draft(self, draft_id: str) -> str | None:
        """Remove and return a draft; None when it was already taken. Atomic: one confirmation wins."""
        ...

    async def audit_entries(self, limit: int) -> list[tuple[datetime, int | None, str, str]]:
        """The newest audit entries: (when, who, action, detail)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
