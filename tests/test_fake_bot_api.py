"""Tests for the FakeBotApi test double, driven through the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from doubles import FILE_DOWNLOAD, FakeBotApi, missing_required_fields, spec_return_type, spec_version
from telegram import (
    Bot,
    ChatMemberAdministrator,
    ChatMemberOwner,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

GROUP_ID = -1001234567890


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt into PTB's timedelta periods; otherwise RetryAfter emits a PTBDeprecationWarning (-> error)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def bot(fake: FakeBotApi) -> AsyncIterator[Bot]:
    """A real PTB Bot talking to the fake server."""
    async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as tg_bot:
        yield tg_bot


async def raw_post(fake: FakeBotApi, method: str, *, token: str | None = None, **kwargs: Any) -> tuple[int, Any]:
    """POST to the fake without PTB; return (HTTP status, decoded JSON body)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.api_url}/bot{token or fake.token}/{method}", **kwargs) as resp,
    ):
        return resp.status, await resp.json()


def keyboard(*buttons: InlineKeyboardButton) -> InlineKeyboardMarkup:
    """A one-row inline keyboard."""
    return InlineKeyboardMarkup([list(buttons)])


# ------------------------------------------------------------------------------------ basics


async def test_spec_is_loaded() -> None:
    assert spec_version() == "Bot API 10.1"
    assert spec_return_type("sendMessage") == "Message"
    assert spec_return_type("getupdates") == "Array of Update"


async def test_get_me_parsed_by_ptb(fake: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == fake.bot_id
    assert me.is_bot is True
    assert me.username == "hk_ai_pulse_bot"
    assert me.can_join_groups is True
    assert me.supports_inline_queries is False
    assert me.can_connect_to_business is False
    assert me.has_main_web_app is False
    assert bot.username == "hk_ai_pulse_bot"
    assert [r.method for r in fake.requests] == ["getMe", "getMe"]  # initialize + explicit call
    assert all(r.ok and r.unknown_params == [] for r in fake.requests)


async def test_send_message_html_and_keyboard(fake: FakeBotApi, bot: Bot) -> None:
    markup = keyboard(
        InlineKeyboardButton("More", callback_data="more:1"),
        InlineKeyboardButton("Site", url="https://example.com/hk-ai"),
    )
    msg = await bot.send_message(
        chat_id=1001,
        text="<b>Hello</b> &amp; <i>welcome</i> 🇭🇰 <a href='https://x.hk'>link</a>",
        parse_mode=ParseMode.HTML,
        reply_markup=markup,
    )
    assert msg.text == "Hello & welcome 🇭🇰 link"
    assert msg.message_id == 1
    assert msg.chat.id == 1001
    assert msg.chat.type == "private"
    assert msg.from_user is not None
    assert msg.from_user.id == fake.bot_id
    assert msg.reply_markup == markup
    assert isinstance(msg.date, dtm.datetime)
    assert [(e.type, e.offset, e.length) for e in msg.entities] == [
        (MessageEntity.BOLD, 0, 5),
        (MessageEntity.ITALIC, 8, 7),
        (MessageEntity.TEXT_LINK, 21, 4),  # the flag emoji is 4 UTF-16 code units
    ]
    assert msg.entities[2].url == "https://x.hk"

    (sent,) = fake.sent_messages(1001)
    assert sent["chat_id"] == 1001  # form string converted to int
    assert sent["parse_mode"] == "HTML"
    assert sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "more:1"  # JSON decoded
    assert fake.requests[-1].unknown_params == []

    second = await bot.send_message(chat_id=1001, text="again", message_thread_id=7)
    assert second.message_id == 2
    assert second.message_thread_id == 7
    assert fake.sent_messages(2002) == []
    assert len(fake.calls("sendmessage")) == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<b>unclosed", "Can't find end tag"),
        ("<foo>x</foo>", 'Unsupported start tag "foo"'),
        ("<b><i>x</b></i>", "Unmatched end tag"),
        ("x</b>", "Unexpected end tag"),
        ("Tom & Jerry", "must be escaped"),
        ("AT&T", "must be escaped"),
        ("1 < 2", "Unsupported start tag"),
        ("<span>x</span>", "tg-spoiler"),
        ("<a>x</a>", "href"),
        ("line<br/>break", "Unsupported start tag"),
    ],
)
async def test_bad_html_is_rejected(bot: Bot, text: str, fragment: str) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities") as info:
        await bot.send_message(chat_id=1001, text=text, parse_mode=ParseMode.HTML)
    assert fragment.lower() in info.value.message.lower()  # PTB capitalize()s the description


