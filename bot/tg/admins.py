"""Who may manage a group's subscription: its administrators, as Telegram reports them (cached briefly)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from telegram import Bot
from telegram.error import TelegramError

from bot.core.messages import Chat, User

log = logging.getLogger(__name__)


class TelegramChatAdmins:
    """Asks Telegram for a chat's administrators (getChatAdministrators), caching the answer for `ttl` seconds."""

    def __init__(self, bot: Bot, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.bot = bot
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[int, tuple[float, frozenset[int]]] = {}

    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        """Private chats: yes. Posts signed by the chat itself (channel posts, anonymous admins): yes."""
        if not chat.kind.is_group:
            return True
        if user is None:
            return False
        if user.id == chat.id:
            return True
        return user.id in await self._admins(chat.id)

    async def _admins(self, chat_id: int) -> frozenset[int]:
        cached = self._cache.get(chat_id)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        try:
            members = await self.bot.get_chat_administrators(chat_id)
        except TelegramError as exc:
            log.warning("could not list administrators of chat %s: %s", chat_id, exc)
            return frozenset()
        admins = frozenset(member.user.id for member in members)
        self._cache[chat_id] = (self.clock(), admins)
        return admins

    def forget(self, chat_id: int) -> None:
        """Drop a chat's cached administrators (e.g. after a chat_member update)."""
        self._cache.pop(chat_id, None)
