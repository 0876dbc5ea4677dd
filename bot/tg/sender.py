"""The delivery engine's Sender over python-telegram-bot: one send_message, PTB's errors mapped to our outcomes."""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import TYPE_CHECKING

from telegram import Bot, LinkPreviewOptions
from telegram import error as tg_error
from telegram.constants import ParseMode
from telegram.warnings import PTBDeprecationWarning

from bot.delivery import ChatGone, ChatMoved, PermanentFailure, RetryAfter, Sender, TransientFailure

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

# 400 answers that mean the bot can no longer write to the chat at all (rather than "this message is wrong").
_CHAT_GONE_400 = (
    "chat not found",
    "bot was kicked",
    "have no rights to send",
    "not enough rights to send",
    "need administrator rights",
    "chat_write_forbidden",
    "group chat was deactivated",
    "peer_id_invalid",
)


class TelegramSender:
    """Sends one HTML message part with link previews off, raising the delivery engine's outcome exceptions."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def send(self, chat_id: int, thread_id: int | None, html: str, *, silent: bool) -> None:
        """Send `html` to the chat (or forum topic); InvalidToken and other unexpected errors propagate."""
        try:
            await self._bot.send_message(
                chat_id=chat_id,
                text=html,
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
                message_thread_id=thread_id,
                disable_notification=silent or None,
            )
        except tg_error.RetryAfter as exc:
            raise RetryAfter(retry_after_seconds(exc)) from exc
        except tg_error.ChatMigrated as exc:
            raise ChatMoved(int(exc.new_chat_id)) from exc
        except tg_error.Forbidden as exc:
            raise ChatGone(exc.message) from exc
        # BadRequest and TimedOut subclass NetworkError: they must come before it.
        except tg_error.BadRequest as exc:
            if is_chat_gone(exc.message):
                raise ChatGone(exc.message) from exc
            raise PermanentFailure(exc.message) from exc
        except tg_error.TimedOut as exc:
            raise TransientFailure(f"timed out: {exc.message}") from exc
        except tg_error.NetworkError as exc:
            # PTB raises a plain NetworkError for 5xx answers and for transport failures alike.
            raise TransientFailure(exc.message) from exc


def is_chat_gone(message: str) -> bool:
    """True when a 400 answer's description says the chat itself is unreachable for the bot."""
    lowered = message.lower()
    return any(marker in lowered for marker in _CHAT_GONE_400)


def retry_after_seconds(exc: tg_error.RetryAfter) -> float:
    """The flood-control wait in seconds, whether PTB exposes it as an int or (PTB_TIMEDELTA) a timedelta."""
    with warnings.catch_warnings():
        # PTB 22.2+ warns on every read of the int form; the value is what we want either way.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


if TYPE_CHECKING:
    _conforms: type[Sender] = TelegramSender  # mypy checks the Protocol here
