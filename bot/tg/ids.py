"""Telegram chat ids and the platform-neutral addresses the core uses for them."""

from __future__ import annotations

from bot.core.addresses import TELEGRAM, ChatAddress, telegram

__all__ = ["chat_address", "telegram_id"]

chat_address = telegram


def telegram_id(address: ChatAddress) -> int:
    """The Telegram chat id inside `telegram:-100123`; ValueError for another platform's chat."""
    if address.platform != TELEGRAM:
        raise ValueError(f"{address} is not a Telegram chat")
    return int(address.id)
