"""The delivery engine's Sender for Slack: chat.postMessage, with Slack's answers classified like Telegram's.

| Slack answer | outcome |
|---|---|
| `ratelimited` / HTTP 429 with Retry-After | RetryAfter: that channel (or, many at once, the workspace) waits |
| `channel_not_found`, `not_in_channel`, `is_archived` | ChatGone: the channel is deactivated |
| `account_inactive`, `token_revoked`, `invalid_auth` | WorkspaceGone: every channel of the workspace is deactivated |
| HTTP 5xx, timeouts, network errors | TransientFailure: retried with back-off |
| anything else (`invalid_blocks`, `msg_too_long`, ...) | PermanentFailure: this message fails |
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.addresses import SLACK, ChatAddress
from bot.delivery import (
    ChatGone,
    ChatPace,
    ChatPacing,
    DeliveryOutcome,
    PermanentFailure,
    Platform,
    RetryAfter,
    Sender,
    TransientFailure,
    WorkspaceGone,
)
from bot.slack.identity import channel_of, workspace_of
from bot.slack.render import message_parts

log = logging.getLogger(__name__)

CHANNEL_GONE = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
WORKSPACE_GONE = frozenset({"account_inactive", "token_revoked", "invalid_auth"})
TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
DEFAULT_RETRY_AFTER = 1.0
# Slack: "generally one message per second per channel", with a workspace-wide limit it does not publish.
CHANNEL_INTERVAL = 1.0


def classify(status: int, error: str, retry_after: str | None = None, *, team_id: str = "") -> DeliveryOutcome:
    """The delivery outcome for a Slack error answer: `classify(429, "ratelimited", "30")` is RetryAfter(30);
    a refused token ends every chat of workspace `team_id`."""
    if status == 429 or error == "ratelimited":
        try:
            seconds = float(retry_after) if retry_after else DEFAULT_RETRY_AFTER
        except ValueError:
            seconds = DEFAULT_RETRY_AFTER
        return RetryAfter(max(seconds, 0.0))
    if error in CHANNEL_GONE:
        return ChatGone(error)
    if error in WORKSPACE_GONE:
        return WorkspaceGone(f"{SLACK}:{team_id}/", error)
    if status >= 500 or error in TRANSIENT:
        return TransientFailure(error or f"HTTP {status}")
    return PermanentFailure(error or f"HTTP {status}")


class SlackSender:
    """Posts one rendered part (a Block Kit message as JSON, from bot.slack.render.message_parts) to a channel."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self.workspaces_gone: dict[str, str] = {}  # workspace -> the error that showed the token no longer works

    async def post(self, channel: str, part: str, *, team_id: str = "") -> None:
        """chat.postMessage to a channel or DM id; raises the delivery outcome of an error answer."""
        if team_id in self.workspaces_gone:
            # The token is dead for the whole workspace: every channel's delivery ends the same way, without
            # asking Slack again with a token it refused.
            raise WorkspaceGone(f"{SLACK}:{team_id}/", self.workspaces_gone[team_id])
        message = json.loads(part)
        try:
            await self.client.chat_postMessage(channel=channel, text=message.get("text", ""),
                                               blocks=message.get("blocks"), unfurl_links=False, unfurl_media=False)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error", "")) if isinstance(response.data, dict) else ""
            outcome = classify(response.status_code, error, response.headers.get("Retry-After")
                               or response.headers.get("retry-after"), team_id=team_id)
            if isinstance(outcome, WorkspaceGone):
                self.workspaces_gone[team_id] = error
                log.error("Slack refused the bot token in workspace %s (%s): every channel of it is deactivated",
                          team_id, error)
            elif isinstance(outcome, ChatGone):
                log.warning("Slack channel %s deactivated: %s", channel, error)
            raise outcome from exc
        except TimeoutError as exc:
            raise TransientFailure(f"timed out: {exc!r}") from exc
        except aiohttp.ClientError as exc:
            raise TransientFailure(f"network error: {exc!r}") from exc

    async def send(self, chat: ChatAddress, thread_id: int | None, part: str, *, silent: bool) -> None:
        """The delivery engine's call, for a `slack:T0123/C0456` chat."""
        await self.post(channel_of(chat), part, team_id=workspace_of(chat))


def slack_pace(chat: ChatAddress) -> ChatPace | None:
    """Slack's per-channel limit: one message a second."""
    return ChatPace(1, CHANNEL_INTERVAL)


def slack_platform(sender: Sender, *, pace: ChatPacing = slack_pace) -> Platform:
    """The engine's view of Slack: `slack:` chats, sent through `sender` as Block Kit messages, one a second each."""
    return Platform(SLACK, sender, pace=pace, render=message_parts)


if TYPE_CHECKING:
    _conforms: type[Sender] = SlackSender
