"""The Slack front end end to end: signed slash commands, events and button presses reach the real bolt app over
HTTP; its answers and digests reach the Slack Web API double, which checks them against Slack's spec."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from doubles.slack_api import SlackApiDouble, message_text
from harness import FakeClock
from slack_harness import running_slack_bot, slack_settings
from test_metrics import samples, value
from test_webhook import exchange, status_of

from bot.core.addresses import ChatAddress
from bot.settings import Secret


async def eventually(read: Callable[[], Awaitable[object]], expected: object, within: float = 30.0) -> None:
    """Wait until `await read()` gives `expected` (the delivery loop runs in the background)."""
    deadline = asyncio.get_running_loop().time() + within
    while (value := await read()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {value!r}, expected {expected!r}"
        await asyncio.sleep(0.05)


def address_of(channel: str) -> ChatAddress:
    """A channel of the double's workspace as the store names it."""
    return ChatAddress.parse(f"slack:T0123/{channel}")


OWNER, MEMBER, CREATOR, BOT_ADMIN = "U0OWNER", "U0MEMBER", "U0CREATOR", "U0BOTADM"
CHANNEL, DM = "C0456", "D0789"


@pytest.fixture
async def slack_api() -> AsyncIterator[SlackApiDouble]:
    async with SlackApiDouble() as api:
        api.add_user(OWNER, owner=True)
        api.add_user(MEMBER)
        api.add_user(CREATOR)
        api.add_user(BOT_ADMIN)
        api.add_channel(CHANNEL, creator=CREATOR, name="hk-ai")
        api.add_channel(DM, creator=MEMBER, im=True)
        yield api
        assert api.violations == []


async def test_slash_command_sector_finance_answers_in_block_kit(slack_api: SlackApiDouble, tmp_path: Path) -> None:
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (_, slack):
        status, _ = await slack.command(slack_api, "sector finance", channel=CHANNEL, user=MEMBER)
        assert status == 200
        await slack_api.wait_for(lambda: slack_api.responses)
    [answer] = slack_api.responses
    assert answer["response_type"] == "ephemeral"  # in a channel, only the asker sees a lookup
    text = message_text(answer)
    assert text.startswith("*AI in finance*")
    actions = [block for block in answer["blocks"] if block["type"] == "actions"]
    assert any(element["value"] == "sectors" for block in actions for element in block["elements"])


async def test_a_pressed_button_runs_its_action_like_telegrams(slack_api: SlackApiDouble, tmp_path: Path) -> None:
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (_, slack):
        status, _ = await slack.press(slack_api, "sector finance", channel=DM, user=MEMBER)
        assert status == 200
        await slack_api.wait_for(lambda: slack_api.responses)
    [answer] = slack_api.responses
    assert "AI in finance" in message_text(answer)


async def test_unsigned_or_badly_signed_requests_are_refused(slack_api: SlackApiDouble, tmp_path: Path) -> None:
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (_, slack):
        status, _ = await slack.post("command=/hkai&text=help", "application/x-www-form-urlencoded", signed=False)
        assert status == 401
        slack.secret = "not-the-secret"
        status, _ = await slack.command(slack_api, "help", channel=CHANNEL, user=MEMBER)
        assert status == 401
    assert slack_api.responses == []


async def test_help_in_a_channel_is_ephemeral_and_a_dm_is_answered_in_the_dm(slack_api: SlackApiDouble,
                                                                                tmp_path: Path) -> None:
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (_, slack):
        await slack.command(slack_api, "", channel=CHANNEL, user=MEMBER)
        await slack_api.wait_for(lambda: slack_api.responses)
        assert slack_api.responses[0]["response_type"] == "ephemeral"
        assert "/hkai subscribe" in message_text(slack_api.responses[0])  # commands as typed in Slack
        status, _ = await slack.event({"type": "message", "channel_type": "im", "channel": DM, "user": MEMBER,
                                       "text": "sector finance", "ts": "1700000000.1"})
        assert status == 200
        await slack_api.wait_for(lambda: slack_api.posted.get(DM))
    assert "AI in finance" in slack_api.texts(DM)[0]


