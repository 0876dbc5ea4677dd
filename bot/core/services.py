"""What commands may use: the current content, the clock, and (later) stores, passed down from the composition root."""

from __future__ import annotations

import time
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
QUIET_HOURS_TTL = 60.0  # seconds a replica trusts its cached copy of a chat's quiet hours


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
    operator_contact: str = ""  # the deployment's contact (BOT_CONTACT), shown by /about
    subscriptions: SubscriptionStore | None = None
    chat_admins: ChatAdmins = field(default_factory=EveryoneIsAdmin)
    default_timezone: str = "Asia/Hong_Kong"
    digest_rules: DigestRules = field(default_factory=DigestRules)
    quiet_hours_cache: dict[int, tuple[QuietHours | None, float]] = field(default_factory=dict)  # (hours, read at)
    content_admin: ContentAdmin | None = None
    audit: AuditLog | None = None
    wake_delivery: Callable[[], None] | None = None

    @property
    def zone(self) -> ZoneInfo:
        """The operator's default timezone, for times shown to admins."""
        return ZoneInfo(self.default_timezone)

    async def quiet_hours(self, chat_id: int) -> QuietHours | None:
        """A chat's quiet hours, cached for a minute: another replica may change them (/quiet refreshes this
        replica's entry at once)."""
        if self.subscriptions is None:
            return None
        cached = self.quiet_hours_cache.get(chat_id)
        if cached is not None and time.monotonic() - cached[1] < QUIET_HOURS_TTL:
            return cached[0]
        hours = await self.subscriptions.get_quiet_hours(chat_id)
        self.remember_quiet_hours(chat_id, hours)
        return hours

    def remember_quiet_hours(self, chat_id: int, hours: QuietHours | None) -> None:
        """Cache a chat's quiet hours (after reading or changing them)."""
        self.quiet_hours_cache[chat_id] = (hours, time.monotonic())
