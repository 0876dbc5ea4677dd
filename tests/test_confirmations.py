"""Destructive choices ask first: Unsubscribe buttons confirm, and a console number means only the list just shown."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from replies import html

from bot.console import CONSOLE_CHAT, Console
from bot.content import load_catalogue
from bot.core.addresses import ChatAddress, telegram
from bot.core.commands import dispatch
from bot.core.messages import CALLBACK_DATA_LIMIT, Chat, ChatKind, Reply, Request, User, interpret
from bot.core.services import Services, StaticContent
from bot.core.subscription_commands import UNSUBSCRIBE_CONFIRMED
from bot.store import SqlStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CATALOGUE = load_catalogue(Path(__file__).parent.parent / "content", now=NOW)
CHAT = Chat(telegram(7), ChatKind.PRIVATE)
CONSOLE_CHAT_ID = CONSOLE_CHAT.address


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store


def services(store: SqlStore) -> Services:
    return Services(content=StaticContent(CATALOGUE), clock=lambda: NOW, subscriptions=store)


async def say(services: Services, text: str, *, button: bool = False, chat: Chat = CHAT) -> Reply:
    request = interpret(text, chat, User(int(chat.address.id), "Ada"), from_button=button)
    assert request is not None
    return await dispatch(request, services)


def actions(reply: Reply) -> list[str]:
    return [button.action for row in reply.buttons for button in row]


async def active(store: SqlStore, chat: ChatAddress) -> bool:
    subscription = await store.get_subscription(chat, None)
    return subscription is not None and subscription.active


async def test_the_unsubscribe_button_asks_first_and_only_the_confirm_button_acts(store: SqlStore) -> None:
    bot = services(store)
    await say(bot, "/subscribe weekly fri 18:00 finance")
    shown = await say(bot, "/settings")
    assert "unsubscribe" in actions(shown)

    asked = await say(bot, "unsubscribe", button=True)
    assert await active(store, CHAT.address)
    assert "Unsubscribe this chat?" in html(asked) and asked.replace
    assert [b.label for row in asked.buttons for b in row] == ["Yes, unsubscribe", "Keep it"]
    assert actions(asked) == [UNSUBSCRIBE_CONFIRMED, "settings"]
    assert all(len(action.encode()) <= CALLBACK_DATA_LIMIT for action in actions(asked))

    kept = await say(bot, "settings", button=True)
    assert await active(store, CHAT.address) and "Your digest" in html(kept)

    done = await say(bot, UNSUBSCRIBE_CONFIRMED, button=True)
    assert not await active(store, CHAT.address)
    assert "Unsubscribed" in html(done)


async def test_a_stale_unsubscribe_button_cannot_act_without_confirming(store: SqlStore) -> None:
    bot = services(store)
    await say(bot, "/subscribe")
    for _ in range(3):  # pressed again and again on an old settings message
        await say(bot, "unsubscribe", button=True)
    assert await active(store, CHAT.address)


async def test_typed_unsubscribe_is_explicit_and_acts_at_once(store: SqlStore) -> None:
    bot = services(store)
    await say(bot, "/subscribe")
    assert "Unsubscribed" in html(await say(bot, "/unsubscribe"))
    assert not await active(store, CHAT.address)


async def test_a_stale_subscribe_button_does_not_reset_a_subscription_made_since(store: SqlStore) -> None:
    bot = services(store)
    await say(bot, "/subscribe weekly fri 18:00 finance")
    reply = await say(bot, "subscribe daily 09:00", button=True)  # from the message shown before subscribing
    subscription = await store.get_subscription(CHAT.address, None)
    assert subscription is not None and subscription.sections == ("finance",) and subscription.schedule.at.hour == 18
    assert "Already subscribed." in html(reply)


async def test_in_a_group_a_member_gets_a_refusal_not_a_confirmation(store: SqlStore) -> None:
    class OnlyUserOne:
        async def is_admin(self, chat: Chat, user: User | None) -> bool:
            return user is not None and user.id == 1

    bot = replace(services(store), chat_admins=OnlyUserOne())
    group = Chat(telegram(-100), ChatKind.SUPERGROUP)
    await dispatch(Request("subscribe", (), group, User(1)), bot)
    for action in ("unsubscribe", UNSUBSCRIBE_CONFIRMED):
        request = interpret(action, group, User(2), from_button=True)
        assert request is not None
        assert "Only this group's administrators" in html(await dispatch(request, bot))
    assert (await store.get_subscription(telegram(-100), None)).active  # type: ignore[union-attr]


def console(store: SqlStore) -> Console:
    return Console(services(store), io.StringIO(), io.StringIO())


def number_of(shown: str, label: str) -> str:
    line = next(line for line in shown.splitlines() if line.strip().endswith(f"] {label}"))
    return line.strip()[1:line.strip().index("]")]


async def test_console_old_number_after_a_change_does_not_unsubscribe(store: SqlStore) -> None:
    session = console(store)
    await session.handle_line("/subscribe")
    shown = await session.handle_line("/settings")
    assert shown is not None
    unsubscribe_number = number_of(shown, "Unsubscribe")

    changed = await session.handle_line("/quiet 22:00-07:00")  # a change; its reply has no choices
    assert changed is not None and "Choose a number" not in changed
    answer = await session.handle_line(unsubscribe_number)  # typed from the list above
    assert answer is not None and "No such choice" in answer
    assert await active(store, CONSOLE_CHAT_ID)

    await session.handle_line("/settings")
    new_list = await session.handle_line("/settings time 07:30")  # a change whose reply is a new list
    assert new_list is not None and number_of(new_list, "Unsubscribe") != unsubscribe_number  # the numbers shifted
    await session.handle_line(unsubscribe_number)  # now it is whatever the new list has there (Preview)
    assert await active(store, CONSOLE_CHAT_ID)

    new_list = await session.handle_line("/settings") or ""
    asked = await session.handle_line(number_of(new_list, "Unsubscribe"))
    assert asked is not None and "Unsubscribe this chat?" in asked  # even the right number asks first
    assert await active(store, CONSOLE_CHAT_ID)
    assert "Unsubscribed" in (await session.handle_line(number_of(asked, "Yes, unsubscribe")) or "")
    assert not await active(store, CONSOLE_CHAT_ID)


async def test_console_numbers_refer_only_to_the_list_just_printed(store: SqlStore) -> None:
    session = console(store)
    await session.handle_line("/sectors")
    assert (await session.handle_line("1")) is not None  # a sector: a list of its own
    await session.handle_line("/about")  # no choices: every older number is void
    answer = await session.handle_line("1")
    assert answer is not None and "No such choice" in answer and "/search 1" in answer

    await session.handle_line("/sectors")
    session.show("<b>digest</b>")  # a digest printed between the user's lines
    assert "No such choice" in (await session.handle_line("2") or "")

    await session.handle_line("/sectors")
    assert "Choose a number from 1 to" in (await session.handle_line("99") or "")
    assert "AI in finance" in (await session.handle_line("5") or "")  # the hint kept the list it is about