async def test_an_app_mention_searches_and_answers_in_the_channel(slack_api: SlackApiDouble, tmp_path: Path) -> None:
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (_, slack):
        await slack.event({"type": "app_mention", "channel": CHANNEL, "user": MEMBER, "text": "<@U0BOT> finance",
                           "ts": "1700000000.2"})
        await slack_api.wait_for(lambda: slack_api.posted.get(CHANNEL))
    assert "Results for “finance”" in slack_api.texts(CHANNEL)[0]


async def test_in_a_channel_a_member_may_not_subscribe_but_owner_creator_and_bot_admins_may(
        slack_api: SlackApiDouble, tmp_path: Path) -> None:
    settings = slack_settings(slack_api, tmp_path, slack_admin_ids=frozenset({BOT_ADMIN}))
    async with running_slack_bot(slack_api, settings) as (runtime, slack):
        await slack.command(slack_api, "subscribe", channel=CHANNEL, user=MEMBER)
        await slack_api.wait_for(lambda: len(slack_api.responses) == 1)
        assert "Only this group's administrators" in message_text(slack_api.responses[0])
        assert slack_api.responses[0]["response_type"] == "ephemeral"
        assert await runtime.store.count_active() == 0
        for number, user in enumerate((OWNER, CREATOR, BOT_ADMIN), 2):
            await slack.command(slack_api, "subscribe weekly mon 08:30", channel=CHANNEL, user=user)
            await slack_api.wait_for(lambda n=number: len(slack_api.responses) == n)  # type: ignore[misc]
            assert "Subscribed" in message_text(slack_api.responses[-1]) or "Updated" in message_text(
                slack_api.responses[-1]) or "already" in message_text(slack_api.responses[-1]).lower()
            assert slack_api.responses[-1]["response_type"] == "in_channel"
        assert await runtime.store.count_active() == 1
    # Each answer was cached briefly: one users.info per user, one conversations.info for the channel.
    lookups = [call.method for call in slack_api.calls if call.method == "conversations.info"]
    assert len(lookups) == 1


async def test_a_digest_arrives_in_the_channel_at_the_chosen_time_and_an_archived_channel_is_deactivated(
        slack_api: SlackApiDouble, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 4, 16, 0, 0, tzinfo=UTC))  # 08:00 in Hong Kong, Wednesday 16 Apr 2025
    settings = slack_settings(slack_api, tmp_path, digest_lookback_days=5)
    async with running_slack_bot(slack_api, settings, clock) as (runtime, slack):
        await slack.command(slack_api, "subscribe daily 09:00", channel=CHANNEL, user=OWNER)
        await slack_api.wait_for(lambda: slack_api.responses)
        assert "Subscribed" in message_text(slack_api.responses[0])
        assert not slack_api.posted.get(CHANNEL)  # not due yet
        clock.advance(hours=1)  # 09:00 HKT
        await slack_api.wait_for(lambda: slack_api.posted.get(CHANNEL))
        [digest] = slack_api.texts(CHANNEL)
        assert "digest · Wed 16 Apr 2025" in digest and "Digital Policy Office issues Generative AI" in digest

        slack_api.channels[CHANNEL].is_archived = True
        clock.advance(days=1)  # the next digest finds the channel archived: deactivated, not retried
        await eventually(lambda: runtime.store.count_active(), 0)
        assert any(call.method == "chat.postMessage" for call in slack_api.calls[-3:])
    assert len(slack_api.texts(CHANNEL)) == 1


async def test_a_revoked_token_deactivates_every_channel_of_the_workspace_and_asks_slack_once(
        slack_api: SlackApiDouble, tmp_path: Path) -> None:
    other = slack_api.add_channel("C0999", creator=CREATOR, name="hk-ai-2").id
    clock = FakeClock(datetime(2025, 4, 16, 0, 0, tzinfo=UTC))
    settings = slack_settings(slack_api, tmp_path, max_in_flight=1)  # one send at a time: the first answer counts
    async with running_slack_bot(slack_api, settings, clock) as (runtime, slack):
        await slack.command(slack_api, "subscribe daily 09:00", channel=CHANNEL, user=OWNER)
        await slack.command(slack_api, "subscribe daily 09:00", channel=other, user=CREATOR, response="r2")
        await slack_api.wait_for(lambda: len(slack_api.responses) == 2)
        assert await runtime.store.count_active() == 2
        slack_api.revoked = True  # the app was uninstalled: token_revoked from now on
        clock.advance(hours=1)
        await eventually(lambda: runtime.store.count_active(), 0)
    posts = [call for call in slack_api.calls if call.method == "chat.postMessage"]
    assert len(posts) == 1  # the second channel was deactivated without asking Slack with the refused token


