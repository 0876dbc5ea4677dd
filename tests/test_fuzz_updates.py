"""Fuzzing the whole update path: random Updates into the real python-telegram-bot Application.

Hypothesis draws updates (messages and commands with random arguments, button presses with random data, documents,
channel posts, edited messages, my_chat_member and more, tests/update_shapes.py); each goes through the real PTB
`Application.process_update` (not over HTTP, to keep thousands fast) while every call the bot makes goes over HTTP
to the Bot API double, which checks it against the Bot API spec. Nothing may reach PTB's error handler, nothing
may be logged as an error, and every call must be a valid Bot API call.

CI runs a small number of examples; the big run is a command (each example is 1-4 updates):

    FUZZ_EXAMPLES=5000 python3 -m pytest tests/test_fuzz_updates.py -s   # about 11,500 updates, 2.5 minutes
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from doubles import FakeBotApi, RecordedRequest, missing_required_fields
from harness import CONTENT, FakeClock, e2e_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import Update
from telegram.ext import Application, ContextTypes
from update_shapes import CHATS, GROUP_ADMINS, Incoming, Membership, Post, Press, Upload, incoming

from bot.app import attach_telegram, build_application, opened

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
# Answers that depend on the state of a chat, not on the call: a button on a message the double never saw (the bot
# then sends a new message instead), or an edit to what the message already says. Every other failure is a bad call.
STATE_ERRORS = ("Bad Request: message to edit not found", "Bad Request: message is not modified")


@dataclass
class FuzzedBot:
    """The real Application over a real SQLite store, and what went wrong while it handled updates."""

    fake: FakeBotApi
    application: Application  # type: ignore[type-arg]
    errors: list[BaseException] = field(default_factory=list)
    updates: int = 0
    next_message_id: int = 1
    state_errors: int = 0


@pytest.fixture
async def fuzzed(fake: FakeBotApi, tmp_path: Path) -> AsyncIterator[FuzzedBot]:
    """The bot started against the double (getMe, command menus) but fed by hand instead of polling."""
    content = tmp_path / "content"
    shutil.copytree(CONTENT, content)  # admins' uploads land in this copy
    settings = e2e_settings(fake, tmp_path, content_dir=content, content_history_dir=tmp_path / "history",
                            watch_content=False)
    for chat in CHATS.values():
        fake.register_chat(chat["id"], chat["type"], title=chat["title"], is_forum=bool(chat.get("is_forum")))
    for chat_id, admins in GROUP_ADMINS.items():
        fake.set_chat_administrators(chat_id, admins)
    async with opened(settings, FakeClock()) as runtime:
        application = build_application(settings)
        async with application:
            await attach_telegram(runtime, application)
            bot = FuzzedBot(fake, application)

            async def record(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
                assert context.error is not None
                bot.errors.append(context.error)

            application.add_error_handler(record)
            yield bot
    # Shown with -s: what the run covered.
    calls = Counter(request.method for request in fake.requests)
    print(f"\nfuzz: {bot.updates} updates; the bot made {len(fake.requests)} Bot API calls "
          f"({', '.join(f'{method} {count}' for method, count in calls.most_common())}); "
          f"{bot.state_errors} refused for the state of a chat (message to edit not found / not modified)")


def state_error(request: RecordedRequest) -> bool:
    """The call was refused for the state of the chat, not for what it asked."""
    return request.error is not None and request.error.startswith(STATE_ERRORS)


def bad_calls(requests: list[RecordedRequest]) -> list[str]:
    """The calls the Bot API would refuse: unknown methods or fields, or any error but a chat's state."""
    bad = []
    for request in requests:
        if request.status == 404 or request.unknown_params:
            bad.append(f"{request.method}: not in the Bot API ({request.unknown_params or 'unknown method'})")
        elif not request.ok and not state_error(request):
            bad.append(f"{request.method} {request.params}: {request.status} {request.error}")
    return bad


