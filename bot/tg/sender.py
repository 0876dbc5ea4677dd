"""The delivery engine's Senders: over python-telegram-bot's Bot, or (BotApiSender) JSON straight to the Bot API."""

from __future__ import annotations

import json
import warnings
from datetime import timedelta
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from telegram import Bot, LinkPreviewOptions
from telegram import error as tg_error
from telegram.constants import ParseMode
from telegram.warnings import PTBDeprecationWarning

from bot.core.addresses import ChatAddress
from bot.delivery import ChatGone, ChatMoved, PermanentFailure, RetryAfter, Sender, TransientFailure
from bot.tg.ids import chat_address, telegram_id

# Every message the bot sends goes without a link preview: replies and edits (bot.tg.frontend) and deliveries.
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

    async def send(self, chat: ChatAddress, thread_id: int | None, html: str, *, silent: bool) -> None:
        """Send `html` to the chat (or forum topic); InvalidToken and other unexpected errors propagate."""
        try:
            await self._bot.send_message(
                chat_id=telegram_id(chat),
                text=html,
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
                message_thread_id=thread_id,
                disable_notification=silent or None,
            )
        except tg_error.RetryAfter as exc:
            raise RetryAfter(retry_after_seconds(exc)) from exc
        except tg_error.ChatMigrated as exc:
            raise ChatMoved(chat_address(int(exc.new_chat_id))) from exc
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


class BotApiSender:
    """The same Sender as TelegramSender, posting JSON to `{base_url}/sendMessage` over one aiohttp session.

    It builds no PTB objects per send (about 0.14 ms of CPU per message against 1.2 ms through PTB's httpx
    client; see bench/README.md), so one process can keep up with the 1,000 messages/s paid-broadcast ceiling.
    Error answers map to the same outcomes as PTB's exceptions do in TelegramSender. Use it as an async context
    manager (it owns the session).
    """

    def __init__(self, base_url: str, *, connections: int = 256, read_timeout: float | None = 5.0,
                 connect_timeout: float | None = 5.0) -> None:
        self._url = f"{base_url}/sendMessage"
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_bot(cls, bot: Bot, *, connections: int = 256) -> BotApiSender:
        """A sender to the same server, token and read timeout as a PTB Bot."""
        return cls(bot.base_url, connections=connections, read_timeout=bot.request.read_timeout)

    async def __aenter__(self) -> Self:
        """Open the HTTP session."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections), timeout=self._timeout, raise_for_status=False)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Close the HTTP session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, chat: ChatAddress, thread_id: int | None, html: str, *, silent: bool) -> None:
        """Send `html` to the chat (or forum topic); InvalidToken and Conflict propagate, as through PTB."""
        if self._session is None:
            raise RuntimeError("BotApiSender is not open: use it as an async context manager")
        body: dict[str, Any] = {"chat_id": telegram_id(chat), "text": html, "parse_mode": "HTML",
                                "link_preview_options": {"is_disabled": True}}
        if thread_id is not None:
            body["message_thread_id"] = thread_id
        if silent:
            body["disable_notification"] = True
        try:
            async with self._session.post(self._url, json=body) as response:
                status = response.status
                payload = await response.read()
        except TimeoutError as exc:
            raise TransientFailure(f"timed out: {exc!r}") from exc
        except aiohttp.ClientError as exc:
            raise TransientFailure(f"network error: {exc!r}") from exc
        if HTTPStatus.OK <= status <= 299:
            return
        raise answer_outcome(status, payload)


def answer_outcome(status: int, payload: bytes) -> Exception:
    """The outcome for a Bot API error answer, decided as PTB decides its exception (see TelegramSender.send)."""
    try:
        message = f"{HTTPStatus(status).phrase} ({status})"
    except ValueError:
        message = f"Unknown HTTPError ({status})"
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        message = _api_message(answer.get("description") or message)
        parameters = answer.get("parameters") or {}
        if parameters.get("migrate_to_chat_id"):
            return ChatMoved(chat_address(int(parameters["migrate_to_chat_id"])))
        if parameters.get("retry_after"):
            return RetryAfter(float(parameters["retry_after"]))
    if status == HTTPStatus.FORBIDDEN:
        return ChatGone(message)
    if status in (HTTPStatus.NOT_FOUND, HTTPStatus.UNAUTHORIZED):
        return tg_error.InvalidToken(message)
    if status == HTTPStatus.BAD_REQUEST:
        return ChatGone(message) if is_chat_gone(message) else PermanentFailure(message)
    if status == HTTPStatus.CONFLICT:
        return tg_error.Conflict(message)
    return TransientFailure(message, status)


def _api_message(description: str) -> str:
    """The description as PTB's TelegramError words it ("Bad Request: chat not found" -> "Chat not found")."""
    stripped = description.removeprefix("Error: ").removeprefix("[Error]: ").removeprefix("Bad Request: ")
    return stripped.capitalize() if stripped != description else stripped


if TYPE_CHECKING:
    _conforms: type[Sender] = TelegramSender  # mypy checks the Protocol here
    _lean_conforms: type[Sender] = BotApiSender