async def test_the_bot_added_to_a_channel_says_hello_and_an_archived_channel_ends_its_digest_at_once(
        slack_api: SlackApiDouble, tmp_path: Path) -> None:
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (runtime, slack):
        await slack.event({"type": "member_joined_channel", "user": MEMBER, "channel": CHANNEL, "team": "T0123"})
        await slack.event({"type": "member_joined_channel", "user": "U0BOT", "channel": CHANNEL, "team": "T0123"})
        await slack_api.wait_for(lambda: slack_api.posted.get(CHANNEL))
        [hello] = slack_api.texts(CHANNEL)  # one hello: for the bot joining, not for a member
        assert "Hello!" in hello and "/hkai subscribe" in hello
        await slack.command(slack_api, "subscribe", channel=CHANNEL, user=OWNER)
        await slack_api.wait_for(lambda: slack_api.responses)
        assert await runtime.store.count_active() == 1
        await slack.event({"type": "channel_archive", "channel": CHANNEL, "user": OWNER})
        await eventually(lambda: runtime.store.count_active(), 0)


async def test_socket_mode_takes_a_slash_command_and_acknowledges_it(slack_api: SlackApiDouble,
                                                                    tmp_path: Path) -> None:
    settings = slack_settings(slack_api, tmp_path, slack_app_token=Secret(slack_api.app_token),
                              slack_signing_secret=Secret(""), webhook_url="")
    assert settings.slack_socket_mode
    async with running_slack_bot(slack_api, settings):
        envelope = await slack_api.push("slash_commands", {
            "team_id": "T0123", "channel_id": DM, "channel_name": "directmessage", "user_id": MEMBER,
            "user_name": "member", "command": "/hkai", "text": "sector finance", "api_app_id": "A0APP",
            "response_url": slack_api.response_url("socket"), "trigger_id": "1.2.3"})
        await slack_api.wait_for(lambda: slack_api.responses and slack_api.socket_acks)
    assert [ack["envelope_id"] for ack in slack_api.socket_acks] == [envelope]
    assert "AI in finance" in message_text(slack_api.responses[0])


async def test_a_huge_or_stale_slack_request_is_refused_and_nothing_runs(slack_api: SlackApiDouble,
                                                                          tmp_path: Path) -> None:
    settings = slack_settings(slack_api, tmp_path)
    signed = "X-Slack-Signature: v0=abc\nX-Slack-Request-Timestamp: 1\n"
    huge = "POST /slack/events HTTP/1.1\nHost: bot\nContent-Type: application/json\nContent-Length: 95000000\n"
    async with running_slack_bot(slack_api, settings) as (_, slack):
        unsigned = await exchange(settings.port, huge + "\n")
        too_big = await exchange(settings.port, huge + signed + "\n")
        chunked = await exchange(settings.port, "POST /slack/events HTTP/1.1\nHost: bot\nTransfer-Encoding: chunked\n"
                                 + signed + "\n", f"{95_000_000:x}\r\n".encode() + b" " * (1024 * 1024 + 100))
        stale, _ = await slack.command(slack_api, "sector finance", channel=CHANNEL, user=MEMBER,
                                       timestamp=int(time.time()) - 3600)  # a replayed request: an hour old
    assert status_of(unsigned) == 401 and status_of(too_big) == 413 and status_of(chunked) == 413
    assert stale == 401
    assert slack_api.responses == [] and not slack_api.posted


