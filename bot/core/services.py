"""What commands may use: the current content, the clock, and (later) stores, passed down from the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from bot.core.catalogue import Catalogue
from bot.core.digest import DigestRules
from bot.core.messages import Chat, User
from bot.core.schedule import QuietHours
from bot.core.subscriptions import SubscriptionStore

if TYPE_CHECKING:
    from bot.core.admin import AuditLog, ContentAdmin

Clock = Callable[[], datetime]


class ChatAdmins(Protocol):
    """Answers whether a user may manage a group's subscription (the Telegram front end asks Telegram)."""

    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        """True when `user` administers `chat` (always true in a private chat)."""
        ...


class EveryoneIsAdmin:
    """For the console and other single-user front ends."""

    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        """Always true."""
        return True


class ContentSource(Protocol):
    """Gives the content in force now; a reload swaps it without the commands noticing."""

    @property
    def catalogue(self) -> Catalogue:
        """The last good catalogue."""
        ...


@dataclass(frozen=True)
class StaticContent:
    """A ContentSource that never changes (tests, benchmarks)."""

    catalogue: Catalogue


@dataclass
class Services:
    """Everything a command needs, built once by the composition root."""

    content: ContentSource
    clock: Clock
    bot_username: str = ""
    admin_ids: frozenset[int] = field(default_factory=frozenset)
    subscriptions: SubscriptionStore | None = None
    chat_admins: ChatAdmins = field(default_factory=EveryoneIsAdmin)
    default_timezone: str = "Asia/Hong_Kong"
    digest_rules: DigestRules = field(default_factory=DigestRules)
    quiet_hours_cache: dict[int, QuietHours | None] = field(default_factory=dict)
    content_admin: ContentAdmin | None = None
    audit: AuditLog | None = None
    wake_delivery: Callable[[], None] | None = None
    broadcast_drafts: dict[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        """The operator's default timezone, for times shown to admins."""
        return ZoneInfo(self.default_timezone)

    async def quiet_hours(self, chat_id: int) -> QuietHours | None:
        """A chat's quiet hours, cached in memory (they change only through /quiet, which updates the cache)."""
        if self.subscriptions is None:
            return None
        if chat_id not in self.quiet_hours_cache:
            self.quiet_hours_cache[chat_id] = await self.subscriptions.get_quiet_hours(chat_id)
        return self.quiet_hours_cache[chat_id]
