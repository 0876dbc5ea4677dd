"""End-to-end harness for Slack: the real bot (bolt AsyncApp over HTTP mode, store, scheduler) against the local
Slack Web API double, with slash commands, events and button presses posted as Slack signs them."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from doubles.slack_api import SlackApiDouble
from harness import CONTENT, FakeClock
from slack_sdk.signature import SignatureVerifier

from bot.app import Runtime, opened, slack_running
from bot.settings import Secret, Settings

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0123"


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def slack_settings(api: SlackApiDouble, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a Slack-only bot in HTTP mode, talking to the double, with a real SQLite file and fast ticks."""
    base = Settings(slack_bot_token=Secret(api.token), slack_signing_secret=Secret(SIGNING_SECRET),
                    slack_api_url=api.base_url, webhook_url="https://bot.example.test/telegram",
                    webhook_listen="127.0.0.1", port=free_port(), content_dir=CONTENT,
                    database_url=f"sqlite:///{tmp_path}/bot.sqlite3", tick_seconds=0.05,
                    messages_per_second=1000.0, slack_messages_per_second=1000.0, private_chat_interval=0.0,
                    group_messages_per_minute=0,
                    lease_seconds=5.0, watch_sources=False, watch_content=False)
    return replace(base, **overrides)


@dataclass
class SlackClient:
    """Posts to the bot's /slack/events as Slack does: signed with the signing secret."""

    url: str
    secret: str = SIGNING_SECRET

    async def post(self, body: str, content_type: str, *, signed: bool = True,
                   timestamp: int | None = None) -> tuple[int, str]:
        """POST a body; the answer's status and text."""
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        headers = {"Content-Type": content_type}
        if signed:
            headers["X-Slack-Request-Timestamp"] = stamp
            headers["X-Slack-Signature"] = SignatureVerifier(self.secret).generate_signature(timestamp=stamp,
                                                                                              body=body)
        async with aiohttp.ClientSession() as session, session.post(self.url, data=body.encode(),
                                                                    headers=headers) as answer:
            return answer.status, await answer.text()

    async def command(self, api: SlackApiDouble, text: str, *, channel: str, user: str,
                      response: str = "r", timestamp: int | None = None) -> tuple[int, str]:
        """`/hkai <text>` typed by `user` in `channel`."""
        form = {"token": "legacy", "team_id": TEAM, "team_domain": "hk-ai", "channel_id": channel,
                "channel_name": channel.lower(), "user_id": user, "user_name": user.lower(), "command": "/hkai",
                "text": text, "api_app_id": "A0APP", "response_url": api.response_url(response),
                "trigger_id": "1.2.3"}
        return await self.post(urlencode(form), "application/x-www-form-urlencoded", timestamp=timestamp)

    async def press(self, api: SlackApiDouble, value: str, *, channel: str, user: str,
                    action_id: str = "hkai:1") -> tuple[int, str]:
        """A button (action_id, value) pressed by `user` on a message in `channel` (a block_actions payload)."""
        payload = {"type": "block_actions", "team": {"id": TEAM, "domain": "hk-ai"},
                   "user": {"id": user, "name": user.lower(), "team_id": TEAM}, "api_app_id": "A0APP",
                   "token": "legacy", "container": {"type": "message", "message_ts": "1700000000.000001",
                                                    "channel_id": channel, "is_ephemeral": False},
                   "trigger_id": "1.2.3", "channel": {"id": channel, "name": channel.lower()},
                   "message": {"type": "message", "ts": "1700000000.000001", "text": "", "blocks": []},
                   "response_url": api.response_url("button"),
                   "actions": [{"action_id": action_id, "block_id": "b1", "type": "button", "value": value,
                                "text": {"type": "plain_text", "text": value}, "action_ts": "1700000001.0"}]}
        return await self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    async def event(self, event: dict[str, Any]) -> tuple[int, str]:
        """An Events API callback carrying `event`."""
        envelope = {"token": "legacy", "team_id": TEAM, "api_app_id": "A0APP", "event": event,
                    "type": "event_callback", "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time()),
                    "authorizations": [{"team_id": TEAM, "user_id": "U0BOT", "is_bot": True}]}
        return await self.post(json.dumps(envelope), "application/json")


@contextlib.asynccontextmanager
async def running_slack_bot(api: SlackApiDouble, settings: Settings, clock: FakeClock | None = None
                            ) -> AsyncIterator[tuple[Runtime, SlackClient]]:
    """Start the whole Slack-only bot against the double; stop it gracefully afterwards."""
    clock = clock or FakeClock()
    async with opened(settings, clock) as runtime, slack_running(runtime, clock):
        yield runtime, SlackClient(f"http://127.0.0.1:{settings.port}/slack/events")