async def test_html_edge_cases(fake: FakeBotApi, bot: Bot) -> None:
    msg = await bot.send_message(
        chat_id=1001,
        text='&lt;tag&gt; &#128512; &quot;q&quot; <span class="tg-spoiler">s</span> '
        '<pre><code class="language-python">x = 1</code></pre><blockquote expandable>q</blockquote>',
        parse_mode=ParseMode.HTML,
    )
    assert msg.text == '<tag> 😀 "q" s x = 1q'
    types = [(e.type, e.language) for e in msg.entities]
    assert types == [("spoiler", None), ("pre", "python"), ("expandable_blockquote", None)]

    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(chat_id=1001, text="<b> </b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(chat_id=1001, text="<b>x</b>" + "y" * 4096, parse_mode=ParseMode.HTML)
    ok = await bot.send_message(chat_id=1001, text="<b>x</b>" + "y" * 4095, parse_mode=ParseMode.HTML)
    assert ok.text is not None
    assert len(ok.text) == 4096

    fake.strict_html_ampersand = False  # the real server keeps a bare '&'
    relaxed = await bot.send_message(chat_id=1001, text="AT&T & co", parse_mode=ParseMode.HTML)
    assert relaxed.text == "AT&T & co"


async def test_callback_data_limits(fake: FakeBotApi, bot: Bot) -> None:
    await bot.send_message(
        chat_id=1001, text="ok", reply_markup=keyboard(InlineKeyboardButton("a", callback_data="x" * 64))
    )
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(
            chat_id=1001, text="too long", reply_markup=keyboard(InlineKeyboardButton("a", callback_data="x" * 65))
        )
    # multi-byte characters count in bytes: 22 * 3 = 66 bytes
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(
            chat_id=1001, text="too long", reply_markup=keyboard(InlineKeyboardButton("a", callback_data="港" * 22))
        )
    status, body = await raw_post(
        fake,
        "sendMessage",
        json={"chat_id": 1001, "text": "t", "reply_markup": {"inline_keyboard": [[{"text": "plain"}]]}},
    )
    assert status == 400
    assert "Text buttons are unallowed" in body["description"]
    assert len(fake.sent_messages()) == 1


async def test_force_reply_shapes_are_checked_against_the_spec(fake: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(chat_id=1001, text="Your words?",
                                  reply_markup=ForceReply(selective=True, input_field_placeholder="Title"))
    assert sent.reply_markup is None  # a Message echoes only an inline keyboard
    assert fake.sent_messages()[0]["reply_markup"] == {"force_reply": True, "selective": True,
                                                       "input_field_placeholder": "Title"}
    bad = {
        "placeholder too long": {"force_reply": True, "input_field_placeholder": "x" * 65},
        "placeholder empty": {"force_reply": True, "input_field_placeholder": ""},
        "force_reply false": {"force_reply": False},
        "selective not a Boolean": {"force_reply": True, "selective": "yes"},
        "unknown field": {"force_reply": True, "selectiv": True},
    }
    for case, markup in bad.items():
        status, _ = await raw_post(fake, "sendMessage", json={"chat_id": 1001, "text": "t", "reply_markup": markup})
        assert status == 400, case
    with pytest.raises(BadRequest, match="inline keyboard markup"):
        await bot.edit_message_text("Edited", chat_id=1001, message_id=sent.message_id,
                                    reply_markup=ForceReply())  # type: ignore[arg-type]
    assert len(fake.sent_messages()) == 1


async def test_a_reply_update_carries_the_message_it_replies_to(fake: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(chat_id=GROUP_ID, text="Your words?", reply_markup=ForceReply(selective=True))
    update = Update.de_json({"update_id": 1, **fake.reply_update(
        "Mine", reply_to_message_id=sent.message_id, chat_id=GROUP_ID, user_id=900, chat_type="supergroup")}, bot)
    assert update.message is not None and update.message.reply_to_message is not None
    assert update.message.reply_to_message.message_id == sent.message_id
    assert update.message.reply_to_message.from_user is not None and update.message.reply_to_message.from_user.is_bot
    with pytest.raises(ValueError, match="no message"):
        fake.reply_update("Mine", reply_to_message_id=sent.message_id + 99, chat_id=GROUP_ID)


async def test_unknown_method_and_case_insensitivity(fake: FakeBotApi) -> None:
    status, body = await raw_post(fake, "sendTelepathicMessage", data={"chat_id": "1"})
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}

    status, body = await raw_post(fake, "GETME")
    assert status == 200
    assert body["ok"] is True
    assert body["result"]["username"] == "hk_ai_pulse_bot"
    assert [(r.method, r.status) for r in fake.requests] == [("sendTelepathicMessage", 404), ("getMe", 200)]

    async with aiohttp.ClientSession() as session, session.get(f"{fake.api_url}/nowhere") as resp:
        assert resp.status == 404
        assert (await resp.json())["description"] == "Not Found"


async def test_missing_and_unknown_params(fake: FakeBotApi) -> None:
    status, body = await raw_post(fake, "sendMessage", data={"text": "hi"})
    assert (status, body["error_code"]) == (400, 400)
    assert body["description"] == 'Bad Request: parameter "chat_id" is required'

    status, body = await raw_post(fake, "sendMessage", data={"chat_id": "5"})
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")

    status, body = await raw_post(
        fake, "sendMessage", json={"chat_id": 5, "text": "hi", "disable_notification": True, "colour": "red"}
    )
    assert status == 200
    assert body["result"]["chat"] == {"id": 5, "type": "private", "first_name": "User5"}
    assert fake.requests[-1].unknown_params == ["colour"]

    # query string + form booleans / ints are converted using the spec types
    status, body = await raw_post(
        fake, "sendMessage?chat_id=-100777&text=q", data={"disable_notification": "true", "message_thread_id": "3"}
    )
    assert status == 200
    params = fake.requests[-1].params
    assert params["chat_id"] == -100777
    assert params["disable_notification"] is True
    assert params["message_thread_id"] == 3
    assert body["result"]["chat"]["type"] == "supergroup"


async def test_wrong_token(fake: FakeBotApi) -> None:
    wrong = Bot("654321:WRONG-TOKEN", base_url=fake.base_url, base_file_url=fake.base_file_url)
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with wrong:
            pass  # pragma: no cover
    assert [(r.method, r.status, r.error) for r in fake.requests] == [("getMe", 401, "Unauthorized")]
    status, body = await raw_post(fake, "getMe", token="654321:WRONG-TOKEN")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})


