"""Odd input never breaks the bot: every line and every button gets an answer or is ignored, never a traceback.

Property-based (hypothesis) over arbitrary text through the parser, the commands (with a real SQLite store) and
the console loop. `PROPERTY_EXAMPLES=2000 python3 -m pytest tests/test_odd_input.py` runs a longer search.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from doubles import parse_html
from harness import CONTENT, FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st
from odd_text import callback_data, typed_text
from replies import html

from bot.app import Runtime, opened
from bot.console import Console
from bot.core.addresses import telegram
from bot.core.commands import _likeness, dispatch
from bot.core.messages import SORRY, Chat, ChatKind, Reply, User, interpret
from bot.settings import Settings
from bot.tg.render import MESSAGE_LIMIT, split_message

ROOT = Path(__file__).parent.parent
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "150"))
BOT = "hk_ai_pulse_bot"
ADMIN = 900
CONSOLE_ADMIN = 1
CHATS = [Chat(telegram(5)), Chat(telegram(-1001), ChatKind.GROUP, "g"),
         Chat(telegram(-1002), ChatKind.SUPERGROUP, "s", thread_id=7),
         Chat(telegram(-1003), ChatKind.CHANNEL, "c")]
USERS = [User(5, "Ada"), User(ADMIN, "Admin"), User(-1003, "c"), None]


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    """The real core over a real SQLite file and a copy of the content (admins may upload, reload, roll back)."""
    content = tmp_path / "content"
    shutil.copytree(CONTENT, content)
    settings = Settings(content_dir=content, content_history_dir=tmp_path / "history", watch_content=False,
                        watch_sources=False,
                        database_url=f"sqlite:///{tmp_path}/bot.sqlite3",
                        admin_ids=frozenset({ADMIN, CONSOLE_ADMIN}))
    async with opened(settings, FakeClock()) as runtime:
        runtime.services = runtime.services_for(bot_username=BOT)
        yield runtime


def assert_sendable(reply: Reply) -> None:
    """Every part of the reply is a message Telegram accepts: valid HTML, 1-4096 characters of text."""
    for part in split_message(html(reply)):
        text, _ = parse_html(part)
        assert text.strip() and len(text) <= MESSAGE_LIMIT, f"{len(text)} characters"


def assert_no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not failures, "\n".join(record.getMessage() for record in failures)


# --------------------------------------------------------------------------------------------------- the parser


@pytest.mark.parametrize("text", ["/", "//", "/ ", " / ", "/@hk_ai_pulse_bot", "/@other_bot", "/ sector", "\x1c/",
                                  "\u200f", "/\u200f", "\u200f/\u200f@hk_ai_pulse_bot", "\x00"])
def test_a_slash_without_a_command_name_is_ignored_not_an_error(text: str) -> None:
    for chat in CHATS:
        assert interpret(text, chat, User(5), BOT) is None
        assert interpret(text, chat, User(5), BOT, from_button=True) is None


def test_invisible_marks_and_control_characters_do_not_hide_a_command() -> None:
    request = interpret("\u200f/\u200esector\x00 \u200f fin\u200bance\ud800 ", Chat(telegram(5)), None, BOT)
    assert request is not None
    assert request.command == "sector" and request.args == ("fin\u200bance\ufffd",)
    addressed = interpret("/Sector@HK_AI_Pulse_Bot finance", Chat(telegram(-1), ChatKind.GROUP), None, BOT)
    assert addressed is not None and addressed.command == "sector" and addressed.addressed


async def test_a_superscript_digit_is_not_a_count(runtime: Runtime) -> None:
    request = interpret("/latest ²", Chat(telegram(5)), User(5), BOT)
    assert request is not None
    reply = await dispatch(request, runtime.services)
    assert "/latest takes a number from 1 to 20" in html(reply)


@pytest.mark.parametrize("text", ["/broadcast", "/broadcast \u200f", "/preview 1x", "/quiet", "/settings tz"])
async def test_usage_answers_are_html_telegram_accepts(runtime: Runtime, text: str) -> None:
    request = interpret(text, Chat(telegram(ADMIN)), User(ADMIN), BOT)
    assert request is not None
    assert_sendable(await dispatch(request, runtime.services))


async def test_a_huge_sector_name_is_answered_without_comparing_it_letter_by_letter(runtime: Runtime) -> None:
    # difflib's full ratio of a 4,000-character name took a third of a CPU second against the section names: the
    # length check must rule every name out before that comparison (the cost itself is bench material, not a test's).
    huge = "fin " * 1000
    request = interpret("/sector " + huge, Chat(telegram(5)), User(5), BOT)  # a 4,000-character message
    assert request is not None
    reply = await dispatch(request, runtime.services)
    assert "No sector called" in html(reply)
    names = runtime.services.content.catalogue.by_name
    assert names and all(_likeness(" ".join(request.args).lower(), name) == 0.0 for name in names)


@settings(max_examples=EXAMPLES)
@given(text=typed_text, chat=st.sampled_from(CHATS), user=st.sampled_from(USERS))
async def test_any_text_gets_a_sendable_reply_or_none(runtime: Runtime, caplog: pytest.LogCaptureFixture,
                                                      text: str, chat: Chat, user: User | None) -> None:
    caplog.clear()
    request = interpret(text, chat, user, BOT)
    if request is not None:
        reply = await dispatch(request, runtime.services)
        assert isinstance(reply, Reply)
        assert_sendable(reply)
    assert_no_errors_logged(caplog)


@settings(max_examples=EXAMPLES)
@given(data=callback_data, chat=st.sampled_from(CHATS), user=st.sampled_from(USERS))
async def test_any_button_data_gets_a_sendable_reply_or_none(runtime: Runtime, caplog: pytest.LogCaptureFixture,
                                                             data: str, chat: Chat, user: User | None) -> None:
    caplog.clear()
    request = interpret(data, chat, user, BOT, from_button=True)
    if request is not None:
        reply = await dispatch(request, runtime.services)
        assert isinstance(reply, Reply)
        assert_sendable(reply)
    assert_no_errors_logged(caplog)


# --------------------------------------------------------------------------------------------------- the console

QUIT = {"/quit", "/exit", "quit", "exit"}
console_line = typed_text.map(lambda text: text.replace("\n", " ")).filter(lambda line: line.strip().lower()
                                                                           not in QUIT)


@settings(max_examples=max(EXAMPLES // 3, 10))
@given(lines=st.lists(console_line, min_size=1, max_size=6))
async def test_the_console_answers_any_lines_and_reaches_the_end(runtime: Runtime, caplog: pytest.LogCaptureFixture,
                                                                 lines: list[str]) -> None:
    caplog.clear()
    out = io.StringIO()
    await Console(runtime.services, io.StringIO("\n".join(lines) + "\n"), out).run()
    shown = out.getvalue()
    assert shown.endswith("Bye.\n") and "Traceback" not in shown
    assert shown.count("you> ") >= len(lines)  # every line was read and echoed: the loop never left early
    assert_no_errors_logged(caplog)


async def test_typing_a_number_the_buttons_do_not_have_is_explained(runtime: Runtime) -> None:
    session = Console(runtime.services, io.StringIO(), io.StringIO())
    await session.handle_line("/sectors")
    for number in ("9" * 5000, "0", "²"):  # '²' is a digit that int() refuses
        shown = await session.handle_line(number)
        assert shown is not None and shown.startswith("Choose a number from 1 to")


async def test_a_failing_line_is_apologised_for_and_logged_and_the_console_goes_on(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    session = Console(runtime.services, io.StringIO("/sectors\n/about\n"), out)
    await runtime.store.close()  # the database is gone: the quiet-hours lookup after each command fails
    await session.run()
    shown = out.getvalue()
    assert shown.count(SORRY) == 3  # the welcome, /sectors and /about
    assert shown.endswith("Bye.\n")
    [*_, last] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert last.exc_info is not None and "closed" in str(last.exc_info[1])


def test_undecodable_input_does_not_stop_python_m_bot(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"},
           "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3", "CONTENT_HISTORY_DIR": str(tmp_path / "history"),
           "PYTHONIOENCODING": "utf-8:strict"}  # as in a terminal with a UTF-8 locale: bad bytes are errors
    done = subprocess.run([sys.executable, "-m", "bot"], input=b"\xff\xfe/sector \xc3\n/\n/latest 1\n",
                          capture_output=True, cwd=ROOT, env=env, timeout=60, check=False)
    stdout, stderr = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, stderr
    assert "Latest updates" in stdout and stdout.rstrip().endswith("Bye."), stdout + stderr
    assert "Traceback" not in stderr, stderr
