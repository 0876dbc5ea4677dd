"""Turns Slack's slash command, direct messages, mentions and button presses into core Requests, and Replies into
Block Kit messages (slack-bolt, async)."""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.commands import find_command
from bot.core.document import doc
from bot.core.i18n import ENGLISH, translator
from bot.core.membership import membership_changed
from bot.core.messages import SORRY, Chat, MembershipChange, Reply, Request, User, interpret
from bot.core.services import Services
from bot.handling import dispatch_counted
from bot.slack.identity import NotASlackId, slack_chat, slack_id, slack_user
from bot.slack.render import ACTION_PREFIX, SLASH_COMMAND, reply_messages

log = logging.getLogger(__name__)

# In a channel a slash command's answer is seen only by whoever typed it (Slack's own default), except a change
# to the channel's subscription by someone allowed to make it: the channel should know its digest changed.
CHANNEL_NEWS = frozenset({"subscribe", "unsubscribe", "quiet"})
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")

Respond = Callable[..., Awaitable[Any]]
# A Slack user's locale (users.info) is only asked for on a chat's first contact, and kept this long per user.
LOCALE_TTL = 3600.0


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

    def __init__(self, services: Services, client: AsyncWebClient | None = None) -> None:
        self.services = services
        self.client = client  # for users.info (a user's locale); None: every chat starts in English
        self._locales: dict[str, tuple[float, str | None]] = {}

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

    async def _run(self, kind: str, request: Request) -> tuple[Request, Reply, bool]:
        """The request in its chat's language, its reply, and whether the asker may manage this chat's subscription
        (asked only where it decides whether the channel sees the answer). Counted and timed for the metrics."""
        request = await self._in_language(request)
        reply = await dispatch_counted(kind, request, self.services)
        known = find_command(request.command)
        allowed = (request.chat.kind.is_group and known is not None and known.name in CHANNEL_NEWS
                   and await self.services.chat_admins.is_admin(request.chat, request.user))
        return request, reply, allowed

    async def _in_language(self, request: Request) -> Request:
        """The request with its chat's language (set from the Slack user's locale on the chat's first contact)."""
        address = request.chat.address
        locale = None
        if request.user is not None and await self._first_contact(request):
            locale = await self.user_locale(slack_id(request.user.id))
        return dataclasses.replace(request, language=await self.services.chat_language(address, locale))

    async def _first_contact(self, request: Request) -> bool:
        """Whether the chat has no language yet (so the asker's locale would decide it); a cached one means no."""
        store = self.services.subscriptions
        if self.client is None or store is None or self.services.language_cache.fresh(request.chat.address):
            return False
        try:
            return await store.get_chat_language(request.chat.address) is None
        except Exception:  # chat_language will log the store's failure and answer anyway
            return False

    async def user_locale(self, user_id: str) -> str | None:
        """A Slack user's locale (`zh-TW`, `en-US`) from users.info, cached; None when Slack does not say."""
        cached = self._locales.get(user_id)
        if cached is not None and time.monotonic() - cached[0] < LOCALE_TTL:
            return cached[1]
        if self.client is None:
            return None
        try:
            answer = await self.client.users_info(user=user_id, include_locale=True)
        except SlackApiError as exc:
            log.info("could not read the locale of Slack user %s: %s", user_id, exc.response.get("error"))
            return None
        locale = (answer.get("user") or {}).get("locale")
        found = locale if isinstance(locale, str) and locale else None
        self._locales[user_id] = (time.monotonic(), found)
        return found

    async def on_joined(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any],
                        client: AsyncWebClient) -> None:
        """The bot was added to a channel: a short hello (other members joining are not our business)."""
        if event.get("user") != context.get("bot_user_id"):
            return
        chat = self._event_chat(event, body)
        if chat is None:
            return
        self.services.metrics.update_handled("slack_event", "member_joined_channel")
        inviter = event.get("inviter")  # the hello (and the channel's language) follow whoever added the bot
        locale = await self.user_locale(inviter) if isinstance(inviter, str) and inviter else None
        reply = await membership_changed(MembershipChange(chat, present=True, was_present=False), self.services,
                                         locale)
        for message in reply_messages(reply):
            await client.chat_postMessage(channel=event["channel"], unfurl_links=False, **message)

    async def on_gone(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """The bot left or was removed from a channel, or the channel was archived or deleted: its digest ends now
        rather than at its next send."""
        chat = self._event_chat(event, body)
        self.services.metrics.update_handled("slack_event", str(event.get("type") or ""))
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
        request, reply, allowed = await self._run("slack_command", request)
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
        request, reply, allowed = await self._run("slack_event", request)
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
        request, reply, allowed = await self._run("slack_action", request)
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
            # Only the cached language: asking the store might fail again the way that just failed.
            chat = self._event_chat(body.get("event") or {}, body) if body.get("event") else None
            channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
            team = body.get("team_id") or (body.get("team") or {}).get("id")
            if chat is None and channel and team:
                try:
                    chat = slack_chat(str(team), str(channel))
                except NotASlackId:
                    chat = None
            cached = self.services.language_cache.fresh(chat.address) if chat is not None else None
            try:
                await respond(response_type="ephemeral", text=translator(cached or ENGLISH).gettext(SORRY))
            except (SlackApiError, OSError) as exc:
                log.warning("could not apologise on Slack: %s", exc)