# ------------------------------------------------------------------------------------ faults


async def test_fault_retry_after(fake: FakeBotApi, bot: Bot) -> None:
    fake.add_fault(
        error_code=429, description="Too Many Requests: retry after 3", parameters={"retry_after": 3}, times=1
    )
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(chat_id=1001, text="first")
    assert info.value.retry_after == dtm.timedelta(seconds=3)
    msg = await bot.send_message(chat_id=1001, text="second")  # rule consumed
    assert msg.message_id == 1
    assert [r.status for r in fake.requests if r.method == "sendMessage"] == [429, 200]
    assert [m["text"] for m in fake.sent_messages()] == ["second"]


async def test_fault_forbidden_per_chat(fake: FakeBotApi, bot: Bot) -> None:
    fake.add_fault(chat_id=2002, error_code=403, description="Forbidden: bot was blocked by the user")
    for _ in range(2):  # times=None -> forever
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(chat_id=2002, text="hi")
    await bot.send_message(chat_id=1001, text="other chat is fine")
    fake.block_chat(3003)
    with pytest.raises(Forbidden):
        await bot.send_chat_action(chat_id=3003, action="typing")


async def test_fault_chat_migrated(fake: FakeBotApi, bot: Bot) -> None:
    fake.register_chat(-4001, "group", title="HK AI old")
    fake.migrate_chat(-4001, -1004001)
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(chat_id=-4001, text="hi")
    assert info.value.new_chat_id == -1004001
    msg = await bot.send_message(chat_id=info.value.new_chat_id, text="hi")
    assert msg.chat.type == "supergroup"
    assert msg.chat.title == "HK AI old"
    failed = fake.requests[-2]
    assert (failed.status, failed.error) == (400, "Bad Request: group chat was upgraded to a supergroup chat")


