"""Who may manage a group's subscription: its administrators, as Telegram reports them (cached briefly)."""

from __future__ import annotations

import logging
import time

from telegram import Bot
from telegram.error import TelegramError

from bot.core.messages import Chat, User
from bot.core.ports import MonotonicClock
from bot.tg.ids import telegram_id

log = logging.getLogger(__name__)


class TelegramChatAdmins:
    """Asks Telegram for a chat's administrators (getChatAdministrators), caching the answer for `ttl` seconds."""

    def __init__(self, bot: Bot, ttl: float = 300.0, monotonic: MonotonicClock = time.monotonic) -> None:
        self.bot = bot
        self.ttl = ttl
        self.monotonic = monotonic
        self._cache: dict[int, tuple[float, frozenset[int]]] = {}

    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        """Private chats: yes. Posts signed by the chat itself (channel posts, anonymous admins): yes."""
        if not chat.kind.is_group:
            return True
        if user is None:
            return False
        group = telegram_id(chat.address)
        if user.id == group:
            return True
        admins, fresh = await self._admins(group)
        if user.id in admins:
            return True
        if fresh:
            return False
        # The cached list may predate the user's promotion: ask Telegram once more before refusing.
        self.forget(group)
        admins, _ = await self._admins(group)
        return user.id in admins

    async def _admins(self, chat_id: int) -> tuple[frozenset[int], bool]:
        """The chat's administrators, and whether Telegram was asked just now (False: from the cache)."""
        cached = self._cache.get(chat_id)
        if cached is not None and self.monotonic() - cached[0] < self.ttl:
            return cached[1], False
        try:
            members = await self.bot.get_chat_administrators(chat_id)
        except TelegramError as exc:
            log.warning("could not list administrators of chat %s: %s", chat_id, exc)
            return frozenset(), True
        admins = frozenset(member.user.id for member in members)
        self._cache[chat_id] = (self.monotonic(), admins)
        return admins, True

    def forget(self, chat_id: int) -> None:
        """Drop a chat's cached administrators, so the next question goes to Telegram."""
        self._cache.pop(chat_id, None)
