"""Telegram and Slack in one process: one delivery engine, each chat's message through its own platform."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import time
from pathlib import Path

import pytest
from doubles.fake_bot_api import FakeBotApi
from doubles.slack_api import SlackApiDouble, message_text
from harness import FakeClock, e2e_settings, sent_message_ids, texts
from slack_harness import SIGNING_SECRET, SlackClient, free_port

from bot.app import attach_slack, opened, telegram_running
from bot.core.messages import ChatKind
from bot.core.schedule import Cadence, Schedule
from bot.core.subscriptions import SubscriptionRequest
from bot.settings import Secret
from bot.slack.connect import close_client
from bot.slack.identity import slack_chat

ADMIN, TG_CHAT, CHANNEL = 900, 21, "C0456"


@pytest.fixture
async def slack_api() -> AsyncIterator[SlackApiDouble]:
    async with SlackApiDouble() as api:
        api.add_user("U0OWNER", owner=True)
        api.add_channel(CHANNEL, creator="U0OWNER")
        yield api
        assert api.violations == []


async def test_a_broadcast_reaches_telegram_and_slack_subscribers_alike(fake: FakeBotApi, slack_api: SlackApiDouble,
                                                                         tmp_path: Path) -> None:
    settings = e2e_settings(fake, tmp_path, slack_bot_token=Secret(slack_api.token), slack_api_url=slack_api.base_url,
                            slack_messages_per_second=1000.0)
    clock = FakeClock()
    async with contextlib.AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(opened(settings, clock))
        stack.push_async_callback(close_client, attach_slack(runtime).client)
        await stack.enter_async_context(telegram_running(runtime, clock))
        await fake.wait_for("setMyCommands")
        fake.push_update(fake.command_update("/subscribe", chat_id=TG_CHAT, user_id=TG_CHAT))
        await fake.wait_for("sendMessage", chat_id=TG_CHAT)
        channel = slack_chat("T0123", CHANNEL)
        await runtime.store.save_subscription(SubscriptionRequest(
            channel.address, None, ChatKind.GROUP, Schedule(Cadence.DAILY, time(9), "Asia/Hong_Kong")), clock())

        fake.push_update(fake.command_update("/broadcast Meetup at <Cyberport> & online", chat_id=ADMIN,
                                             user_id=ADMIN))
        [draft] = await fake.wait_for("sendMessage", chat_id=ADMIN)
        send = next(b["callback_data"] for row in draft["reply_markup"]["inline_keyboard"] for b in row
                    if b["callback_data"].startswith("broadcast send"))
        fake.push_update(fake.callback_update(send, chat_id=ADMIN, user_id=ADMIN,
                                              message_id=sent_message_ids(fake, ADMIN)[-1]))
        await fake.wait_for("sendMessage", count=2, chat_id=TG_CHAT)
        await slack_api.wait_for(lambda: slack_api.posted.get(CHANNEL))
    assert texts(fake, TG_CHAT)[-1] == "Meetup at &lt;Cyberport&gt; &amp; online"
    assert slack_api.texts(CHANNEL) == ["Meetup at &lt;Cyberport&gt; &amp; online"]
    # Neither platform was asked to send to the other's chat.
    assert {int(r.params["chat_id"]) for r in fake.requests if r.method == "sendMessage"} == {TG_CHAT, ADMIN}
    assert set(slack_api.posted) == {CHANNEL}


async def test_slack_events_are_served_beside_the_telegram_webhook_on_one_port(
        fake: FakeBotApi, slack_api: SlackApiDouble, tmp_path: Path) -> None:
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url="https://bot.example.test/telegram", port=port,
                            webhook_listen="127.0.0.1", slack_bot_token=Secret(slack_api.token),
                            slack_signing_secret=Secret(SIGNING_SECRET), slack_api_url=slack_api.base_url)
    assert settings.webhook_mode and settings.slack_http_mode
    clock = FakeClock()
    async with contextlib.AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(opened(settings, clock))
        stack.push_async_callback(close_client, attach_slack(runtime).client)
        await stack.enter_async_context(telegram_running(runtime, clock))
        slack = SlackClient(f"http://127.0.0.1:{port}/slack/events")
        status, _ = await slack.command(slack_api, "sector finance", channel="D0789", user="U0OWNER")
        assert status == 200
        await slack_api.wait_for(lambda: slack_api.responses)
    assert "AI in finance" in message_text(slack_api.responses[0])
    assert fake.calls("setWebhook")  # Telegram's webhook registered on the same server