async def test_fault_delay_and_latency(fake: FakeBotApi, bot: Bot) -> None:
    fake.add_delay(delay=0.2, times=1)
    start = time.monotonic()
    await bot.send_message(chat_id=1001, text="slow")
    assert time.monotonic() - start >= 0.2
    fake.latency = 0.05
    start = time.monotonic()
    await asyncio.gather(*(bot.send_message(chat_id=1001, text=f"m{i}") for i in range(20)))
    elapsed = time.monotonic() - start
    assert 0.05 <= elapsed < 1.0  # concurrent, not serialised
    assert fake.max_rate(window=1.0) == 21
    assert len(fake.send_timestamps()) == 21


async def test_random_faults_are_deterministic() -> None:
    patterns = []
    for _ in range(2):
        async with FakeBotApi(seed=42) as server:
            server.set_random_faults(rate_429=0.3, retry_after=2, rate_500=0.1)
            statuses = []
            for i in range(30):
                status, _ = await raw_post(server, "sendMessage", data={"chat_id": "1", "text": str(i)})
                statuses.append(status)
            patterns.append(statuses)
    assert patterns[0] == patterns[1]
    assert {429, 500, 200} == set(patterns[0])


# ------------------------------------------------------------------------------------ updates


async def test_get_updates_long_poll_and_offset(fake: FakeBotApi, bot: Bot) -> None:
    async def push_later() -> int:
        await asyncio.sleep(0.2)
        return fake.push_update(fake.command_update("/digest@hk_ai_pulse_bot weekly"))

    start = time.monotonic()
    pusher = asyncio.create_task(push_later())
    updates = await bot.get_updates(timeout=dtm.timedelta(seconds=5))
    update_id = await pusher
    assert 0.15 < time.monotonic() - start < 2.0  # woken by the push, not by the timeout
    (update,) = updates
    assert update.update_id == update_id
    assert update.message is not None
    assert update.message.text == "/digest@hk_ai_pulse_bot weekly"
    assert update.message.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 23),)
    assert update.message.parse_entities([MessageEntity.BOT_COMMAND]).popitem()[1] == "/digest@hk_ai_pulse_bot"

    # not confirmed yet -> delivered again; confirmed with offset -> gone
    assert [u.update_id for u in await bot.get_updates()] == [update_id]
    assert await bot.get_updates(offset=update_id + 1) == ()
    assert fake.pending_updates == []
    assert (await bot.get_webhook_info()).pending_update_count == 0

    start = time.monotonic()
    assert await bot.get_updates(timeout=dtm.timedelta(seconds=1)) == ()
    assert 0.9 < time.monotonic() - start < 2.0  # waited for the timeout