async def test_a_chat_s_language_follows_its_first_slack_user_s_locale_and_stays(slack_api: SlackApiDouble,
                                                                                tmp_path: Path) -> None:
    slack_api.add_user("U0HKUSER", locale="zh-HK")
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (runtime, slack):
        await slack.event({"type": "message", "channel_type": "im", "channel": DM, "user": "U0HKUSER",
                           "text": "sectors", "ts": "1700000000.1"})
        await slack_api.wait_for(lambda: slack_api.posted.get(DM))
        assert "範疇" in slack_api.texts(DM)[0]
        assert await runtime.store.get_chat_language(address_of(DM)) == "zh-Hant"
        # Someone reading English writes later: the chat keeps its language (and Slack is not asked again).
        asked = sum(call.method == "users.info" for call in slack_api.calls)
        await slack.command(slack_api, "sectors", channel=DM, user=MEMBER)
        await slack_api.wait_for(lambda: slack_api.responses)
        assert "範疇" in message_text(slack_api.responses[0])
        assert sum(call.method == "users.info" for call in slack_api.calls) == asked
        # A channel first reached by an English reader starts in English.
        await slack.command(slack_api, "sectors", channel=CHANNEL, user=MEMBER, response="r2")
        await slack_api.wait_for(lambda: len(slack_api.responses) == 2)
        assert "Sectors" in message_text(slack_api.responses[1])
        assert await runtime.store.get_chat_language(address_of(CHANNEL)) == "en"


async def test_a_channel_s_digest_follows_the_channel_s_language(slack_api: SlackApiDouble, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 4, 16, 0, 0, tzinfo=UTC))  # 08:00 in Hong Kong
    settings = slack_settings(slack_api, tmp_path, digest_lookback_days=5)
    async with running_slack_bot(slack_api, settings, clock) as (runtime, slack):
        await runtime.store.set_chat_language(address_of(CHANNEL), "zh-Hant")
        await slack.command(slack_api, "subscribe daily 09:00", channel=CHANNEL, user=OWNER)
        await slack_api.wait_for(lambda: slack_api.responses)
        clock.advance(hours=1)
        await slack_api.wait_for(lambda: slack_api.posted.get(CHANNEL))
        [digest] = slack_api.texts(CHANNEL)
    assert "2025年4月16日" in digest and "Wed 16 Apr" not in digest


async def test_slack_commands_events_and_buttons_are_counted_in_the_metrics(slack_api: SlackApiDouble,
                                                                           tmp_path: Path) -> None:
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (runtime, slack):
        await slack.command(slack_api, "sector finance", channel=CHANNEL, user=MEMBER)
        await slack.press(slack_api, "sectors", channel=DM, user=MEMBER)
        await slack.event({"type": "message", "channel_type": "im", "channel": DM, "user": MEMBER,
                           "text": "help", "ts": "1700000000.1"})
        await slack_api.wait_for(lambda: len(slack_api.responses) == 2 and slack_api.posted.get(DM))
        assert runtime.metrics is not None
        found = samples(runtime.metrics.exposition().decode())
    updates = "hkaipulse_updates_handled_total"
    assert value(found, updates, kind="slack_command", command="sector") == 1
    assert value(found, updates, kind="slack_action", command="sectors") == 1
    assert value(found, updates, kind="slack_event", command="help") == 1


async def test_hkai_language_changes_a_dm_s_language(slack_api: SlackApiDouble, tmp_path: Path) -> None:
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (runtime, slack):
        await slack.command(slack_api, "language zh", channel=DM, user=MEMBER)
        await slack_api.wait_for(lambda: slack_api.responses)
        assert "繁體中文" in message_text(slack_api.responses[0])
        await slack.command(slack_api, "sectors", channel=DM, user=MEMBER, response="r2")
        await slack_api.wait_for(lambda: len(slack_api.responses) == 2)
        assert "範疇" in message_text(slack_api.responses[1])
        assert await runtime.store.get_chat_language(address_of(DM)) == "zh-Hant"


async def test_the_hello_and_the_channel_s_language_follow_whoever_added_the_bot(slack_api: SlackApiDouble,
                                                                                tmp_path: Path) -> None:
    slack_api.add_user("U0HKUSER", locale="zh-HK")
    async with running_slack_bot(slack_api, slack_settings(slack_api, tmp_path)) as (runtime, slack):
        await slack.event({"type": "member_joined_channel", "user": "U0BOT", "inviter": "U0HKUSER",
                           "channel": CHANNEL, "team": "T0123"})
        await slack_api.wait_for(lambda: slack_api.posted.get(CHANNEL))
        assert "你好！" in slack_api.texts(CHANNEL)[0]
        assert await runtime.store.get_chat_language(address_of(CHANNEL)) == "zh-Hant"
