"""Turns Slack's slash command, direct messages, mentions and button presses into core Requests, and Replies into
Block Kit messages (slack-bolt, async)."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.commands import dispatch, find_command
from bot.core.document import doc
from bot.core.membership import membership_changed
from bot.core.messages import SORRY, Chat, MembershipChange, Reply, Request, User, interpret
from bot.core.services import Services
from bot.slack.identity import NotASlackId, slack_chat, slack_user
from bot.slack.render import ACTION_PREFIX, SLASH_COMMAND, reply_messages

log = logging.getLogger(__name__)

# In a channel a slash command's answer is seen only by whoever typed it (Slack's own default), except a change
# to the channel's subscription by someone allowed to make it: the channel should know its digest changed.
CHANNEL_NEWS = frozenset({"subscribe", "unsubscribe", "quiet"})
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")

Respond = Callable[..., Awaitable[Any]]


def slack_request(text: str, chat: Chat, user: User | None, *, from_button: bool = False) -> Request | None:
    """`sector finance` (the slash command's text, a DM or a mention without the mention) as a Request.

    A text starting with a known command name is that command (with or without a slash); other text is a search
    (`@HK AI Pulse finance` searches for finance); an empty text asks for help.
    """
    text = _MENTION.sub(" ", text).strip()
    if not text:
        return Request("help", (), chat, user)
    head = text.split()[0].lstrip("/")
    if from_button or text.startswith("/") or find_command(head) is not None:
        return interpret(text if text.startswith("/") or from_button else "/" + text, chat, user,
                         from_button=from_button)
    return Request("search", tuple(text.split()), chat, user)


def is_ephemeral(request: Request, reply: Reply, allowed: bool) -> bool:
    """Whether a reply in a channel is shown to its asker only: everything but news of the channel's own
    subscription changed by someone `allowed` to change it."""
    if not request.chat.kind.is_group:
        return False
    known = find_command(request.command)
    return not (known is not None and known.name in CHANNEL_NEWS and allowed and reply.body != doc(SORRY))


class SlackFrontEnd:
    """Registers the slash command, the DM and mention events, and the buttons on a bolt AsyncApp."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def install(self, app: AsyncApp) -> None:
        """Add this front end's listeners and error handler to a bolt app."""
        app.command(SLASH_COMMAND)(self.on_command)
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.action(re.compile("^" + re.escape(ACTION_PREFIX)))(self.on_button)
        app.event("member_joined_channel")(self.on_joined)
        for gone in ("channel_left", "group_left", "channel_archive", "group_archive", "channel_deleted",
                     "group_deleted"):
            app.event(gone)(self.on_gone)
        app.error(self.on_error)

    async def _run(self, request: Request) -> tuple[Reply, bool]:
        """The reply, and whether the asker may manage this chat's subscription (asked only where it decides
        whether the channel sees the answer)."""
        reply = await dispatch(request, self.services)
        known = find_command(request.command)
        allowed = (request.chat.kind.is_group and known is not None and known.name in CHANNEL_NEWS
                   and await self.services.chat_admins.is_admin(request.chat, request.user))
        return reply, allowed

    async def on_joined(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any],
                        client: AsyncWebClient) -> None:
        """The bot was added to a channel: a short hello (other members joining are not our business)."""
        if event.get("user") != context.get("bot_user_id"):
            return
        chat = self._event_chat(event, body)
        if chat is None:
            return
        reply = await membership_changed(MembershipChange(chat, present=True, was_present=False), self.services)
        for message in reply_messages(reply):
            await client.chat_postMessage(channel=event["channel"], unfurl_links=False, **message)

    async def on_gone(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """The bot left or was removed from a channel, or the channel was archived or deleted: its digest ends now
        rather than at its next send."""
        chat = self._event_chat(event, body)
        if chat is not None:
            await membership_changed(MembershipChange(chat, present=False, was_present=True), self.services)

    @staticmethod
    def _event_chat(event: dict[str, Any], body: dict[str, Any]) -> Chat | None:
        channel = event.get("channel")
        channel_id = channel.get("id") if isinstance(channel, dict) else channel
        try:
            return slack_chat(str(body.get("team_id") or event.get("team") or ""), str(channel_id or ""))
        except NotASlackId:
            return None

    async def on_command(self, ack: Callable[[], Awaitable[None]], command: dict[str, Any],
                         respond: Respond) -> None:
        """`/hkai sector finance`: acknowledged at once (Slack waits 3 s), answered through the response_url."""
        await ack()
        try:
            chat = slack_chat(command["team_id"], command["channel_id"], name=command.get("channel_name"))
            user = slack_user(command["user_id"], command.get("user_name", ""))
        except (KeyError, NotASlackId) as exc:
            log.warning("ignored a slash command without a usable channel or user: %s", exc)
            return
        request = slack_request(command.get("text", ""), chat, user)
        if request is None:
            return
        reply, allowed = await self._run(request)
        response_type = "ephemeral" if is_ephemeral(request, reply, allowed) else "in_channel"
        for message in reply_messages(reply):
            await respond(response_type=response_type, replace_original=False, **message)

    async def on_mention(self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        """`@HK AI Pulse finance` in a channel: answered in the channel (help and errors to the asker only)."""
        await self._conversation(event, body, client)

    async def on_message(self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        """A direct message to the bot (other messages, edits and the bot's own posts are not for us)."""
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
            return
        await self._conversation(event, body, client)

    async def _conversation(self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        try:
            chat = slack_chat(body.get("team_id") or event["team"], event["channel"])
            user = slack_user(event["user"])
        except (KeyError, NotASlackId):
            return
        request = slack_request(event.get("text", ""), chat, user)
        if request is None:
            return
        reply, allowed = await self._run(request)
        ephemeral = is_ephemeral(request, reply, allowed) and request.command != "search"
        for message in reply_messages(reply):
            if ephemeral:
                await client.chat_postEphemeral(channel=event["channel"], user=event["user"], **message)
            else:
                await client.chat_postMessage(channel=event["channel"], unfurl_links=False, **message)

    async def on_button(self, ack: Callable[[], Awaitable[None]], body: dict[str, Any], action: dict[str, Any],
                        respond: Respond) -> None:
        """A pressed button: its value is the core's action (`sector finance`), run as Telegram's buttons are."""
        await ack()
        try:
            channel = (body.get("channel") or body.get("container") or {}).get("channel_id") or body["channel"]["id"]
            team = (body.get("team") or {}).get("id") or body["user"]["team_id"]
            chat = slack_chat(team, channel)
            user = slack_user(body["user"]["id"], body["user"].get("name", ""))
        except (KeyError, TypeError, NotASlackId) as exc:
            log.warning("ignored a button press without a usable channel or user: %s", exc)
            return
        request = slack_request(str(action.get("value", "")), chat, user, from_button=True)
        if request is None:
            return
        reply, allowed = await self._run(request)
        messages = reply_messages(reply)
        if not messages and reply.notice:
            messages = reply_messages(Reply(doc(reply.notice)))
        ephemeral = is_ephemeral(request, reply, allowed)
        for number, message in enumerate(messages):
            # A reply meant to replace the pressed message does so with its first part; the rest follow it.
            replace = reply.replace and number == 0 and len(messages) == 1
            await respond(response_type="ephemeral" if ephemeral else "in_channel", replace_original=replace,
                          **message)

    async def on_error(self, error: Exception, body: dict[str, Any], respond: Respond | None = None) -> None:
        """Log the failure and, where there is somewhere to answer, apologise to the asker only."""
        log.error("error while handling a Slack request", exc_info=error)
        if respond is not None and body.get("response_url"):
            try:
                await respond(response_type="ephemeral", text=SORRY)
            except (SlackApiError, OSError) as exc:
                log.warning("could not apologise on Slack: %s", exc)
