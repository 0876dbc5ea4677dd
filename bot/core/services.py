"""What commands may use: the current content, the clock, the stores and the front end's facts, built once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bot.core.addresses import ChatAddress
from bot.core.candidates import CandidateStore
from bot.core.catalogue import Catalogue
from bot.core.digest_composer import DigestRules
from bot.core.i18n import ENGLISH, known_language, language_from_code
from bot.core.messages import Chat, User
from bot.core.ports import NO_METRICS, AuditLog, ChatAdmins, ContentAdmin, ContentSource, Metrics, WallClock
from bot.core.prompts import PromptStore
from bot.core.schedule import QuietHours
from bot.core.subscriptions import SubscriptionStore

log = logging.getLogger(__name__)

QUIET_HOURS_TTL = 60.0  # seconds a replica trusts its cached copy of a chat's quiet hours
LANGUAGE_TTL = 60.0  # the same for a chat's language (another replica's /language shows here within a minute)
LANGUAGE_CACHE_LIMIT = 100_000  # chats whose language is remembered; past it the cache starts afresh


class EveryoneIsAdmin:
    """For the console and other single-user front ends."""

    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        """Always true."""
        return True


@dataclass(frozen=True)
class StaticContent:
    """A ContentSource that never changes (tests, benchmarks)."""

    catalogue: Catalogue


class QuietHoursCache:
    """Chats' quiet hours as this process last read them, each with the monotonic time it was read.

    One per process, shared by the commands and the delivery engine, whichever Services they hold.
    """

    def __init__(self) -> None:
        self._entries: dict[ChatAddress, tuple[QuietHours | None, float]] = {}

    def fresh(self, chat: ChatAddress) -> tuple[QuietHours | None] | None:
        """The cached quiet hours (in a 1-tuple, since None is an answer) if read less than a minute ago."""
        cached = self._entries.get(chat)
        if cached is not None and time.monotonic() - cached[1] < QUIET_HOURS_TTL:
            return (cached[0],)
        return None

    def remember(self, chat: ChatAddress, hours: QuietHours | None) -> None:
        """Cache a chat's quiet hours, read or changed now."""
        self._entries[chat] = (hours, time.monotonic())


class LanguageCache:
    """Chats' languages as this process last read or set them, each with the monotonic time it was read."""

    def __init__(self) -> None:
        self._entries: dict[ChatAddress, tuple[str, float]] = {}

    def fresh(self, chat: ChatAddress) -> str | None:
        """The cached language if read less than a minute ago."""
        cached = self._entries.get(chat)
        if cached is not None and time.monotonic() - cached[1] < LANGUAGE_TTL:
            return cached[0]
        return None

    def remember(self, chat: ChatAddress, language: str) -> None:
        """Cache a chat's language, read or changed now."""
        if len(self._entries) >= LANGUAGE_CACHE_LIMIT:
            self._entries.clear()
        self._entries[chat] = (language, time.monotonic())


def _no_delivery_loop() -> None:
    """Wakes nothing: there is no delivery loop (a test, a benchmark)."""


@dataclass(frozen=True)
class Services:
    """Everything a command needs, built complete by the composition root and never changed afterwards.

    What a front end only learns when it runs (the bot's username, who administers a group) is not filled in
    later: the composition root builds this after the front end exists. Optional fields are capabilities a
    deployment may really lack, not fields waiting for a value: `subscriptions` (content-only services, as in
    the benchmarks), `content_admin` and `audit` (services without a content manager or an audit log).
    """

    content: ContentSource
    clock: WallClock
    bot_username: str = ""
    admin_ids: frozenset[int] = field(default_factory=frozenset)
    operator_contact: str = ""  # the deployment's contact (BOT_CONTACT), shown by /about
    subscriptions: SubscriptionStore | None = None
    chat_admins: ChatAdmins = field(default_factory=EveryoneIsAdmin)
    default_timezone: str = "Asia/Hong_Kong"
    digest_rules: DigestRules = field(default_factory=DigestRules)
    quiet_hours_cache: QuietHoursCache = field(default_factory=QuietHoursCache)
    language_cache: LanguageCache = field(default_factory=LanguageCache)
    content_admin: ContentAdmin | None = None
    candidates: CandidateStore | None = None  # the review queue of items found on official sources
    audit: AuditLog | None = None
    prompts: PromptStore | None = None  # the prompts a front end sent and keeps for the answers (Edit's reply)
    # Sets the delivery loop's wake-up event, which exists before the loop runs (see bot.app.opened).
    wake_delivery: Callable[[], None] = _no_delivery_loop
    metrics: Metrics = NO_METRICS  # what the front ends and commands count for the operator's dashboard

    @property
    def zone(self) -> ZoneInfo:
        """The operator's default timezone, for times shown to admins."""
        return ZoneInfo(self.default_timezone)

    async def quiet_hours(self, chat: ChatAddress) -> QuietHours | None:
        """A chat's quiet hours, cached for a minute: another replica may change them (/quiet refreshes this
        replica's entry at once)."""
        if self.subscriptions is None:
            return None
        cached = self.quiet_hours_cache.fresh(chat)
        if cached is not None:
            return cached[0]
        hours = await self.subscriptions.get_quiet_hours(chat)
        self.remember_quiet_hours(chat, hours)
        return hours

    def remember_quiet_hours(self, chat: ChatAddress, hours: QuietHours | None) -> None:
        """Cache a chat's quiet hours (after reading or changing them)."""
        self.quiet_hours_cache.remember(chat, hours)

    async def chat_language(self, chat: ChatAddress, language_code: str | None = None) -> str:
        """The chat's language. On first contact it is set from the user's language_code (`zh-hk` gives zh-Hant)
        and kept with the chat, so later messages (and digests) follow it whoever writes."""
        cached = self.language_cache.fresh(chat)
        if cached is not None:
            return cached
        if self.subscriptions is None:
            return language_from_code(language_code)
        try:
            stored = await self.subscriptions.get_chat_language(chat)
            if stored is None:
                if language_code is None:  # no first contact yet (a channel post says nothing): English, not kept
                    return ENGLISH
                stored = language_from_code(language_code)
                await self.subscriptions.set_chat_language(chat, stored)
        except Exception:  # the store is failing: answer in the sender's language now, decide nothing for later
            log.exception("could not read or keep the language of chat %s", chat)
            return language_from_code(language_code)
        language = known_language(stored)
        self.remember_language(chat, language)
        return language

    def remember_language(self, chat: ChatAddress, language: str) -> None:
        """Cache a chat's language (after reading or changing it)."""
        self.language_cache.remember(chat, language)

    async def hushed(self, chat: ChatAddress, *, scheduled_digest: bool = False) -> bool:
        """The quiet-hours rule, for replies and deliveries alike: in a chat's quiet hours nothing but a scheduled
        digest makes a sound."""
        if scheduled_digest:
            return False
        hours = await self.quiet_hours(chat)
        return hours is not None and hours.contains(self.clock())