async def feed(bot: FuzzedBot, arriving: Incoming) -> Update:
    """Build the update against the double and let the Application handle it, as polling or the webhook would."""
    data = {"update_id": 10_000 + bot.updates, **arriving.to_json(bot.fake, bot.next_message_id)}
    bot.updates += 1
    bot.next_message_id += 1
    assert not missing_required_fields("Update", data), missing_required_fields("Update", data)
    update = Update.de_json(data, bot.application.bot)
    await bot.application.process_update(update)
    return update


@settings(max_examples=EXAMPLES)
@given(batch=st.lists(incoming, min_size=1, max_size=4))
async def test_random_updates_never_fail_and_make_only_valid_calls(
        fuzzed: FuzzedBot, caplog: pytest.LogCaptureFixture, batch: list[Incoming]) -> None:
    caplog.clear()
    caplog.set_level(logging.WARNING)
    fuzzed.errors.clear()
    first = len(fuzzed.fake.requests)
    for arriving in batch:
        await feed(fuzzed, arriving)
    assert not fuzzed.errors, f"reached PTB's error handler: {fuzzed.errors!r}"
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, errors
    made = fuzzed.fake.requests[first:]
    assert all(request.status != 0 for request in made), "a call was still in flight after its update"
    assert not bad_calls(made), bad_calls(made)
    fuzzed.state_errors += sum(1 for request in made if state_error(request))


async def test_the_fuzzer_reaches_every_kind_of_update_and_the_bot_answers(fuzzed: FuzzedBot) -> None:
    """The shapes are real: commands get answers, buttons are answered, an admin's upload is applied."""
    await feed(fuzzed, Post("message", 5, 5, {"text": "/sector finance"}))
    await feed(fuzzed, Post("channel_post", "channel", None, {"text": "/subscribe"}))
    await feed(fuzzed, Post("message", "forum", 6, {"text": "/sector@hk_ai_pulse_bot health"}, thread_id=3))
    await feed(fuzzed, Press(5, 5, "sector healthcare", pick=1, on_a_button=False))
    await feed(fuzzed, Press(5, 5, "/", pick=2, on_a_button=False))
    robotics = (Path(__file__).parent / "fixtures" / "robotics.yaml").read_bytes()
    await feed(fuzzed, Upload(900, 900, "robotics.yaml", robotics))
    await feed(fuzzed, Membership("group", 6, "left", "member"))
    await feed(fuzzed, Post("edited_message", 6, 6, {"text": "/"}))
    assert not fuzzed.errors
    texts = [str(request.params.get("text")) for request in fuzzed.fake.requests if request.method == "sendMessage"]
    assert any("AI in finance" in text for text in texts)
    assert any("Subscribed" in text or "subscri" in text.lower() for text in texts)
    assert any(request.method == "editMessageText" and "Healthcare" in str(request.params.get("text"))
               for request in fuzzed.fake.requests)
    assert any("Applied" in text for text in texts)
    assert fuzzed.fake.calls("answerCallbackQuery") and not bad_calls(fuzzed.fake.requests)


async def test_an_update_that_fails_gets_the_apology_in_its_topic_and_the_next_one_is_answered(
        fuzzed: FuzzedBot, caplog: pytest.LogCaptureFixture) -> None:
    forum = CHATS["forum"]["id"]
    fuzzed.fake.add_fault(method="sendMessage", chat_id=forum, error_code=400, description="Bad Request: oops",
                          times=1)
    await feed(fuzzed, Post("message", "forum", 6, {"text": "/sector finance"}, thread_id=3))
    await feed(fuzzed, Post("message", "forum", 6, {"text": "/about"}, thread_id=3))
    [failed] = fuzzed.errors
    assert "oops" in str(failed).lower()
    apology, answer = fuzzed.fake.sent_messages(forum)
    assert "something went wrong" in apology["text"] and apology["message_thread_id"] == 3
    assert "HK AI Pulse" in answer["text"] and answer["message_thread_id"] == 3
    [logged] = [record for record in caplog.records if record.getMessage() == "error while handling an update"]
    assert logged.exc_info is not None  # with its traceback
