"""Telegram as a delivery platform: its per-chat limits and its sender, for the platform-neutral engine."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.addresses import TELEGRAM, ChatAddress
from bot.delivery import ChatPace, Platform, RateLimiter, Render, Sender
from bot.tg.ids import telegram_id
from bot.tg.render import html_parts

GROUP_PERIOD = 60.0  # Telegram counts a group's messages per minute


@dataclass(frozen=True)
class TelegramPace:
    """Telegram's per-chat limits (Bot FAQ): about one message a second in a private chat, 20 a minute in a group.
    0 turns a limit off."""

    private_interval: float = 1.0
    group_per_minute: int = 20

    def __call__(self, chat: ChatAddress) -> ChatPace | None:
        """The pace of one chat: groups have negative ids, private chats positive ones."""
        if telegram_id(chat) < 0:
            return ChatPace(self.group_per_minute, GROUP_PERIOD) if self.group_per_minute > 0 else None
        return ChatPace(1, self.private_interval) if self.private_interval > 0 else None


def telegram_platform(sender: Sender, pace: TelegramPace | None = None, *, render: Render = html_parts,
                      limiter: RateLimiter | None = None) -> Platform:
    """The engine's view of Telegram: `telegram:` chats, sent through `sender` as HTML parts, at Telegram's pace."""
    return Platform(TELEGRAM, sender, pace=pace or TelegramPace(), render=render, limiter=limiter)
