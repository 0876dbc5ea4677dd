"""Who may manage a Slack channel's subscription: workspace owners and admins, the channel's creator, and
SLACK_ADMIN_IDS (users.info and conversations.info, cached briefly)."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.messages import Chat, User
from bot.core.ports import MonotonicClock
from bot.slack.identity import channel_of, slack_id

log = logging.getLogger(__name__)


class SlackChatAdmins:
    """The core's ChatAdmins port for Slack; answers are cached for `ttl` seconds per user and per channel."""

    def __init__(self, client: AsyncWebClient, bot_admins: frozenset[int], ttl: float = 300.0,
                 monotonic: MonotonicClock = time.monotonic) -> None:
        self.client = client
        self.bot_admins = bot_admins
        self.ttl = ttl
        self.monotonic = monotonic
        self._users: dict[str, tuple[float, bool]] = {}
        self._creators: dict[str, tuple[float, str]] = {}

    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        """A direct message: yes. A channel: a bot admin, a workspace owner or admin, or the channel's creator."""
        if not chat.kind.is_group:
            return True
        if user is None:
            return False
        if user.id in self.bot_admins:
            return True
        user_id = slack_id(user.id)
        if await self._workspace_admin(user_id):
            return True
        return await self._creator(channel_of(chat.address)) == user_id

    async def _workspace_admin(self, user_id: str) -> bool:
        cached = self._users.get(user_id)
        if cached is not None and self.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            answer = await self.client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("could not look up Slack user %s: %s", user_id, exc.response.get("error"))
            return False  # refusing is safe; the user may try again
        profile = answer.get("user") or {}
        admin = bool(profile.get("is_admin") or profile.get("is_owner") or profile.get("is_primary_owner"))
        self._users[user_id] = (self.monotonic(), admin)
        return admin

    async def _creator(self, channel_id: str) -> str:
        cached = self._creators.get(channel_id)
        if cached is not None and self.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            answer = await self.client.conversations_info(channel=channel_id)
        except SlackApiError as exc:
            log.warning("could not look up Slack channel %s: %s", channel_id, exc.response.get("error"))
            return ""
        creator = str((answer.get("channel") or {}).get("creator") or "")
        self._creators[channel_id] = (self.monotonic(), creator)
        return creator
