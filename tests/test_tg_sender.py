"""TelegramSender: the real PTB Bot against the local Bot API double, each error answer mapped to our outcome."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from doubles import FakeBotApi
from telegram import Bot
from telegram.error import InvalidToken
from telegram.error import RetryAfter as PtbRetryAfter
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bot.core.addresses import telegram
from bot.core.messages import ChatKind
from bot.core.schedule import Cadence, Schedule
from bot.core.subscriptions import Delivery, DigestPayload, SubscriptionRequest
from bot.delivery import (
    ChatGone,
    ChatMoved,
    DeliveryEngine,
    DeliveryReport,
    PermanentFailure,
    RateLimits,
    RetryAfter,
    Sender,
    TransientFailure,
)
from bot.store import open_store
from bot.tg.platform import telegram_platform
from bot.tg.sender import BotApiSender, TelegramSender, is_chat_gone, retry_after_seconds

CHAT = 4242
GROUP = -100777


@pytest.fixture(autouse=True)
def timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns while building a RetryAfter unless opted in to timedelta periods; warnings are errors here.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


def make_bot(fake: FakeBotApi, *, token: str | None = None, read_timeout: float = 5.0) -> Bot:
    return Bot(
        token or fake.token,
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        request=HTTPXRequest(read_timeout=read_timeout, connect_timeout=2.0),
    )


@pytest.fixture(params=["ptb", "json"])
async def sender(fake: FakeBotApi, request: pytest.FixtureRequest) -> AsyncIterator[Sender]:
    """Both senders answer every case alike: through PTB's Bot, and BotApiSender's JSON straight to the API."""
    async with make_bot(fake) as bot:
        if request.param == "ptb":
            yield TelegramSender(bot)
        else:
            async with BotApiSender.for_bot(bot) as lean:
                yield lean


async def test_send_posts_html_without_preview_to_the_topic(fake: FakeBotApi, sender: Sender) -> None:
    await sender.send(telegram(GROUP), 7, "<b>Digest</b> &amp; more", silent=True)
    (message,) = fake.sent_messages(GROUP)
    assert message["text"] == "<b>Digest</b> &amp; more"
    assert message["parse_mode"] == "HTML"
    assert message["message_thread_id"] == 7
    assert _flag(message["disable_notification"]) is True
    assert _flag(_preview(message)["is_disabled"]) is True


async def test_a_loud_send_to_a_private_chat_omits_the_optional_fields(fake: FakeBotApi, sender: Sender) -> None:
    await sender.send(telegram(CHAT), None, "hello", silent=False)
    (message,) = fake.sent_messages(CHAT)
    assert "message_thread_id" not in message
    assert "disable_notification" not in message


async def test_flood_control_becomes_retry_after_with_its_seconds(fake: FakeBotApi, sender: Sender) -> None:
    fake.add_fault(chat_id=CHAT, error_code=429, description="Too Many Requests: retry after 3",
                  parameters={"retry_after": 3}, times=1)
    with pytest.raises(RetryAfter) as caught:
        await sender.send(telegram(CHAT), None, "x", silent=False)
    assert caught.value.seconds == 3.0
    await sender.send(telegram(CHAT), None, "x", silent=False)
    assert len(fake.sent_messages(CHAT)) == 1


async def test_blocked_by_the_user_means_the_chat_is_gone(fake: FakeBotApi, sender: Sender) -> None:
    fake.block_chat(CHAT)
    with pytest.raises(ChatGone, match="blocked"):
        await sender.send(telegram(CHAT), None, "x", silent=False)


async def test_kicked_from_a_group_means_the_chat_is_gone(fake: FakeBotApi, sender: Sender) -> None:
    fake.add_fault(chat_id=GROUP, error_code=403, description="Forbidden: bot was kicked from the supergroup chat")
    with pytest.raises(ChatGone, match="kicked"):
        await sender.send(telegram(GROUP), None, "x", silent=False)


async def test_group_upgraded_to_supergroup_reports_the_new_chat_id(fake: FakeBotApi, sender: Sender) -> None:
    fake.migrate_chat(-555, -100555)
    with pytest.raises(ChatMoved) as caught:
        await sender.send(telegram(-555), None, "x", silent=False)
    assert caught.value.new == telegram(-100555)
    await sender.send(caught.value.new, None, "x", silent=False)
    assert len(fake.sent_messages(-100555)) == 1


async def test_server_error_is_transient(fake: FakeBotApi, sender: Sender) -> None:
    fake.add_fault(chat_id=CHAT, error_code=500, description="Internal Server Error", times=1)
    with pytest.raises(TransientFailure):
        await sender.send(telegram(CHAT), None, "x", silent=False)


async def test_bad_gateway_is_transient(fake: FakeBotApi, sender: Sender) -> None:
    fake.add_fault(chat_id=CHAT, error_code=502, description="Bad Gateway", times=1)
    with pytest.raises(TransientFailure):
        await sender.send(telegram(CHAT), None, "x", silent=False)


async def test_chat_not_found_means_the_chat_is_gone(fake: FakeBotApi, sender: Sender) -> None:
    fake.add_fault(chat_id=CHAT, error_code=400, description="Bad Request: chat not found")
    with pytest.raises(ChatGone, match=r"(?i)chat not found"):
        await sender.send(telegram(CHAT), None, "x", silent=False)


async def test_no_rights_in_a_group_means_the_chat_is_gone(fake: FakeBotApi, sender: Sender) -> None:
    fake.add_fault(chat_id=GROUP, error_code=400,
                  description="Bad Request: have no rights to send a message")
    with pytest.raises(ChatGone):
        await sender.send(telegram(GROUP), None, "x", silent=False)


async def test_malformed_html_is_a_permanent_failure(fake: FakeBotApi, sender: Sender) -> None:
    with pytest.raises(PermanentFailure, match=r"(?i)parse|tag|entit"):
        await sender.send(telegram(CHAT), None, "<blink>x</blink>", silent=False)


async def test_a_response_slower_than_the_read_timeout_is_transient(fake: FakeBotApi) -> None:
    async with make_bot(fake, read_timeout=0.05) as bot:
        fake.add_delay(chat_id=CHAT, delay=0.3, times=1)
        with pytest.raises(TransientFailure, match="timed out"):
            await TelegramSender(bot).send(telegram(CHAT), None, "x", silent=False)


async def test_a_json_send_slower_than_the_read_timeout_is_transient(fake: FakeBotApi) -> None:
    async with make_bot(fake, read_timeout=0.05) as bot, BotApiSender.for_bot(bot) as lean:
        fake.add_delay(chat_id=CHAT, delay=0.3, times=1)
        with pytest.raises(TransientFailure, match="timed out"):
            await lean.send(telegram(CHAT), None, "x", silent=False)


async def test_an_invalid_token_is_fatal_for_a_json_send_too(fake: FakeBotApi) -> None:
    async with BotApiSender(f"{fake.base_url}999:WRONG") as lean:
        with pytest.raises(InvalidToken):
            await lean.send(telegram(CHAT), None, "x", silent=False)


async def test_an_invalid_token_is_fatal_not_an_outcome(fake: FakeBotApi) -> None:
    bot = make_bot(fake, token="999:WRONG")
    try:
        with pytest.raises(InvalidToken):
            await TelegramSender(bot).send(telegram(CHAT), None, "x", silent=False)
    finally:
        await bot.request.shutdown()  # Bot.shutdown() skips a bot whose initialize() never succeeded


async def test_the_engine_delivers_through_the_real_bot_and_handles_each_answer(
        fake: FakeBotApi, sender: Sender, tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/bot.sqlite3")
    try:
        then = datetime(2025, 3, 3, tzinfo=UTC)
        for chat_id in (101, 102, 103, -555):
            kind = ChatKind.PRIVATE if chat_id > 0 else ChatKind.GROUP
            daily = Schedule(Cadence.DAILY, time(9, 0), "Asia/Hong_Kong")
            await store.save_subscription(SubscriptionRequest(telegram(chat_id), None, kind, daily), then)
        now = then + timedelta(days=2)
        assert await store.enqueue_due(now, 100) == 4
        fake.block_chat(102)
        fake.migrate_chat(-555, -100555)
        fake.add_fault(chat_id=103, error_code=500, description="Internal Server Error", times=1)

        async def compose(delivery: Delivery) -> DigestPayload:
            return DigestPayload(parts=(f"<b>Digest</b> for {int(delivery.subscription.chat.id)}",))

        engine = DeliveryEngine(store, telegram_platform(sender), RateLimits(messages_per_second=1000),
                                worker_id="e2e",
                                compose=compose, now=lambda: now)
        report = await engine.run_once()
        assert report == DeliveryReport(sent=2, failed=1, retried=1, deactivated=1, migrated=1)
        assert [m["text"] for m in fake.sent_messages(101)] == ["<b>Digest</b> for 101"]
        assert len(fake.sent_messages(-100555)) == 1
        blocked = await store.get_subscription(telegram(102), None)
        assert blocked is not None and not blocked.active
    finally:
        await store.close()


def test_retry_after_is_read_in_seconds_from_either_form(monkeypatch: pytest.MonkeyPatch) -> None:
    assert retry_after_seconds(PtbRetryAfter(7)) == 7.0
    monkeypatch.delenv("PTB_TIMEDELTA")
    with pytest.warns(PTBDeprecationWarning):
        legacy = PtbRetryAfter(5)  # the int form, as PTB hands it out without the opt-in
    assert retry_after_seconds(legacy) == 5.0


def test_only_chat_level_400_answers_mean_the_chat_is_gone() -> None:
    assert is_chat_gone("Chat not found")
    assert is_chat_gone("Not enough rights to send text messages to the chat")
    assert not is_chat_gone("Can't parse entities: unsupported start tag")
    assert not is_chat_gone("Message thread not found")


def _flag(value: Any) -> bool:
    return value in (True, "true", "True", 1, "1")


def _preview(message: dict[str, Any]) -> dict[str, Any]:
    options = message["link_preview_options"]
    if isinstance(options, str):
        parsed: dict[str, Any] = json.loads(options)
        return parsed
    assert isinstance(options, dict)
    return options
