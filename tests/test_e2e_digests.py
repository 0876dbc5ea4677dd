"""End to end: subscriptions and scheduled digests through the real bot, with the clock in the test's hands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from doubles.fake_bot_api import FakeBotApi
from harness import FakeClock, e2e_settings, running_bot, texts

from bot.core.addresses import telegram

GROUP = -100777
ADMIN, MEMBER = 11, 12


async def settle(seconds: float = 0.3) -> None:
    """Give the scheduler tick (every 0.05 s of real time) a few turns."""
    await asyncio.sleep(seconds)


async def test_subscribe_then_digest_arrives_at_the_due_time_then_unsubscribe_stops_it(
        fake: FakeBotApi, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 4, 16, 0, 0, tzinfo=UTC))  # 08:00 in Hong Kong, Wednesday 16 Apr 2025
    settings = e2e_settings(fake, tmp_path, digest_lookback_days=5)
    async with running_bot(fake, settings, clock) as runtime:
        fake.push_update(fake.command_update("/subscribe", chat_id=601, user_id=601))
        [confirmation] = await fake.wait_for("sendMessage", chat_id=601)
        assert "Subscribed." in confirmation["text"] and "daily at 09:00 (Asia/Hong_Kong)" in confirmation["text"]
        await settle()
        assert len(texts(fake, 601)) == 1  # not due yet

        clock.advance(hours=1)  # 09:00 HKT: due
        [_, digest] = await fake.wait_for("sendMessage", count=2, chat_id=601)
        assert "digest · Wed 16 Apr 2025" in digest["text"] and "1 new update" in digest["text"]
        assert "Digital Policy Office issues Generative AI" in digest["text"]  # dated 15 Apr 2025
        await settle()
        assert len(texts(fake, 601)) == 2  # exactly one digest for the slot

        clock.advance(days=1)  # Thursday: nothing new, so a spotlight on an initiative
        [*_, spotlight] = await fake.wait_for("sendMessage", count=3, chat_id=601)
        assert "Nothing new since your last digest" in spotlight["text"]
        assert "Digital Policy Office issues" not in spotlight["text"]

        fake.push_update(fake.command_update("/unsubscribe", chat_id=601, user_id=601))
        [*_, goodbye] = await fake.wait_for("sendMessage", count=4, chat_id=601)
        assert "Unsubscribed" in goodbye["text"]
        clock.advance(days=2)
        await settle()
        assert len(texts(fake, 601)) == 4  # no digest after unsubscribing
        assert await runtime.store.count_active() == 0


async def test_in_a_group_only_administrators_may_subscribe(fake: FakeBotApi, tmp_path: Path) -> None:
    fake.register_chat(GROUP, "supergroup", title="HK AI fans")
    fake.set_chat_administrators(GROUP, [ADMIN], owner_id=ADMIN)
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        fake.push_update(fake.command_update("/subscribe@hk_ai_pulse_bot", chat_id=GROUP, user_id=MEMBER,
                                             chat_type="supergroup"))
        [refusal] = await fake.wait_for("sendMessage", chat_id=GROUP)
        assert "Only this group's administrators" in refusal["text"]
        assert await runtime.store.get_subscription(telegram(GROUP), None) is None
        fake.push_update(fake.command_update("/subscribe@hk_ai_pulse_bot weekly fri 18:00 finance", chat_id=GROUP,
                                             user_id=ADMIN, chat_type="supergroup"))
        [_, accepted] = await fake.wait_for("sendMessage", count=2, chat_id=GROUP)
        assert "weekly on Fri at 18:00" in accepted["text"] and "AI in finance" in accepted["text"]
    assert fake.calls("getChatAdministrators")


async def test_a_forum_topic_subscription_delivers_into_that_topic(fake: FakeBotApi, tmp_path: Path) -> None:
    fake.register_chat(GROUP, "supergroup", title="Forum", is_forum=True)
    fake.set_chat_administrators(GROUP, [ADMIN], owner_id=ADMIN)
    clock = FakeClock(datetime(2025, 4, 15, 0, 0, tzinfo=UTC))
    async with running_bot(fake, e2e_settings(fake, tmp_path), clock) as runtime:
        fake.push_update(fake.command_update("/subscribe@hk_ai_pulse_bot", chat_id=GROUP, user_id=ADMIN,
                                             chat_type="supergroup", thread_id=77))
        [confirmation] = await fake.wait_for("sendMessage", chat_id=GROUP)
        assert confirmation["message_thread_id"] == 77
        subscription = await runtime.store.get_subscription(telegram(GROUP), 77)
        assert subscription is not None and await runtime.store.get_subscription(telegram(GROUP), None) is None
        clock.advance(hours=2)
        [_, digest] = await fake.wait_for("sendMessage", count=2, chat_id=GROUP)
    assert digest["message_thread_id"] == 77 and "digest" in digest["text"]


async def test_a_channel_subscribes_by_posting_subscribe(fake: FakeBotApi, tmp_path: Path) -> None:
    channel = -100555
    fake.register_chat(channel, "channel", title="HK AI news")
    update = fake.command_update("/subscribe daily 07:00", chat_id=channel, chat_type="channel")
    post = update.pop("message")
    post.pop("from", None)
    post["sender_chat"] = post["chat"]
    update["channel_post"] = post
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        fake.push_update(update)
        [confirmation] = await fake.wait_for("sendMessage", chat_id=channel)
        assert "Subscribed." in confirmation["text"]
        subscription = await runtime.store.get_subscription(telegram(channel), None)
    assert subscription is not None and subscription.schedule.at.hour == 7


async def test_a_digest_missed_while_down_is_sent_once_after_restart(fake: FakeBotApi, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 4, 16, 0, 0, tzinfo=UTC))
    settings = e2e_settings(fake, tmp_path)
    async with running_bot(fake, settings, clock):
        fake.push_update(fake.command_update("/subscribe", chat_id=602, user_id=602))
        await fake.wait_for("sendMessage", chat_id=602)
    clock.advance(days=3)  # three 09:00 slots pass while the bot is down
    async with running_bot(fake, settings, clock):
        await fake.wait_for("sendMessage", count=2, chat_id=602)
        await settle()
    assert len(texts(fake, 602)) == 2  # confirmation + one digest, not three


async def test_sent_digests_are_deleted_after_the_retention_but_not_sent_again(
        fake: FakeBotApi, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 4, 16, 0, 0, tzinfo=UTC))  # 08:00 HKT
    settings = e2e_settings(fake, tmp_path, delivery_retention_days=1)
    async with running_bot(fake, settings, clock) as runtime:
        fake.push_update(fake.command_update("/subscribe", chat_id=603, user_id=603))
        await fake.wait_for("sendMessage", chat_id=603)
        clock.advance(hours=1)  # 09:00: the digest
        await fake.wait_for("sendMessage", count=2, chat_id=603)
        await settle()
        assert (await runtime.store.delivery_stats()).sent == 1
        clock.advance(days=1, hours=12)  # 21:00 the next day: that digest is older than a day, today's went out
        await fake.wait_for("sendMessage", count=3, chat_id=603)
        for _ in range(100):  # the sweep runs after a tick (every 0.05 s)
            stats = await runtime.store.delivery_stats()
            if (stats.sent, stats.sending, stats.pending) == (1, 0, 0):
                break
            await settle(0.05)
        assert (stats.sent, stats.sending, stats.pending, stats.failed) == (1, 0, 0, 0)  # the second one is kept
        assert stats.last_period == datetime(2025, 4, 17, 1, 0, tzinfo=UTC)  # 09:00 HKT on the 17th
        await settle()
    assert len(texts(fake, 603)) == 3  # the deleted one was not owed again


async def test_quiet_hours_silence_replies_but_not_digests(fake: FakeBotApi, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 4, 16, 14, 30, tzinfo=UTC))  # 22:30 HKT
    async with running_bot(fake, e2e_settings(fake, tmp_path), clock):
        fake.push_update(fake.command_update("/quiet 22:00-07:00", chat_id=603, user_id=603))
        [confirmation] = await fake.wait_for("sendMessage", chat_id=603)
        assert "Quiet hours set: 22:00-07:00 (Asia/Hong_Kong)" in confirmation["text"]
        fake.push_update(fake.command_update("/subscribe daily 06:00", chat_id=603, user_id=603))
        await fake.wait_for("sendMessage", count=2, chat_id=603)
        clock.advance(hours=8)  # 06:30 HKT: the digest is due inside quiet hours
        await fake.wait_for("sendMessage", count=3, chat_id=603)
        clock.advance(hours=2)  # 08:30 HKT: quiet hours over
        fake.push_update(fake.command_update("/latest 1", chat_id=603, user_id=603))
        await fake.wait_for("sendMessage", count=4, chat_id=603)
    sent = fake.sent_messages(603)
    assert sent[1].get("disable_notification") is True  # a reply in quiet hours
    assert not sent[2].get("disable_notification")  # the scheduled digest may make a sound
    assert not sent[3].get("disable_notification")  # a reply after quiet hours


async def test_settings_buttons_change_the_schedule(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        fake.push_update(fake.command_update("/subscribe", chat_id=604, user_id=604))
        await fake.wait_for("sendMessage", chat_id=604)
        fake.push_update(fake.command_update("/settings", chat_id=604, user_id=604))
        [_, shown] = await fake.wait_for("sendMessage", count=2, chat_id=604)
        actions = [b["callback_data"] for row in shown["reply_markup"]["inline_keyboard"] for b in row]
        assert "settings time 07:00" in actions and "settings weekly mon" in actions and "unsubscribe" in actions
        message_id = [r.result["message_id"] for r in fake.requests if r.method == "sendMessage"][-1]
        fake.push_update(fake.callback_update("settings time 07:00", chat_id=604, user_id=604, message_id=message_id))
        [edit] = await fake.wait_for("editMessageText")
        subscription = await runtime.store.get_subscription(telegram(604), None)
    assert subscription is not None and subscription.schedule.at.hour == 7
    assert "daily at 07:00" in edit["text"]
    assert fake.calls("answerCallbackQuery")[-1].get("text") == "Saved"


async def test_the_unsubscribe_button_asks_to_confirm_in_the_same_message(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        fake.push_update(fake.command_update("/subscribe", chat_id=606, user_id=606))
        await fake.wait_for("sendMessage", chat_id=606)
        message_id = [r.result["message_id"] for r in fake.requests if r.method == "sendMessage"][-1]
        fake.push_update(fake.callback_update("unsubscribe", chat_id=606, user_id=606, message_id=message_id))
        [asked] = await fake.wait_for("editMessageText")
        still = await runtime.store.get_subscription(telegram(606), None)
        fake.push_update(fake.callback_update("unsubscribe confirm", chat_id=606, user_id=606, message_id=message_id))
        [_, done] = await fake.wait_for("editMessageText", count=2)
        ended = await runtime.store.get_subscription(telegram(606), None)
    assert "Unsubscribe this chat?" in asked["text"]
    assert [[b["text"] for b in row] for row in asked["reply_markup"]["inline_keyboard"]] == [
        ["Yes, unsubscribe", "Keep it"]]
    assert still is not None and still.active
    assert "Unsubscribed" in done["text"] and ended is not None and not ended.active


async def test_bad_subscribe_arguments_show_the_accepted_forms(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        fake.push_update(fake.command_update("/subscribe sometimes Mars/Base", chat_id=605, user_id=605))
        [answer] = await fake.wait_for("sendMessage", chat_id=605)
        assert await runtime.store.get_subscription(telegram(605), None) is None
    assert "I don't understand “sometimes”" in answer["text"]
    assert "/subscribe daily 08:30 Europe/London" in answer["text"]


async def test_quiet_hours_set_on_another_replica_are_seen_within_a_minute(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import time as clock_time

    from bot.core import services as services_module
    from bot.core.schedule import QuietHours
    from bot.core.services import QUIET_HOURS_TTL, Services, StaticContent
    from bot.store import open_store

    store = await open_store(f"sqlite:///{tmp_path}/bot.sqlite3")
    now = [1000.0]
    monkeypatch.setattr(services_module.time, "monotonic", lambda: now[0])
    try:
        services = Services(content=StaticContent(None), clock=FakeClock(), subscriptions=store)  # type: ignore[arg-type]
        assert await services.quiet_hours(telegram(42)) is None
        hours = QuietHours(clock_time(22), clock_time(7), "Asia/Hong_Kong")
        await store.set_quiet_hours(telegram(42), hours)  # as another replica's /quiet would
        now[0] += QUIET_HOURS_TTL - 1
        assert await services.quiet_hours(telegram(42)) is None  # still the cached answer
        now[0] += 2
        assert await services.quiet_hours(telegram(42)) == hours
    finally:
        await store.close()
