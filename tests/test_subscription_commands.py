"""Subscription commands through the core with a real SQLite store: what a first user types, and what they read."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from replies import html, parts

from bot.content import load_catalogue
from bot.core.addresses import telegram
from bot.core.commands import dispatch
from bot.core.digest_composer import compose_digest
from bot.core.messages import Chat, ChatKind, Request, User, interpret
from bot.core.schedule import Cadence, QuietHours, Schedule, find_timezone
from bot.core.services import Services, StaticContent
from bot.core.subscription_commands import NO_STORE, REFUSAL, parse_subscribe
from bot.core.subscriptions import DigestHistory, Subscription
from bot.store import SqlStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SHIPPED = load_catalogue(Path(__file__).parent.parent / "content", now=NOW)
CHAT = Chat(telegram(5), ChatKind.PRIVATE)


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store


def services_with(store: SqlStore) -> Services:
    return Services(content=StaticContent(SHIPPED), clock=lambda: NOW, subscriptions=store)


async def say(services: Services, text: str, chat: Chat = CHAT) -> str:
    request = interpret(text, chat, User(int(chat.address.id), "Ada"), "hk_ai_pulse_bot")
    assert request is not None
    return html(await dispatch(request, services))


@pytest.mark.parametrize(("typed", "meant"), [("utc", "UTC"), ("UTC", "UTC"), ("europe/london", "Europe/London"),
                                              ("asia/hong_kong", "Asia/Hong_Kong"), ("ASIA/HONG_KONG",
                                                                                     "Asia/Hong_Kong")])
def test_timezone_names_match_whatever_their_case(typed: str, meant: str) -> None:
    assert find_timezone(typed) == meant
    assert parse_subscribe(("daily", "08:00", typed), SHIPPED, "Asia/Hong_Kong").schedule.timezone == meant


@pytest.mark.parametrize("typed", ["Mars/Base", "europe", "../etc/passwd", "/etc/passwd", "Europe/London/"])
def test_unknown_timezones_are_none(typed: str) -> None:
    assert find_timezone(typed) is None


async def test_subscribe_in_lower_case_utc_is_accepted(store: SqlStore) -> None:
    services = services_with(store)
    answer = await say(services, "/subscribe daily 08:00 utc")
    assert "Subscribed." in answer and "(UTC)" in answer
    saved = await store.get_subscription(CHAT.address, None)
    assert saved is not None and saved.schedule.timezone == "UTC"
    assert "(Europe/London)" in await say(services, "/settings tz europe/london")


async def test_quiet_hours_default_to_the_subscriptions_timezone(store: SqlStore) -> None:
    services = services_with(store)
    await say(services, "/subscribe daily 08:00 Europe/London")
    answer = await say(services, "/quiet 22:00-07:00")
    assert "(Europe/London)" in answer
    assert await store.get_quiet_hours(CHAT.address) == QuietHours(time(22), time(7), "Europe/London")


async def test_quiet_hours_without_a_subscription_use_the_default_timezone(store: SqlStore) -> None:
    services = services_with(store)
    assert "(Asia/Hong_Kong)" in await say(services, "/quiet 22:00-07:00")
    assert "(Europe/London)" in await say(services, "/quiet 22:00-07:00 europe/london")


async def test_quiet_hours_in_a_topic_follow_that_topics_subscription(store: SqlStore) -> None:
    services = services_with(store)
    topic = Chat(telegram(-100500), ChatKind.SUPERGROUP, "Forum", thread_id=7)
    await say(services, "/subscribe daily 08:00 Asia/Tokyo", topic)
    assert "(Asia/Tokyo)" in await say(services, "/quiet 23:00-06:00", topic)


@pytest.mark.parametrize(("command", "value"), [("/settings time 25:99", "25:99"), ("/settings time 7pmish", "7pmish"),
                                                 ("/settings tz Mars/Base", "Mars/Base"),
                                                 ("/quiet 22:00-25:00", "25:00"), ("/subscribe 24:00", "24:00")])
async def test_a_bad_value_is_named_and_what_works_is_said(store: SqlStore, command: str, value: str) -> None:
    services = services_with(store)
    await say(services, "/subscribe")
    answer = await say(services, command)
    assert f"“{value}”" in answer
    assert "I don't understand" not in answer
    assert "HH:MM" in answer or "IANA" in answer


async def test_settings_time_without_a_value_asks_for_one(store: SqlStore) -> None:
    services = services_with(store)
    await say(services, "/subscribe")
    assert "Which time?" in await say(services, "/settings time")


async def test_digest_of_a_brand_new_subscription_does_not_mention_a_last_digest(store: SqlStore) -> None:
    services = Services(content=StaticContent(SHIPPED), clock=lambda: datetime(2030, 1, 1, tzinfo=UTC),
                        subscriptions=store)  # long after the newest update: nothing new, a spotlight instead
    await dispatch(Request("subscribe", (), CHAT, User(5)), services)
    preview = html(await dispatch(Request("digest", (), CHAT, User(5)), services))
    assert "Spotlight" in preview
    assert "since your last digest" not in preview and "No new updates in your sectors yet." in preview


def test_a_later_empty_digest_says_nothing_is_new_since_the_last_one() -> None:
    subscription = Subscription(1, 5, None, ChatKind.PRIVATE, Schedule(Cadence.DAILY, time(9), "UTC"), (), True,
                                NOW, NOW)
    history = DigestHistory(sent_update_keys=frozenset({"an-update-sent-before"}))
    payload = compose_digest(subscription, SHIPPED, datetime(2030, 1, 1, tzinfo=UTC), history)
    assert payload is not None and "Nothing new since your last digest." in parts(payload)[0]


class NobodyIsAdmin:
    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        return False


@pytest.mark.parametrize("command", ["subscribe", "unsubscribe", "settings", "digest", "quiet"])
async def test_every_subscription_command_without_a_store_says_digests_are_not_available(command: str) -> None:
    services = Services(content=StaticContent(SHIPPED), clock=lambda: NOW, chat_admins=NobodyIsAdmin())
    for chat in (CHAT, Chat(telegram(-100), ChatKind.SUPERGROUP)):
        reply = await dispatch(Request(command, (), chat, User(5)), services)
        assert html(reply) == html(NO_STORE)


@pytest.mark.parametrize(("command", "guarded"), [("subscribe", True), ("unsubscribe", True), ("quiet", True),
                                                  ("settings", False), ("digest", False)])
async def test_in_a_group_only_admins_may_change_a_subscription(store: SqlStore, command: str, guarded: bool) -> None:
    services = Services(content=StaticContent(SHIPPED), clock=lambda: NOW, subscriptions=store,
                        chat_admins=NobodyIsAdmin())
    group = Chat(telegram(-100), ChatKind.SUPERGROUP)
    reply = await dispatch(Request(command, (), group, User(5)), services)
    assert (html(reply) == html(REFUSAL)) is guarded
    assert await store.get_subscription(telegram(-100), None) is None
    # In a private chat the person is always in charge of it.
    assert html(await dispatch(Request(command, (), CHAT, User(5)), services)) != html(REFUSAL)
