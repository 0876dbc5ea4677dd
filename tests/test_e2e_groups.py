"""End to end: the bot's place in groups, channels and private chats (my_chat_member), group admins, and uploads
whose size Telegram does not state."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path

import aiohttp
import pytest
from doubles.fake_bot_api import FILE_DOWNLOAD, FakeBotApi, missing_required_fields
from harness import CONTENT, e2e_settings, running_bot, texts
from telegram import Bot, Update

from bot.app import Runtime
from bot.core.addresses import telegram
from bot.settings import Secret
from bot.tg.webhook import SECRET_HEADER

GROUP, CHANNEL = -100777, -100888
OWNER, MEMBER, BOT_ADMIN = 31, 32, 900


async def settled(fake: FakeBotApi) -> None:
    """Wait until the bot has fetched every pushed update and handled it (handling is quick; allow a busy machine)."""
    for _ in range(200):
        if not fake.pending_updates:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)


async def subscribed_group(fake: FakeBotApi, runtime: Runtime, chat_id: int, chat_type: str) -> None:
    fake.push_update(fake.command_update("/subscribe@hk_ai_pulse_bot", chat_id=chat_id, user_id=OWNER,
                                         chat_type=chat_type))
    [confirmation] = await fake.wait_for("sendMessage", chat_id=chat_id)
    assert "Subscribed." in confirmation["text"]
    subscription = await runtime.store.get_subscription(telegram(chat_id), None)
    assert subscription is not None and subscription.active


@pytest.mark.parametrize("status", ["left", "kicked"])
async def test_removed_from_a_group_its_subscription_ends_at_once(fake: FakeBotApi, tmp_path: Path,
                                                                  status: str) -> None:
    fake.register_chat(GROUP, "supergroup", title="HK AI fans")
    fake.set_chat_administrators(GROUP, [], owner_id=OWNER)
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        await subscribed_group(fake, runtime, GROUP, "supergroup")
        fake.push_update(fake.my_chat_member_update(status, chat_id=GROUP, user_id=OWNER))
        await settled(fake)
        subscription = await runtime.store.get_subscription(telegram(GROUP), None)
        assert subscription is not None and not subscription.active  # no send had to fail first
        assert await runtime.store.count_active() == 0
    assert len(texts(fake, GROUP)) == 1  # the confirmation only: nothing is said to a chat the bot has left


async def test_a_user_who_blocks_the_bot_is_unsubscribed_at_once(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        fake.push_update(fake.command_update("/subscribe", chat_id=41, user_id=41))
        await fake.wait_for("sendMessage", chat_id=41)
        fake.push_update(fake.my_chat_member_update("kicked", chat_id=41, user_id=41, chat_type="private"))
        await settled(fake)
        subscription = await runtime.store.get_subscription(telegram(41), None)
    assert subscription is not None and not subscription.active
    assert len(texts(fake, 41)) == 1


async def test_removed_from_a_channel_its_subscription_ends_at_once(fake: FakeBotApi, tmp_path: Path) -> None:
    fake.register_chat(CHANNEL, "channel", title="HK AI news")
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        post = fake.command_update("/subscribe", chat_id=CHANNEL, chat_type="channel")
        post["channel_post"] = post.pop("message")
        post["channel_post"]["sender_chat"] = post["channel_post"]["chat"]
        del post["channel_post"]["from"]
        fake.push_update(post)
        await fake.wait_for("sendMessage", chat_id=CHANNEL)
        fake.push_update(fake.my_chat_member_update("kicked", chat_id=CHANNEL, user_id=OWNER))
        await settled(fake)
        subscription = await runtime.store.get_subscription(telegram(CHANNEL), None)
    assert subscription is not None and not subscription.active


@pytest.mark.parametrize(("chat_type", "status"), [("group", "member"), ("supergroup", "administrator"),
                                                   ("channel", "administrator")])
async def test_added_to_a_group_or_channel_the_bot_says_hello_and_points_to_help(
        fake: FakeBotApi, tmp_path: Path, chat_type: str, status: str) -> None:
    chat_id = -4242 if chat_type == "group" else -1004242
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.my_chat_member_update(status, chat_id=chat_id, chat_type=chat_type, title="New",
                                                    user_id=OWNER))
        [hello] = await fake.wait_for("sendMessage", chat_id=chat_id)
    assert "HK AI Pulse" in hello["text"] and "/help@hk_ai_pulse_bot" in hello["text"]
    assert "/subscribe@hk_ai_pulse_bot" in hello["text"]


async def test_a_promotion_or_a_private_chat_restart_gets_no_hello(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.my_chat_member_update("administrator", old_status="member", chat_id=GROUP,
                                                    chat_type="supergroup", user_id=OWNER))
        fake.push_update(fake.my_chat_member_update("member", old_status="kicked", chat_id=43, chat_type="private",
                                                    user_id=43))
        fake.push_update(fake.command_update("/about", chat_id=43, user_id=43))
        await fake.wait_for("sendMessage", chat_id=43)
        await settled(fake)
    assert texts(fake, GROUP) == []
    assert len(texts(fake, 43)) == 1  # the /about answer only


async def test_the_bot_asks_telegram_for_the_updates_it_handles(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.command_update("/about", chat_id=44, user_id=44))
        await fake.wait_for("sendMessage", chat_id=44)  # a long poll has answered
    asked = fake.calls("getUpdates")[0]["allowed_updates"]
    assert {"message", "channel_post", "callback_query", "my_chat_member"} <= set(asked)


async def test_a_webhook_asks_for_and_acts_on_my_chat_member(fake: FakeBotApi, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = e2e_settings(fake, tmp_path, webhook_url="https://bot.example.test/telegram", port=port,
                            webhook_listen="127.0.0.1", webhook_secret=Secret("groups-test-secret"))
    async with running_bot(fake, settings) as runtime, aiohttp.ClientSession() as session:
        [registered] = fake.calls("setWebhook")
        assert "my_chat_member" in registered["allowed_updates"]
        for update_id, update in enumerate((fake.command_update("/subscribe", chat_id=45, user_id=45),
                                            fake.my_chat_member_update("kicked", chat_id=45, user_id=45,
                                                                       chat_type="private")), 1):
            async with session.post(f"http://127.0.0.1:{port}/telegram",
                                    data=json.dumps({"update_id": update_id, **update}),
                                    headers={SECRET_HEADER: "groups-test-secret",
                                             "Content-Type": "application/json"}) as answer:
                assert answer.status == 200  # answered once processed
        subscription = await runtime.store.get_subscription(telegram(45), None)
    assert subscription is not None and not subscription.active


async def test_a_newly_promoted_admin_is_not_refused_for_the_cache_lifetime(fake: FakeBotApi, tmp_path: Path) -> None:
    fake.register_chat(GROUP, "supergroup", title="HK AI fans")
    fake.set_chat_administrators(GROUP, [], owner_id=OWNER)
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        fake.push_update(fake.command_update("/subscribe@hk_ai_pulse_bot", chat_id=GROUP, user_id=MEMBER,
                                             chat_type="supergroup"))
        [refusal] = await fake.wait_for("sendMessage", chat_id=GROUP)
        assert "Only this group's administrators" in refusal["text"]
        assert len(fake.calls("getChatAdministrators")) == 1  # a list fetched just now is not fetched again

        fake.set_chat_administrators(GROUP, [MEMBER], owner_id=OWNER)  # promoted, well within the 5-minute cache
        fake.push_update(fake.command_update("/subscribe@hk_ai_pulse_bot", chat_id=GROUP, user_id=MEMBER,
                                             chat_type="supergroup"))
        [_, accepted] = await fake.wait_for("sendMessage", count=2, chat_id=GROUP)
        assert "Subscribed." in accepted["text"]
        subscription = await runtime.store.get_subscription(telegram(GROUP), None)
        assert subscription is not None and subscription.active
        assert len(fake.calls("getChatAdministrators")) == 2

        fake.push_update(fake.command_update("/subscribe@hk_ai_pulse_bot", chat_id=GROUP, user_id=OWNER,
                                             chat_type="supergroup"))
        await fake.wait_for("sendMessage", count=3, chat_id=GROUP)
        assert len(fake.calls("getChatAdministrators")) == 2  # an admin in the cached list costs no call


@pytest.fixture
def content(tmp_path: Path) -> Path:
    directory = tmp_path / "content"
    shutil.copytree(CONTENT, directory)
    return directory


@pytest.mark.parametrize("megabytes", [2, 21])  # 21: over the Bot API's 20 MB, getFile itself refuses
async def test_an_upload_of_unstated_size_over_the_cap_is_refused_while_downloading(
        fake: FakeBotApi, tmp_path: Path, content: Path, megabytes: int) -> None:
    before = (content / "updates.yaml").read_bytes()
    huge = b"updates:\n" + b"# padding\n" * (megabytes * 104_858)  # no file_size anywhere, sent chunked
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)) as runtime:
        version = runtime.content.catalogue.version
        fake.push_update(fake.document_update("updates.yaml", huge, chat_id=BOT_ADMIN, user_id=BOT_ADMIN,
                                              size_known=False))
        [answer] = await fake.wait_for("sendMessage", chat_id=BOT_ADMIN)
        assert runtime.content.catalogue.version == version
    assert "over 256 KiB" in answer["text"]
    assert (content / "updates.yaml").read_bytes() == before
    if megabytes < 20:
        assert "file_size" not in fake.calls("getFile")[0] and [r for r in fake.requests if r.method == FILE_DOWNLOAD]


async def test_an_upload_of_unstated_size_under_the_cap_is_applied(fake: FakeBotApi, tmp_path: Path,
                                                                   content: Path) -> None:
    text = (content / "updates.yaml").read_text().replace("updates:\n", "updates:\n  - date: 2025-04-16\n"
                                                          "    sections: [healthcare]\n    title: Unsized upload\n"
                                                          "    summary: A made-up update.\n"
                                                          "    link: https://example.org/unsized\n", 1)
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)):
        fake.push_update(fake.document_update("updates.yaml", text.encode(), chat_id=BOT_ADMIN, user_id=BOT_ADMIN,
                                              size_known=False))
        [answer] = await fake.wait_for("sendMessage", chat_id=BOT_ADMIN)
    assert "Applied." in answer["text"] and "Unsized upload" in answer["text"]


@pytest.mark.parametrize(("new", "old", "chat_type"), [("member", None, "group"), ("administrator", None, "channel"),
                                                        ("left", None, "supergroup"), ("kicked", None, "private"),
                                                        ("restricted", "member", "supergroup")])
async def test_the_double_builds_my_chat_member_updates_as_telegram_does(
        fake: FakeBotApi, new: str, old: str | None, chat_type: str) -> None:
    chat_id = 77 if chat_type == "private" else -100999
    update = fake.my_chat_member_update(new, old_status=old, chat_id=chat_id, chat_type=chat_type)
    assert missing_required_fields("Update", {"update_id": 1, **update}) == []
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        parsed = Update.de_json({"update_id": 1, **update}, bot)
    assert parsed.my_chat_member is not None and parsed.my_chat_member.new_chat_member.status == new
    assert parsed.my_chat_member.new_chat_member.user.id == fake.bot_id
