"""End to end in two languages: real Update JSON with a user's language_code into the real python-telegram-bot
Application, the Chinese command menu, /language across a restart, and a group's digest in the group's language."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

from doubles.fake_bot_api import FakeBotApi
from harness import CONTENT, FakeClock, e2e_settings, running_bot, sent_message_ids, texts

from bot.core.addresses import telegram
from bot.core.commands import COMMANDS
from bot.core.i18n import CHINESE, translator

GROUP = -100888
NEW_UPDATE = """  - date: 2025-04-16
    sections: [healthcare]
    title: Test hospital pilots an AI triage assistant
    summary: A made-up update used only by this test.
    link: https://example.org/triage
"""
ADMIN, MEMBER = 21, 22


def _only_real_calls(fake: FakeBotApi) -> None:
    for request in fake.requests:
        assert request.status != 404, f"{request.method} is not a Bot API method"
        assert not request.unknown_params, f"{request.method} got unknown fields {request.unknown_params}"
        assert request.ok or request.method != "setMyCommands", request.result


async def test_a_zh_hk_user_gets_chinese_replies_and_a_chinese_menu(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        fake.push_update(fake.command_update("/start", chat_id=701, user_id=701, language_code="zh-hk"))
        [welcome] = await fake.wait_for("sendMessage", chat_id=701)
        fake.push_update(fake.command_update("/sector finance", chat_id=702, user_id=702, language_code="en"))
        [english] = await fake.wait_for("sendMessage", chat_id=702)
        await fake.wait_for("setMyCommands", count=2)
        assert await runtime.store.get_chat_language(telegram(701)) == CHINESE
    assert "請在下方選擇範疇" in welcome["text"] and "/language — 英文或中文" in welcome["text"]
    assert "Key points" in english["text"] and "重點" not in english["text"]
    menus = {call.get("language_code"): call["commands"] for call in fake.calls("setMyCommands")
             if "scope" not in call or call["scope"].get("type") == "default"}
    assert set(menus) == {None, "zh"}  # Telegram's menu language codes are two letters
    zh = translator(CHINESE)
    public = [c for c in COMMANDS if c.in_menu and not c.admin_only]
    assert menus["zh"] == [{"command": c.name, "description": c.describe(zh)} for c in public]
    assert {"command": "language", "description": "對話語言：英文或繁體中文"} in menus["zh"]
    assert menus[None] == [{"command": c.name, "description": c.summary} for c in public]
    _only_real_calls(fake)


async def test_the_double_refuses_a_menu_language_that_is_not_two_letters(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        assert runtime is not None
        from telegram import BotCommand
        from telegram.error import BadRequest
        from telegram.ext import ApplicationBuilder

        application = ApplicationBuilder().token(fake.token).base_url(f"{fake.api_url}/bot").build()
        async with application:
            try:
                await application.bot.set_my_commands([BotCommand("help", "幫助")], language_code="zh-hk")
            except BadRequest as exc:
                assert "language code" in exc.message
            else:
                raise AssertionError("a three-part language code was accepted")


async def test_language_switches_with_a_button_and_survives_a_restart(fake: FakeBotApi, tmp_path: Path) -> None:
    settings = e2e_settings(fake, tmp_path)
    async with running_bot(fake, settings):
        fake.push_update(fake.command_update("/language", chat_id=703, user_id=703, language_code="en"))
        [shown] = await fake.wait_for("sendMessage", chat_id=703)
        assert "This chat's language: English" in shown["text"]
        [message_id] = sent_message_ids(fake, 703)
        fake.push_update(fake.callback_update("language zh-Hant", chat_id=703, user_id=703, message_id=message_id))
        [answer] = await fake.wait_for("answerCallbackQuery")
        [edit] = await fake.wait_for("editMessageText")
        assert answer.get("text") == "已儲存" and "繁體中文" in edit["text"]
    async with running_bot(fake, settings):  # a new process on the same database
        fake.push_update(fake.command_update("/help", chat_id=703, user_id=703, language_code="en"))
        [*_, help_text] = await fake.wait_for("sendMessage", count=2, chat_id=703)
    assert "指令" in help_text["text"] and "Commands" not in help_text["text"]


async def test_a_group_s_digest_follows_the_group_s_language(fake: FakeBotApi, tmp_path: Path) -> None:
    fake.register_chat(GROUP, "supergroup", title="香港 AI 群組")
    fake.set_chat_administrators(GROUP, [ADMIN], owner_id=ADMIN)
    clock = FakeClock(datetime(2025, 4, 16, 0, 0, tzinfo=UTC))  # 08:00 in Hong Kong, Wednesday 16 Apr 2025
    async with running_bot(fake, e2e_settings(fake, tmp_path, digest_lookback_days=5), clock) as runtime:
        # The group's first contact is an English-speaking member; then its admin switches it to Chinese.
        fake.push_update(fake.command_update("/about@hk_ai_pulse_bot", chat_id=GROUP, user_id=MEMBER,
                                             chat_type="supergroup", language_code="en"))
        await fake.wait_for("sendMessage", chat_id=GROUP)
        fake.push_update(fake.command_update("/language@hk_ai_pulse_bot zh-Hant", chat_id=GROUP, user_id=MEMBER,
                                             chat_type="supergroup", language_code="zh-hk"))
        [_, refused] = await fake.wait_for("sendMessage", count=2, chat_id=GROUP)
        assert "Only this group's administrators" in refused["text"]
        fake.push_update(fake.command_update("/language@hk_ai_pulse_bot zh-Hant", chat_id=GROUP, user_id=ADMIN,
                                             chat_type="supergroup", language_code="en"))
        fake.push_update(fake.command_update("/subscribe@hk_ai_pulse_bot", chat_id=GROUP, user_id=ADMIN,
                                             chat_type="supergroup", language_code="en"))
        [*_, switched, subscribed] = await fake.wait_for("sendMessage", count=4, chat_id=GROUP)
        assert "繁體中文" in switched["text"] and "已訂閱" in subscribed["text"]
        # A private chat subscribed at the same time reads its digest in English.
        fake.push_update(fake.command_update("/subscribe", chat_id=704, user_id=704, language_code="en"))
        await fake.wait_for("sendMessage", chat_id=704)

        clock.advance(hours=1)  # 09:00 HKT: both due
        [*_, digest] = await fake.wait_for("sendMessage", count=5, chat_id=GROUP)
        [_, english] = await fake.wait_for("sendMessage", count=2, chat_id=704)
        await asyncio.sleep(0.2)
        assert await runtime.store.get_chat_language(telegram(GROUP)) == CHINESE
    assert "摘要 · 2025年4月16日 星期三" in digest["text"] and "1 則新動態" in digest["text"]
    assert "數字政策辦公室發布《香港生成式人工智能技術及應用指引》" in digest["text"]  # the update's Chinese text
    assert "Digital Policy Office issues Generative AI" not in digest["text"]
    assert "digest · Wed 16 Apr 2025" in english["text"] and "1 new update" in english["text"]
    assert "Digital Policy Office issues Generative AI" in english["text"]
    assert len(texts(fake, GROUP)) == 5


async def test_admins_read_the_review_and_reload_notices_in_their_own_language(fake: FakeBotApi,
                                                                               tmp_path: Path) -> None:
    content = Path(shutil.copytree(CONTENT, tmp_path / "content"))
    settings = e2e_settings(fake, tmp_path, content_dir=content, admin_ids=frozenset({900, 901}))
    async with running_bot(fake, settings) as runtime:
        await runtime.store.set_chat_language(telegram(900), CHINESE)  # admin 900 chose Chinese; 901 never wrote
        await asyncio.sleep(0.5)  # the watcher is up
        updates = content / "updates.yaml"
        updates.write_text(updates.read_text().replace("updates:\n", "updates:\n" + NEW_UPDATE, 1))
        [chinese] = await fake.wait_for("sendMessage", chat_id=900, timeout=10)
        [english] = await fake.wait_for("sendMessage", chat_id=901, timeout=10)
    assert "已重新載入內容。" in chinese["text"] and "內容版本" in chinese["text"]
    assert "Content reloaded." in english["text"] and "Content version" in english["text"]