async def test_get_updates_limit_and_allowed_updates(fake: FakeBotApi, bot: Bot) -> None:
    ids = [fake.push_update(fake.text_update(f"t{i}")) for i in range(3)]
    await bot.send_message(
        chat_id=1001, text="menu", reply_markup=keyboard(InlineKeyboardButton("x", callback_data="x"))
    )
    cb_id = fake.push_update(fake.callback_update("x", message_id=4))
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    only_cb = await bot.get_updates(allowed_updates=["callback_query"])
    assert [u.update_id for u in only_cb] == [cb_id]
    query = only_cb[0].callback_query
    assert query is not None
    assert query.data == "x"
    assert isinstance(query.message, Message)
    assert query.message.message_id == 4
    assert query.message.from_user is not None
    assert query.message.from_user.id == fake.bot_id
    assert await query.answer("done") is True
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query("nonexistent")


async def test_webhook_info_and_conflict(fake: FakeBotApi, bot: Bot) -> None:
    fake.push_update(fake.text_update("hello"))
    info = await bot.get_webhook_info()
    assert (info.url, info.has_custom_certificate, info.pending_update_count) == ("", False, 1)
    assert await bot.set_webhook("https://hk-ai-pulse.example/hook", allowed_updates=["message"])
    info = await bot.get_webhook_info()
    assert info.url == "https://hk-ai-pulse.example/hook"
    assert info.allowed_updates == ("message",)
    with pytest.raises(Exception, match="webhook is active") as exc_info:
        await bot.get_updates()
    assert type(exc_info.value).__name__ == "Conflict"
    assert await bot.delete_webhook(drop_pending_updates=True)
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count) == ("", 0)


async def test_ptb_application_polling_end_to_end(fake: FakeBotApi) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, "<b>Welcome</b> to HK AI Pulse", parse_mode="HTML")

    app = ApplicationBuilder().token(fake.token).base_url(fake.base_url).base_file_url(fake.base_file_url).build()
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=dtm.timedelta(seconds=2))
        fake.push_update(fake.command_update("/start", chat_id=42, user_id=42))
        (sent,) = await fake.wait_for("sendMessage", chat_id=42, timeout=3)
        assert sent["text"] == "<b>Welcome</b> to HK AI Pulse"
        await app.updater.stop()
        await app.stop()
    assert fake.pending_updates == []  # PTB confirmed the update on shutdown
    assert not [r for r in fake.requests if r.status not in (200, 499)]


# ------------------------------------------------------------------------------------ chats & files


async def test_chat_administrators_and_members(fake: FakeBotApi, bot: Bot) -> None:
    fake.register_chat(GROUP_ID, "supergroup", title="HK AI Builders", is_forum=True)
    fake.set_chat_administrators(GROUP_ID, [2001, 2002], owner_id=2000)
    admins = await bot.get_chat_administrators(GROUP_ID)
    assert [type(a) for a in admins] == [ChatMemberOwner, ChatMemberAdministrator, ChatMemberAdministrator]
    assert [a.user.id for a in admins] == [2000, 2001, 2002]
    admin = admins[1]
    assert isinstance(admin, ChatMemberAdministrator)
    assert admin.can_delete_messages is True
    assert admin.can_promote_members is False
    assert admin.can_manage_topics is True

    member = await bot.get_chat_member(GROUP_ID, 2001)
    assert member.status == "administrator"
    member = await bot.get_chat_member(GROUP_ID, 9999)
    assert member.status == "member"

    chat = await bot.get_chat(GROUP_ID)
    assert (chat.id, chat.type, chat.title, chat.is_forum) == (GROUP_ID, "supergroup", "HK AI Builders", True)
    assert chat.max_reaction_count == 11

    with pytest.raises(BadRequest, match="no administrators in the private chat"):
        await bot.get_chat_administrators(1001)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.get_chat("@unknown_channel")


