"""The ports the core needs from the edges (content, content admin, audit log, chat admins) and the two clocks."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

from bot.core.catalogue import Catalogue
from bot.core.messages import Chat, User

# Two clocks, two names: the wall clock tells the date and time (digests, schedules, audit entries); the monotonic
# clock measures seconds between two moments (pacing, caches) and never jumps when the wall clock is set.
WallClock = Callable[[], datetime]
MonotonicClock = Callable[[], float]


def utc_now() -> datetime:
    """The real wall clock, in UTC (tests pass their own)."""
    return datetime.now(UTC)


class ContentSource(Protocol):
    """Gives the content in force now; a reload swaps it without the commands noticing."""

    @property
    def catalogue(self) -> Catalogue:
        """The last good catalogue."""
        ...


class ChatAdmins(Protocol):
    """Answers whether a user may manage a group's subscription (the Telegram front end asks Telegram)."""

    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        """True when `user` administers `chat` (always true in a private chat)."""
        ...


class ContentDiffView(Protocol):
    """What changed in the content, as the content manager describes it."""

    def describe(self) -> str:
        """A short plain-text summary."""
        ...


class ContentOutcome(Protocol):
    """The result of a reload, upload or rollback."""

    @property
    def ok(self) -> bool:
        """True when the new content is in force."""
        ...

    @property
    def errors(self) -> Sequence[object]:
        """Each prints as `file:line: key: message`."""
        ...

    @property
    def diff(self) -> ContentDiffView | None:
        """What changed, when ok."""
        ...

    @property
    def path(self) -> str | None:
        """The file written, for uploads and rollbacks."""
        ...

    @property
    def version(self) -> str:
        """The content version in force afterwards."""
        ...


Record = Callable[[str], Coroutine[Any, Any, None]]


class ContentAdmin(Protocol):
    """Changes the content safely: validate in full, keep the last good content, remember what to roll back.

    Every method leaves the event loop free while it parses and writes, and runs one change at a time.
    """

    async def reload(self) -> ContentOutcome:
        """Re-read the content directory."""
        ...

    async def upload(self, file_name: str, data: bytes, record: Record | None = None) -> ContentOutcome:
        """Validate an uploaded file against the rest; if valid, await `record(path)` and only then write it.

        If `record` raises, nothing is written: an applied change always has its audit entry.
        """
        ...

    async def rollback(self, record: Record | None = None) -> ContentOutcome:
        """Undo the latest upload; `record` as for upload."""
        ...

    async def publish_update(self, day: date, sections: Sequence[str], title: str, summary: str, link: str,
                             actor: int | None, record: Record | None = None, *,
                             language: str = "en") -> ContentOutcome:
        """Add one dated update to the updates file as an upload of it would (validated, `record`ed first, kept
        for /rollback); `actor` is the admin who published it; `language` the one its text is written in."""
        ...

    @property
    def last_error(self) -> ContentOutcome | None:
        """The latest failed reload, if the content on disk is broken now."""
        ...


class AuditLog(Protocol):
    """Where admin actions are written: who, when, what."""

    async def record_audit(self, actor_id: int | None, action: str, detail: str, now: datetime) -> None:
        """Append one entry."""
        ...


class Metrics(Protocol):
    """What the bot counts and times for an operator's dashboard (bot.metrics.PrometheusMetrics records it).

    Labels are from small, fixed sets: `kind` is an update's kind (`message`, `callback_query`...), `command` a
    command of the table or `unknown`, `outcome` one of DELIVERY_OUTCOMES, `platform` the chat platform
    (`telegram`). Every method is cheap and never raises: the delivery engine calls them per message.
    """

    def update_handled(self, kind: str, command: str) -> None:
        """One update was handled (a command, a button, a document, a membership change)."""
        ...

    def reply_built(self, seconds: float) -> None:
        """A command took this long to turn its Request into a Reply."""
        ...

    def reply_sent(self) -> None:
        """A reply went out (however many messages it took)."""
        ...

    def admin_action(self, action: str) -> None:
        """An admin ran an admin-only command."""
        ...

    def delivery(self, platform: str, kind: str, outcome: str) -> None:
        """A delivery (digest or broadcast) was sent, failed, retried, ... (see DELIVERY_OUTCOMES)."""
        ...

    def platform_error(self, platform: str, status: str) -> None:
        """The platform answered a send with flood control (`429`) or a server error (`5xx`)."""
        ...

    def send_round_trip(self, platform: str, seconds: float) -> None:
        """One send's request took this long to be answered."""
        ...

    def digest_lag(self, platform: str, seconds: float) -> None:
        """A digest was sent this long after its scheduled time."""
        ...

    def scheduler_tick(self, seconds: float, *, leading: bool) -> None:
        """A scheduler tick ran (enqueueing and pruning when leading) in this long."""
        ...

    def content_reload(self, outcome: str) -> None:
        """The content was reloaded: `ok` or `failed`."""
        ...


# What the delivery engine reports per delivery, as `Metrics.delivery`'s outcome.
DELIVERY_OUTCOMES = ("sent", "failed", "retried", "deactivated", "migrated", "possible_duplicate")


class NoMetrics:
    """Records nothing: metrics turned off, tests and benchmarks that measure without them."""

    def update_handled(self, kind: str, command: str) -> None:
        """Nothing."""

    def reply_built(self, seconds: float) -> None:
        """Nothing."""

    def reply_sent(self) -> None:
        """Nothing."""

    def admin_action(self, action: str) -> None:
        """Nothing."""

    def delivery(self, platform: str, kind: str, outcome: str) -> None:
        """Nothing."""

    def platform_error(self, platform: str, status: str) -> None:
        """Nothing."""

    def send_round_trip(self, platform: str, seconds: float) -> None:
        """Nothing."""

    def digest_lag(self, platform: str, seconds: float) -> None:
        """Nothing."""

    def scheduler_tick(self, seconds: float, *, leading: bool) -> None:
        """Nothing."""

    def content_reload(self, outcome: str) -> None:
        """Nothing."""


NO_METRICS: Metrics = NoMetrics()
