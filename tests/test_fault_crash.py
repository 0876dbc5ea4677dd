"""Fault tests: the real bot process, killed mid-broadcast and restarted, against a double that misbehaves."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest
from doubles.fake_bot_api import FakeBotApi
from harness import CONTENT, ROOT

from bot.core.addresses import telegram
from bot.core.messages import ChatKind
from bot.core.schedule import Cadence, Schedule
from bot.core.subscriptions import SubscriptionRequest
from bot.store import open_store

CHATS = 1000
MAX_IN_FLIGHT = 16
BLOCKED = range(1, 11)  # 403: the user blocked the bot
FLOODED = range(11, 16)  # 429 once, retry_after 1
BROKEN = range(16, 21)  # 500 twice
SLOW = range(21, 26)  # answers after 0.4 s
GROUP, SUPERGROUP = -5001, -1005001  # the group becomes a supergroup

pytestmark = pytest.mark.slow


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(latency=0.005) as server:
        yield server


async def subscribe_everyone(database_url: str) -> None:
    """1,000 private chats and one group, each with a daily digest already due."""
    store = await open_store(database_url)
    try:
        yesterday = datetime.now(UTC) - timedelta(days=1)
        schedule = Schedule(Cadence.DAILY, clock_time(9, 0), "Asia/Hong_Kong")
        for chat_id in [*range(1, CHATS + 1), GROUP]:
            kind = ChatKind.GROUP if chat_id < 0 else ChatKind.PRIVATE
            await store.save_subscription(SubscriptionRequest(telegram(chat_id), None, kind, schedule), yesterday)
    finally:
        await store.close()


def bot_environment(fake: FakeBotApi, tmp_path: Path, database_url: str) -> dict[str, str]:
    return {**os.environ, "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_URL": fake.api_url,
            "DATABASE_URL": database_url, "CONTENT_DIR": str(CONTENT), "CONTENT_HISTORY_DIR": str(tmp_path / "h"),
            "WATCH_CONTENT": "false",
            "WATCH_SOURCES": "false", "DIGEST_TICK_SECONDS": "0.2", "SEND_MESSAGES_PER_SECOND": "150",
            "SEND_PRIVATE_CHAT_INTERVAL": "0", "SEND_GROUP_MESSAGES_PER_MINUTE": "0",
            "SEND_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT), "SEND_LEASE_SECONDS": "30", "LOG_LEVEL": "INFO"}


async def start_bot(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=ROOT, env=env,
                                                    stdin=asyncio.subprocess.DEVNULL, stdout=handle, stderr=handle)


async def wait_until(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def digests_per_chat(fake: FakeBotApi) -> Counter[int]:
    return Counter(int(message["chat_id"]) for message in fake.sent_messages() if "digest" in message["text"])


async def test_killed_mid_broadcast_then_restarted_every_chat_gets_its_digest(fake: FakeBotApi,
                                                                              tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/bot.sqlite3"
    await subscribe_everyone(database_url)
    for chat in BLOCKED:
        fake.add_fault(chat_id=chat, error_code=403, description="Forbidden: bot was blocked by the user")
    for chat in FLOODED:
        fake.add_fault(chat_id=chat, error_code=429, description="Too Many Requests: retry after 1",
                       parameters={"retry_after": 1}, times=1)
    for chat in BROKEN:
        fake.add_fault(chat_id=chat, error_code=500, description="Internal Server Error", times=2)
    for chat in SLOW:
        fake.add_delay(method="sendMessage", chat_id=chat, delay=0.4)
    fake.register_chat(GROUP, "group", title="Old group")
    fake.add_fault(chat_id=GROUP, error_code=400, parameters={"migrate_to_chat_id": SUPERGROUP},
                   description="Bad Request: group chat was upgraded to a supergroup chat")
    env = bot_environment(fake, tmp_path, database_url)
    log = tmp_path / "bot.log"

    first = await start_bot(env, log)
    try:
        await wait_until(lambda: len(fake.sent_messages()) >= 300, 60, "300 digests before the kill")
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
    at_kill = len(fake.sent_messages())
    assert at_kill < CHATS, "the kill must land in the middle of the broadcast"

    second = await start_bot(env, log)
    try:
        expected = set(range(1, CHATS + 1)) - set(BLOCKED)
        await wait_until(lambda: expected <= set(digests_per_chat(fake)) and SUPERGROUP in digests_per_chat(fake),
                         120, "every chat's digest after the restart")
        await asyncio.sleep(1.0)  # let anything still owed (or wrongly repeated) arrive
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0, log.read_text()[-3000:]
    finally:
        if second.returncode is None:
            second.kill()

    counts = digests_per_chat(fake)
    duplicates = {chat: n for chat, n in counts.items() if n > 1}
    # Telegram cannot be asked whether a message arrived: only sends in flight at the kill may repeat.
    assert len(duplicates) <= MAX_IN_FLIGHT, duplicates
    assert all(n == 2 for n in duplicates.values()), duplicates
    assert not set(counts) & set(BLOCKED)

    store = await open_store(database_url)
    try:
        for chat in BLOCKED:
            subscription = await store.get_subscription(telegram(chat), None)
            assert subscription is not None and not subscription.active
        moved = await store.get_subscription(telegram(SUPERGROUP), None)
        assert moved is not None and moved.active and await store.get_subscription(telegram(GROUP), None) is None
        stats = await store.delivery_stats()
        # every repeat was logged as possible, and only sends that had started are flagged
        assert len(duplicates) <= stats.possible_duplicates <= MAX_IN_FLIGHT
        assert stats.pending == 0 and stats.sending == 0
        assert stats.sent == CHATS + 1 - len(BLOCKED)
        assert await store.count_active() == CHATS + 1 - len(BLOCKED)
    finally:
        await store.close()
    print(f"\nkill after {at_kill} sends; {len(duplicates)} chat(s) got a repeat (bound {MAX_IN_FLIGHT}); "
          f"possible duplicates flagged: {stats.possible_duplicates}")


SLACK_CHANNELS = 500
ARCHIVED = range(1, 6)  # is_archived: deactivated
SLACK_FLOODED = range(6, 11)  # ratelimited once
SLACK_BROKEN = range(11, 16)  # HTTP 500 twice


def channel_name(number: int) -> str:
    """The Slack id of test channel `number`: C0000001 ..."""
    return f"C{number:07d}"


async def test_killed_mid_broadcast_with_telegram_and_slack_subscribers_every_chat_gets_its_digest(
        fake: FakeBotApi, tmp_path: Path) -> None:
    from doubles.slack_api import HTTP_500, SlackApiDouble

    from bot.slack.identity import slack_chat

    database_url = f"sqlite:///{tmp_path}/bot.sqlite3"
    telegram_chats = range(1, CHATS // 2 + 1)
    store = await open_store(database_url)
    try:
        yesterday = datetime.now(UTC) - timedelta(days=1)
        schedule = Schedule(Cadence.DAILY, clock_time(9, 0), "Asia/Hong_Kong")
        for chat_id in telegram_chats:
            await store.save_subscription(SubscriptionRequest(telegram(chat_id), None, ChatKind.PRIVATE, schedule),
                                          yesterday)
        for number in range(1, SLACK_CHANNELS + 1):
            chat = slack_chat("T0123", channel_name(number))
            await store.save_subscription(SubscriptionRequest(chat.address, None, chat.kind, schedule), yesterday)
    finally:
        await store.close()
    for chat in BLOCKED:
        fake.add_fault(chat_id=chat, error_code=403, description="Forbidden: bot was blocked by the user")
    async with SlackApiDouble() as slack:
        slack.add_user("U0OWNER", owner=True)
        for number in range(1, SLACK_CHANNELS + 1):
            slack.add_channel(channel_name(number), creator="U0OWNER")
        for number in ARCHIVED:
            slack.channels[channel_name(number)].is_archived = True
        for number in SLACK_FLOODED:
            slack.fail("chat.postMessage", "ratelimited", channel=channel_name(number), retry_after=1)
        for number in SLACK_BROKEN:
            slack.fail("chat.postMessage", HTTP_500, channel=channel_name(number), times=2)
        env = {**bot_environment(fake, tmp_path, database_url), "SLACK_BOT_TOKEN": slack.token,
               "SLACK_SIGNING_SECRET": "crash-test-secret", "SLACK_API_URL": slack.base_url,
               "SLACK_MESSAGES_PER_SECOND": "150",
               "WEBHOOK_URL": "https://bot.example.test/telegram", "WEBHOOK_LISTEN": "127.0.0.1",
               "PORT": str(_free_port())}
        log = tmp_path / "bot.log"

        def slack_digests() -> Counter[str]:
            return Counter(channel for channel, messages in slack.posted.items() for message in messages
                           if "digest" in str(message.get("text", "")))

        def delivered() -> int:
            return len(fake.sent_messages()) + sum(slack_digests().values())

        first = await start_bot(env, log)
        try:
            await wait_until(lambda: delivered() >= 300, 60, "300 digests before the kill")
            first.send_signal(signal.SIGKILL)
            await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
        at_kill = delivered()
        assert at_kill < len(telegram_chats) + SLACK_CHANNELS, "the kill must land in the middle of the broadcast"

        second = await start_bot(env, log)
        try:
            expected_telegram = set(telegram_chats) - set(BLOCKED)
            expected_slack = {channel_name(n) for n in range(1, SLACK_CHANNELS + 1)} - {
                channel_name(n) for n in ARCHIVED}
            await wait_until(lambda: expected_telegram <= set(digests_per_chat(fake))
                             and expected_slack <= set(slack_digests()), 120,
                             "every chat's digest after the restart, on both platforms")
            await asyncio.sleep(1.0)  # let anything still owed (or wrongly repeated) arrive
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 30) == 0, log.read_text()[-3000:]
        finally:
            if second.returncode is None:
                second.kill()
        assert slack.violations == []
        slack_counts = slack_digests()

    telegram_counts = digests_per_chat(fake)
    assert set(telegram_counts) <= set(telegram_chats)  # no Slack chat was sent to Telegram
    duplicates = {**{chat: n for chat, n in telegram_counts.items() if n > 1},
                  **{channel: n for channel, n in slack_counts.items() if n > 1}}
    assert len(duplicates) <= MAX_IN_FLIGHT, duplicates
    assert all(n == 2 for n in duplicates.values()), duplicates
    assert not set(telegram_counts) & set(BLOCKED)
    assert not set(slack_counts) & {channel_name(n) for n in ARCHIVED}
    store = await open_store(database_url)
    try:
        for number in ARCHIVED:
            gone = await store.get_subscription(slack_chat("T0123", channel_name(number)).address, None)
            assert gone is not None and not gone.active
        stats = await store.delivery_stats()
        assert len(duplicates) <= stats.possible_duplicates <= MAX_IN_FLIGHT
        assert stats.pending == 0 and stats.sending == 0
        assert stats.sent == len(telegram_chats) + SLACK_CHANNELS - len(BLOCKED) - len(ARCHIVED)
    finally:
        await store.close()
    print(f"\nkill after {at_kill} sends; {len(duplicates)} chat(s) got a repeat (bound {MAX_IN_FLIGHT}); "
          f"possible duplicates flagged: {stats.possible_duplicates}")


def _free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