async def test_get_file_and_download(fake: FakeBotApi, bot: Bot) -> None:
    content = b"feeds:\n  - url: https://example.hk/rss\n"
    update = fake.document_update("feeds.yaml", content)
    document = update["message"]["document"]
    assert document["file_name"] == "feeds.yaml"
    assert document["mime_type"] == "application/x-yaml"
    tg_file = await bot.get_file(document["file_id"])
    assert tg_file.file_size == len(content)
    assert bytes(await tg_file.download_as_bytearray()) == content

    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("nope")

    sent = await bot.send_document(
        1001, document=b"a,b\n1,2\n", filename="report.csv", caption="<i>weekly</i>", parse_mode="HTML"
    )
    assert sent.document is not None
    assert sent.document.file_name == "report.csv"
    assert sent.caption == "weekly"
    assert fake.calls("sendDocument")[0]["document"] == b"a,b\n1,2\n"
    again = await bot.get_file(sent.document.file_id)
    assert bytes(await again.download_as_bytearray()) == b"a,b\n1,2\n"
    assert [r.method for r in fake.requests].count(FILE_DOWNLOAD) == 2


async def test_edit_message_text(fake: FakeBotApi, bot: Bot) -> None:
    msg = await bot.send_message(1001, "v1", reply_markup=keyboard(InlineKeyboardButton("x", callback_data="x")))
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("v1", chat_id=1001, message_id=msg.message_id, reply_markup=msg.reply_markup)
    edited = await bot.edit_message_text("<b>v2</b>", chat_id=1001, message_id=msg.message_id, parse_mode="HTML")
    assert isinstance(edited, Message)
    assert edited.text == "v2"
    assert edited.reply_markup is None  # editing without reply_markup removes the keyboard
    assert edited.edit_date is not None
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=1001, message_id=999)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=2002, message_id=msg.message_id)
    stored = fake.stored_message(1001, msg.message_id)
    assert stored is not None
    assert stored["text"] == "v2"


async def test_commands_menu_and_unimplemented(fake: FakeBotApi, bot: Bot) -> None:
    assert await bot.set_my_commands([("digest", "Latest HK AI digest"), ("help", "Help")])
    commands = await bot.get_my_commands()
    assert [(c.command, c.description) for c in commands] == [("digest", "Latest HK AI digest"), ("help", "Help")]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Bad-Command", "x")])
    assert await bot.set_chat_menu_button()
    assert await bot.send_chat_action(1001, "typing")
    assert await bot.pin_chat_message(1001, 1)  # Boolean method -> true
    with pytest.raises(BadRequest, match=r"(?i)not implemented in FakeBotApi"):
        await bot.send_poll(1001, "q?", ["a", "b"])
    sent = fake.requests[-1]
    assert sent.method == "sendPoll"
    assert [o["text"] for o in sent.params["options"]] == ["a", "b"]  # JSON-decoded form field


# ------------------------------------------------------------------------------------ wait_for


async def test_wait_for(fake: FakeBotApi, bot: Bot) -> None:
    async def send_later() -> None:
        for i in range(3):
            await asyncio.sleep(0.02)
            await bot.send_message(1001 + i % 2, f"n{i}")

    task = asyncio.create_task(send_later())
    calls = await fake.wait_for("sendMessage", count=2, chat_id=1001, timeout=2)
    await task
    assert [c["text"] for c in calls] == ["n0", "n2"]
    fake.add_fault(error_code=400, description="Bad Request: chat not found", chat_id=5)
    with pytest.raises(BadRequest):
        await bot.send_message(5, "x")
    with pytest.raises(AssertionError, match=r"waiting for 1 ok sendMessage call\(s\) for chat_id=5; got 0") as info:
        await fake.wait_for("sendMessage", chat_id=5, timeout=0.1)
    assert "400 Bad Request: chat not found" in str(info.value)


# ------------------------------------------------------------------------------------ self-check


