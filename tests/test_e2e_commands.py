"""End to end: real Update JSON into the real python-telegram-bot Application, asserting on what the bot sent."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from doubles.fake_bot_api import FakeBotApi
from harness import CONTENT, e2e_settings, running_bot, sent_message_ids, texts

from bot.core.commands import COMMANDS
from bot.logs import configure_logging

GROUP = -1001234


def _only_real_calls(fake: FakeBotApi) -> None:
    for request in fake.requests:
        assert request.status != 404, f"{request.method} is not a Bot API method"
        assert not request.unknown_params, f"{request.method} got unknown fields {request.unknown_params}"


async def test_start_up_publishes_the_command_menu_from_the_table(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        commands = fake.calls("setMyCommands")[0]["commands"]
        expected = [c.name for c in COMMANDS if c.in_menu and not c.admin_only]
        assert [c["command"] for c in commands] == expected
        assert len(fake.calls("getMe")) == 1 and fake.calls("deleteWebhook")
    _only_real_calls(fake)


async def test_sector_command_gets_an_html_reply_with_buttons(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.command_update("/sector finance", chat_id=501, user_id=501))
        [sent] = await fake.wait_for("sendMessage", chat_id=501)
    assert sent["parse_mode"] == "HTML" and "<b>AI in finance</b>" in sent["text"]
    actions = [button["callback_data"] for row in sent["reply_markup"]["inline_keyboard"] for button in row]
    assert "initiatives finance" in actions
    assert sent["link_preview_options"] == {"is_disabled": True}
    _only_real_calls(fake)


async def test_pressing_a_button_answers_and_edits_the_message(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.command_update("/sectors", chat_id=502, user_id=502))
        await fake.wait_for("sendMessage", chat_id=502)
        [message_id] = sent_message_ids(fake, 502)
        fake.push_update(fake.callback_update("sector healthcare", chat_id=502, user_id=502, message_id=message_id))
        await fake.wait_for("answerCallbackQuery")
        [edit] = await fake.wait_for("editMessageText")
    assert edit["message_id"] == message_id and "Healthcare" in edit["text"]
    assert len(fake.sent_messages(502)) == 1  # edited, not a second message
    _only_real_calls(fake)


async def test_deep_link_start_opens_the_section(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.command_update("/start smart-city", chat_id=503, user_id=503))
        [sent] = await fake.wait_for("sendMessage", chat_id=503)
    assert "Smart city" in sent["text"]


async def test_group_commands_addressed_to_us_work_and_chatter_is_ignored(fake: FakeBotApi, tmp_path: Path) -> None:
    fake.register_chat(GROUP, "supergroup", title="HK AI fans")
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.text_update("anyone going to the fintech meetup?", chat_id=GROUP, chat_type="supergroup"))
        fake.push_update(fake.command_update("/sector@other_bot finance", chat_id=GROUP, chat_type="supergroup"))
        fake.push_update(fake.command_update("/weather", chat_id=GROUP, chat_type="supergroup"))
        fake.push_update(fake.command_update("/sector@hk_ai_pulse_bot finance", chat_id=GROUP, chat_type="supergroup"))
        fake.push_update(fake.command_update("/nonsense@hk_ai_pulse_bot", chat_id=GROUP, chat_type="supergroup"))
        sent = await fake.wait_for("sendMessage", count=2, chat_id=GROUP)
    assert "AI in finance" in sent[0]["text"]
    assert "I don't know /nonsense" in sent[1]["text"]
    assert len(texts(fake, GROUP)) == 2


async def test_unknown_command_and_bad_argument_get_helpful_answers(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.command_update("/sectr", chat_id=504, user_id=504))
        fake.push_update(fake.command_update("/latest many", chat_id=504, user_id=504))
        fake.push_update(fake.text_update("cyberport", chat_id=504, user_id=504))
        await fake.wait_for("sendMessage", count=3, chat_id=504)
    replies = texts(fake, 504)
    assert "Did you mean /sector?" in replies[0]
    assert "takes a number from 1 to 20" in replies[1]
    assert "Results for" in replies[2]


async def test_a_long_reply_is_split_with_buttons_on_the_last_part(fake: FakeBotApi, tmp_path: Path) -> None:
    content = tmp_path / "content"
    (content / "sections").mkdir(parents=True)
    (content / "about.yaml").write_text((CONTENT / "about.yaml").read_text())
    (content / "updates.yaml").write_text("updates: []\n")
    items = "".join(f"  - name: Programme {i}\n    body: Body {i}\n    description: {'word ' * 60}\n"
                    f"    link: https://example.org/{i}\n" for i in range(40))
    (content / "sections" / "big.yaml").write_text(
        f"id: big\norder: 1\ntitle: Big\nsummary: Many.\nkey_points: [Lots.]\ninitiatives:\n{items}")
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)):
        fake.push_update(fake.command_update("/initiatives big", chat_id=505, user_id=505))
        await fake.wait_for("sendMessage", count=3, chat_id=505)
    parts = fake.sent_messages(505)
    assert len(parts) >= 3
    assert all("reply_markup" not in part for part in parts[:-1]) and "reply_markup" in parts[-1]
    assert "Programme 0" in parts[0]["text"] and "Programme 39" in parts[-1]["text"]


async def test_a_telegram_error_is_logged_and_the_user_gets_an_apology(fake: FakeBotApi, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    fake.add_fault(method="sendMessage", chat_id=506, error_code=400, description="Bad Request: oops", times=1)
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        fake.push_update(fake.command_update("/about", chat_id=506, user_id=506))
        [apology] = await fake.wait_for("sendMessage", chat_id=506)
    assert "something went wrong" in apology["text"]
    assert "error while handling an update" in caplog.text


async def test_the_token_never_reaches_the_log(fake: FakeBotApi, tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    settings = e2e_settings(fake, tmp_path, log_level="DEBUG")
    configure_logging("DEBUG", [settings.telegram_token])
    try:
        async with running_bot(fake, settings):
            fake.push_update(fake.command_update("/sector finance", chat_id=507, user_id=507))
            await fake.wait_for("sendMessage", chat_id=507)
    finally:
        logging.getLogger().handlers.clear()
    captured = capfd.readouterr()
    assert captured.err, "expected DEBUG log output"
    assert fake.token not in captured.err and fake.token.split(":")[1] not in captured.err
    assert fake.token not in json.dumps(fake.sent_messages())


async def test_one_chat_keeps_its_order_while_other_chats_go_ahead(fake: FakeBotApi, tmp_path: Path) -> None:
    fake.add_delay(method="sendMessage", chat_id=508, delay=0.5, times=1)  # the first answer to 508 is slow
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        for text in ("/sector finance", "/sector healthcare", "/about"):
            fake.push_update(fake.command_update(text, chat_id=508, user_id=508))
        fake.push_update(fake.command_update("/latest 1", chat_id=509, user_id=509))
        await fake.wait_for("sendMessage", count=3, chat_id=508)
    replies = texts(fake, 508)
    assert "AI in finance" in replies[0] and "Healthcare" in replies[1] and "HK AI Pulse" in replies[2]
    order = [int(r.params["chat_id"]) for r in fake.requests if r.method == "sendMessage" and r.ok]
    second_to_508 = [i for i, chat in enumerate(order) if chat == 508][1]
    assert order.index(509) < second_to_508  # 509 was answered while 508's first answer was still on its way


async def test_chinese_and_simplified_searches_find_what_the_english_search_finds(fake: FakeBotApi,
                                                                                  tmp_path: Path) -> None:
    links: dict[str, list[str]] = {}
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        for chat_id, query in enumerate(("hkust", "香港科技大學", "香港科技大学", "ai finance", "人工智能 金融"), 601):
            fake.push_update(fake.command_update(f"/search {query}", chat_id=chat_id, user_id=chat_id))
            [sent] = await fake.wait_for("sendMessage", chat_id=chat_id)
            assert sent["parse_mode"] == "HTML" and "Nothing matches" not in sent["text"]
            links[query] = re.findall(r'href="([^"]+)"', sent["text"])
    assert links["香港科技大學"] == links["香港科技大学"]
    assert links["hkust"][0] in links["香港科技大學"][:3]
    assert set(links["ai finance"][:3]) & set(links["人工智能 金融"][:3])
    _only_real_calls(fake)
