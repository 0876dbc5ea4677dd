"""Numbers users type reach the store and Telegram only when they are in range; anything else gets a clear answer."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from replies import html

from bot.console import Console
from bot.content import load_catalogue
from bot.core.addresses import telegram
from bot.core.commands import dispatch
from bot.core.messages import Chat, ChatKind, Request, User
from bot.core.numbers import CHAT_ID_LIMIT, chat_id, whole_number
from bot.core.services import Services, StaticContent
from bot.store import SqlStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SHIPPED = load_catalogue(Path(__file__).parent.parent / "content", now=NOW)
ADMIN = User(900, "Admin")
HUGE = "99999999999999999999"


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store


def services_with(store: SqlStore | None = None) -> Services:
    return Services(content=StaticContent(SHIPPED), clock=lambda: NOW, subscriptions=store,
                    admin_ids=frozenset({ADMIN.id}))


@pytest.mark.parametrize("typed", [HUGE, "-" + HUGE, "²", "1_000", " 5", "0x10", "1e3", "", "9" * 5000])
def test_only_plain_ascii_numbers_in_range_are_read(typed: str) -> None:
    assert whole_number(typed, 1, 20) is None


def test_whole_numbers_and_chat_ids_in_range() -> None:
    assert whole_number("20", 1, 20) == 20 and whole_number("+3", 1, 20) == 3 and whole_number("21", 1, 20) is None
    assert chat_id("-1001234567890") == -1001234567890 and chat_id("123456789") == 123456789
    assert chat_id(str(CHAT_ID_LIMIT)) is None and chat_id("0") is None and chat_id(str(2**63)) is None


@pytest.mark.parametrize("typed", [HUGE, "-" + HUGE, str(2**63), "²", "12abc"])
async def test_preview_of_an_impossible_chat_id_says_so(store: SqlStore, typed: str) -> None:
    reply = await dispatch(Request("preview", (typed,), Chat(telegram(900)), ADMIN), services_with(store))
    assert f"“{typed}” is not a chat id" in html(reply) and "-1001234567890" in html(reply)


async def test_preview_of_a_real_chat_id_still_works(store: SqlStore) -> None:
    reply = await dispatch(Request("preview", ("-1001234567890",), Chat(telegram(900)), ADMIN), services_with(store))
    assert html(reply) == "Chat telegram:-1001234567890 has no subscription."


@pytest.mark.parametrize("typed", [HUGE, "²", "0", "21", "-1"])
async def test_latest_with_an_impossible_count_says_what_works(typed: str) -> None:
    reply = await dispatch(Request("latest", (typed,), Chat(telegram(5), ChatKind.PRIVATE), User(5)), services_with())
    assert f"“{typed}” is not a count" in html(reply) and "from 1 to 20" in html(reply)


async def test_console_choice_with_a_digit_that_is_not_ascii_is_refused_politely() -> None:
    console = Console(services_with(), io.StringIO(), io.StringIO())
    await console.handle_line("/sectors")
    assert "Choose a number from 1 to" in (await console.handle_line("²") or "")
    assert "Choose a number from 1 to" in (await console.handle_line(HUGE) or "")