async def test_all_results_match_spec_required_fields(fake: FakeBotApi, bot: Bot) -> None:
    """Every result the double produced (and every pushed update) has all spec-required fields."""
    fake.register_chat(GROUP_ID, "supergroup", title="HK AI Builders")
    fake.register_chat(-100555, "channel", title="HK AI News")
    fake.set_chat_administrators(GROUP_ID, [2001], owner_id=2000)
    fake.set_chat_administrators(-100555, [2001], owner_id=2000)
    doc = fake.document_update("f.yaml", b"a: 1")
    await bot.get_me()
    msg = await bot.send_message(
        1001, "<b>x</b>", parse_mode="HTML", reply_markup=keyboard(InlineKeyboardButton("a", callback_data="a"))
    )
    updates = [
        fake.command_update("/start", chat_id=GROUP_ID, chat_type="supergroup", thread_id=3),
        fake.text_update("hello"),
        fake.callback_update("a", message_id=msg.message_id),
        doc,
        fake.inline_query_update("finance"),
    ]
    for update in updates:
        fake.push_update(update)
    pushed = await bot.get_updates()
    (query,) = [u.callback_query for u in pushed if u.callback_query]
    await query.answer()
    (inline,) = [u.inline_query for u in pushed if u.inline_query]
    await inline.answer([], next_offset="")
    await bot.send_message(-100555, "channel post")
    await bot.edit_message_reply_markup(
        chat_id=1001, message_id=msg.message_id, reply_markup=keyboard(InlineKeyboardButton("b", callback_data="b"))
    )
    await bot.edit_message_text("y", chat_id=1001, message_id=msg.message_id)
    sent_doc = await bot.send_document(1001, b"doc", filename="d.txt")
    await bot.delete_message(1001, sent_doc.message_id)
    await bot.get_file(doc["message"]["document"]["file_id"])
    await bot.send_chat_action(GROUP_ID, "typing")
    await bot.set_webhook("https://example.hk/hook")
    await bot.get_webhook_info()
    await bot.delete_webhook()
    await bot.get_webhook_info()
    await bot.get_chat_administrators(GROUP_ID)
    await bot.get_chat_administrators(-100555)
    await bot.get_chat_member(GROUP_ID, 7)
    for chat_id in (GROUP_ID, 1001, -100555):
        await bot.get_chat(chat_id)
    await bot.set_my_commands([("help", "Help")])
    await bot.get_my_commands()
    await bot.delete_my_commands()
    await bot.set_chat_menu_button(1001)
    await bot.get_chat_menu_button(1001)
    assert set(fake.implemented_methods) <= {r.method for r in fake.requests}

    checked: dict[str, int] = {}

    def check(type_name: str, obj: Any) -> None:
        assert missing_required_fields(type_name, obj) == [], (type_name, obj)
        checked[type_name] = checked.get(type_name, 0) + 1

    member_types = {
        "creator": "ChatMemberOwner",
        "administrator": "ChatMemberAdministrator",
        "member": "ChatMemberMember",
    }
    for rec in fake.requests:
        assert rec.ok, (rec.method, rec.error)
        if rec.method == FILE_DOWNLOAD or rec.result is True:
            continue
        rtype = spec_return_type(rec.method)
        item_type = rtype.removeprefix("Array of ").split(" | ")[0]
        items = rec.result if rtype.startswith("Array of ") else [rec.result]
        for item in items:
            if item_type == "ChatMember":
                check("ChatMember", item)
                check(member_types[item["status"]], item)
                continue
            check(item_type, item)
            if item_type == "Message":
                check("Chat", item["chat"])
                if "from" in item:
                    check("User", item["from"])
    assert checked["Update"] == len(updates)
    required = {"Message", "User", "Chat", "File", "ChatMemberAdministrator", "ChatMemberOwner", "WebhookInfo"}
    assert required | {"ChatFullInfo", "ChatMemberMember", "BotCommand", "MenuButton"} <= checked.keys()

    # the checker itself notices missing fields, also in nested objects
    assert missing_required_fields("ChatMemberAdministrator", {"status": "administrator", "user": {"id": 1}}) != []
    assert "chat" in missing_required_fields("Message", {"message_id": 1, "date": 0})
    assert missing_required_fields("Message", {"message_id": 1, "date": 0, "chat": {"id": 1}}) == ["chat.type"]


# ------------------------------------------------------------------------------------ inline queries


def _article(result_id: str = "a1", text: str = "<b>Card</b>", **extra: Any) -> dict[str, Any]:
    """A valid InlineQueryResultArticle, as JSON."""
    return {"type": "article", "id": result_id, "title": "Card",
            "input_message_content": {"message_text": text, "parse_mode": "HTML"}, **extra}


async def test_an_inline_query_is_answered_once_through_ptb(fake: FakeBotApi, bot: Bot) -> None:
    update = fake.inline_query_update("finance", offset="20", language_code="zh-hk")
    fake.push_update(update)
    [pushed] = await bot.get_updates(timeout=0)
    query = pushed.inline_query
    assert query is not None and query.query == "finance" and query.offset == "20"
    assert query.from_user.language_code == "zh-hk"
    assert await query.answer([], cache_time=0, next_offset="") is True
    assert fake.inline_answer(query.id) == {"inline_query_id": query.id, "results": [], "cache_time": 0,
                                            "next_offset": ""}
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer([])


@pytest.mark.parametrize(("answer", "fragment"), [
    ({"results": [_article(f"r{i}") for i in range(51)]}, "RESULTS_TOO_MUCH"),
    ({"results": [_article("x" * 65)]}, "results[0].id: 65 bytes, must be 1-64"),
    ({"results": [_article("")]}, "results[0].id: 0 bytes"),
    ({"results": [_article("a"), _article("a")]}, "RESULT_ID_DUPLICATE"),
    ({"results": [{"type": "article", "id": "a", "input_message_content": {"message_text": "x"}}]},
     "results[0].title: required"),
    ({"results": [_article(title=7)]}, "results[0].title: expected String"),
    ({"results": [_article(title=" ")]}, "RESULT_TITLE_EMPTY"),
    ({"results": [{"type": "poem", "id": "a"}]}, "not any InlineQueryResult"),
    ({"results": [_article(text="")]}, "message text is empty"),
    ({"results": [_article(text="x" * 4097)]}, "message is too long"),
    ({"results": [_article(text="<b>open")]}, "can't parse entities"),
    ({"results": [_article(reply_markup={"inline_keyboard": [[{"text": "Open", "url": "t.me/bot"}]]})]},
     "button URL 't.me/bot' is invalid"),
    ({"results": [], "next_offset": "9" * 65}, "NEXT_OFFSET_INVALID"),
    ({"results": [], "cache_time": -1}, "cache_time"),
    ({"results": [], "button": {"text": "Open", "start_parameter": "a b"}}, "start_parameter"),
])
async def test_an_inline_answer_outside_the_spec_is_refused(fake: FakeBotApi, answer: dict[str, Any],
                                                           fragment: str) -> None:
    update = fake.inline_query_update("x")
    query_id = update["inline_query"]["id"]
    status, body = await raw_post(fake, "answerInlineQuery", json={"inline_query_id": query_id, **answer})
    assert status == 400 and fragment in body["description"], body
    assert fake.inline_answer(query_id) is None  # still answerable


async def test_an_inline_answer_within_every_limit_is_accepted(fake: FakeBotApi) -> None:
    update = fake.inline_query_update("x")
    query_id = update["inline_query"]["id"]
    results = [_article(f"r{i}", "é" * (4096 if i < 2 else 40), description="d",
                        reply_markup={"inline_keyboard": [[{"text": "Open", "url": "https://t.me/b?start=a"}]]})
               for i in range(50)]
    status, body = await raw_post(fake, "answerInlineQuery", json={
        "inline_query_id": query_id, "results": results, "next_offset": "9" * 64, "cache_time": 0,
        "is_personal": True, "button": {"text": "Open", "start_parameter": "a-b_C9"}})
    assert (status, body) == (200, {"ok": True, "result": True})


async def test_an_unknown_inline_query_id_is_refused(fake: FakeBotApi) -> None:
    status, body = await raw_post(fake, "answerInlineQuery", json={"inline_query_id": "nope", "results": []})
    assert status == 400 and "query ID is invalid" in body["description"]
