"""The interface in two languages, through the core with a real SQLite store: a chat's language, how it is set and
changed, and what a Chinese reader sees (replies, buttons, dates, digests), each within Telegram's limit."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from replies import html, parts, text

from bot.console import language_from_environment
from bot.content import load_catalogue
from bot.core.addresses import ChatAddress, telegram
from bot.core.commands import COMMANDS, dispatch
from bot.core.digest_composer import DigestRules, compose_digest
from bot.core.i18n import CHINESE, ENGLISH, language_from_code, translator
from bot.core.messages import Chat, ChatKind, Reply, User, interpret
from bot.core.schedule import Cadence, Schedule
from bot.core.services import Services, StaticContent
from bot.core.subscription_commands import describe_schedule
from bot.core.subscriptions import DigestHistory, Subscription
from bot.store import SqlStore
from bot.tg.render import MESSAGE_LIMIT, html_parts, text_length

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SHIPPED = load_catalogue(Path(__file__).parent.parent / "content", now=NOW)
PRIVATE = Chat(telegram(7), ChatKind.PRIVATE)
GROUP = Chat(telegram(-1007), ChatKind.SUPERGROUP)
ADMIN = 900


class OnlyUserOneAdministers:
    async def is_admin(self, chat: Chat, user: User | None) -> bool:
        return user is not None and user.id == 1


def services_with(store: SqlStore | None) -> Services:
    return Services(content=StaticContent(SHIPPED), clock=lambda: NOW, subscriptions=store,
                    admin_ids=frozenset({ADMIN}), chat_admins=OnlyUserOneAdministers(), bot_username="hk_ai_pulse_bot")


async def say(services: Services, typed: str, chat: Chat = PRIVATE, user: int = 7, language: str = CHINESE,
              from_button: bool = False) -> Reply:
    request = interpret(typed, chat, User(user, "Ada"), "hk_ai_pulse_bot", from_button=from_button)
    assert request is not None
    return await dispatch(dataclasses.replace(request, language=language), services)


# ---------------------------------------------------------------------------------------------------- languages


@pytest.mark.parametrize(("code", "language"), [
    ("zh-hk", CHINESE), ("zh-HK", CHINESE), ("zh_TW", CHINESE), ("zh-Hant", CHINESE), ("ZH", CHINESE),
    ("zh_hant", CHINESE), ("en", ENGLISH), ("en-GB", ENGLISH), ("zh-cn", ENGLISH), ("zh-hans", ENGLISH),
    ("fr", ENGLISH), ("", ENGLISH), (None, ENGLISH),
])
def test_a_telegram_language_code_gives_the_chat_s_language(code: str | None, language: str) -> None:
    assert language_from_code(code) == language


@pytest.mark.parametrize(("environ", "language"), [
    ({"LANG": "zh_HK.UTF-8"}, CHINESE), ({"LANG": "zh_TW"}, CHINESE), ({"LANG": "zh"}, CHINESE),
    ({"LANG": "en_GB.UTF-8"}, ENGLISH), ({"LANG": "C.UTF-8"}, ENGLISH), ({}, ENGLISH),
    ({"LANG": "zh_HK.UTF-8", "LC_ALL": "en_US.UTF-8"}, ENGLISH), ({"LANG": "en_US", "LC_MESSAGES": "zh_TW"}, CHINESE),
])
def test_the_console_follows_the_posix_locale_variables(environ: dict[str, str], language: str) -> None:
    assert language_from_environment(environ) == language


def test_dates_are_localised_and_times_stay_24_hour() -> None:
    zh, en = translator(CHINESE), translator(ENGLISH)
    assert zh.format_day(date(2025, 2, 25)) == "2025年2月25日"
    assert zh.weekday(date(2025, 2, 24)) == "星期一"
    assert zh.day_and_time(datetime(2025, 2, 25, 21, 5)) == "2月25日 星期二 21:05"
    assert en.format_day(date(2025, 2, 5)) == "5 Feb 2025"  # English stays as it was
    assert en.day_and_time(datetime(2025, 2, 25, 21, 5)) == "Tue 25 Feb 21:05"
    assert (zh.number(12345), en.number(1234567)) == ("12,345", "1,234,567")
    weekly = Schedule(Cadence.WEEKLY, time(18, 0), "Asia/Hong_Kong", weekday=4)
    assert describe_schedule(weekly, zh) == "每週星期五 18:00（Asia/Hong_Kong）"
    assert describe_schedule(weekly, en) == weekly.describe()


# ---------------------------------------------------------------------------------------------------- a chat's language


async def test_first_contact_sets_the_language_and_later_senders_do_not_change_it(sqlite_store: SqlStore) -> None:
    services = services_with(sqlite_store)
    assert await services.chat_language(GROUP.address, "zh-hk") == CHINESE
    assert await sqlite_store.get_chat_language(GROUP.address) == CHINESE
    # Another member whose Telegram is in English: the group keeps its language (a fresh process reads the store).
    assert await services_with(sqlite_store).chat_language(GROUP.address, "en") == CHINESE
    # A channel post says nothing about a language: English, and nothing kept.
    assert await services.chat_language(telegram(-1008), None) == ENGLISH
    assert await sqlite_store.get_chat_language(telegram(-1008)) is None


async def test_language_shows_both_buttons_and_a_button_switches_the_chat(sqlite_store: SqlStore) -> None:
    services = services_with(sqlite_store)
    shown = await say(services, "/language", language=ENGLISH)
    assert "English" in html(shown)
    assert [(b.label, b.action) for row in shown.buttons for b in row] == [("English", "language en"),
                                                                          ("繁體中文", "language zh-Hant")]

    switched = await say(services, "language zh-Hant", language=ENGLISH, from_button=True)

    assert "繁體中文" in html(switched) and switched.notice == "已儲存"
    assert await sqlite_store.get_chat_language(PRIVATE.address) == CHINESE
    assert await services.chat_language(PRIVATE.address) == CHINESE
    typed = await say(services, "/language english", language=CHINESE)
    assert "English" in html(typed) and await sqlite_store.get_chat_language(PRIVATE.address) == ENGLISH
    refused = await say(services, "/language klingon", language=ENGLISH)
    assert "not a language" in html(refused) and await sqlite_store.get_chat_language(PRIVATE.address) == ENGLISH


async def test_in_a_group_only_its_admins_may_change_the_language(sqlite_store: SqlStore) -> None:
    services = services_with(sqlite_store)
    await sqlite_store.set_chat_language(GROUP.address, ENGLISH)
    refused = await say(services, "/language zh-Hant", chat=GROUP, user=5, language=ENGLISH)
    assert "Only this group's administrators" in html(refused)
    assert await sqlite_store.get_chat_language(GROUP.address) == ENGLISH
    # Anyone may look.
    assert (await say(services, "/language", chat=GROUP, user=5, language=ENGLISH)).buttons
    await say(services, "/language zh-Hant", chat=GROUP, user=1, language=ENGLISH)
    assert await sqlite_store.get_chat_language(GROUP.address) == CHINESE


# ------------------------------------------------------------------------------------------------- what a reader sees


async def test_a_chinese_chat_reads_chinese_replies_buttons_and_dates(sqlite_store: SqlStore) -> None:
    services = services_with(sqlite_store)
    assert "指令" in html(await say(services, "/help"))
    assert "/language" in html(await say(services, "/help"))
    sector = await say(services, "/sector finance")
    assert "重點" in html(sector) and "« 所有範疇" in [b.label for row in sector.buttons for b in row]
    assert "年" in html(sector) and "月" in html(sector)  # the updates' dates
    subscribed = await say(services, "/subscribe daily 08:30")
    assert "已訂閱" in html(subscribed) and "每日 08:30（Asia/Hong_Kong）" in html(subscribed)
    assert "下一份：11月26日 星期四 08:30" in html(subscribed)
    assert "我不認識 /sectr" in html(await say(services, "/sectr finance"))
    assert "抱歉，這個指令只供機械人管理員使用" in html(await say(services, "/status"))
    assert "Sorry" in html(await say(services, "/status", language=ENGLISH))


async def test_admins_read_chat_addresses_and_their_mistakes_in_chinese(sqlite_store: SqlStore) -> None:
    services = services_with(sqlite_store)
    await say(services, "/subscribe")  # the private chat, telegram:7
    status = html(await say(services, "/status", user=ADMIN))
    assert "有效訂閱：1（telegram 1）" in status
    assert "對話 telegram:7（有效" in html(await say(services, "/preview 7", user=ADMIN))
    for typed, problem in [("/preview slack:C0456", "「C0456」不是 Slack 對話"),
                           ("/preview matrix:1", "不明平台「matrix」"),
                           ("/preview 12abc", "對話須為 Telegram 對話 ID"),
                           ("/preview 7 8", "只可指定一個對話")]:
        refused = html(await say(services, typed, user=ADMIN))
        assert problem in refused and "用法：/preview [對話]" in refused, typed
    english = html(await say(services, "/preview slack:C0456", user=ADMIN, language=ENGLISH))
    assert "“C0456” is not a Slack chat" in english and "Usage: /preview [chat]" in english


COMMAND_LINES = ["/start", "/help", "/sectors", "/sector finance", "/sector fintek", "/initiatives",
                 "/initiatives finance", "/search ai", "/search 香港", "/latest 20", "/about", "/subscribe",
                 "/settings", "/digest", "/quiet 22:00-07:00", "/quiet", "/language", "/status", "/preview",
                 "/review", "/reload", "/rollback", "/broadcast Hello", "/unsubscribe", "/nonsense", "/latest 99"]


@pytest.mark.parametrize("language", [ENGLISH, CHINESE])
async def test_every_reply_fits_telegram_in_both_languages(sqlite_store: SqlStore, language: str) -> None:
    services = services_with(sqlite_store)
    assert {line.split()[0].lstrip("/") for line in COMMAND_LINES} >= {c.name for c in COMMANDS if c.in_menu}
    for typed in COMMAND_LINES:
        reply = await say(services, typed, user=ADMIN, language=language)
        sent = html_parts(reply.body)
        assert sent, typed
        assert max(text_length(part) for part in sent) <= MESSAGE_LIMIT, typed
        if language == CHINESE and typed == "/initiatives":
            assert len(sent) > 1  # long enough to be split, and split as in English


def _subscription(language: str) -> Subscription:
    return Subscription(1, telegram(5), None, ChatKind.PRIVATE, Schedule(Cadence.DAILY, time(9), "Asia/Hong_Kong"),
                        (), True, datetime(2020, 1, 1, tzinfo=UTC), NOW, language=language)


@pytest.mark.parametrize("language", [ENGLISH, CHINESE])
def test_a_full_digest_fits_telegram_in_both_languages(language: str) -> None:
    payload = compose_digest(_subscription(language), SHIPPED, NOW, DigestHistory(),
                             DigestRules(lookback_days=3650, max_updates=200))
    assert payload is not None
    sent = parts(payload)
    assert max(text_length(part) for part in sent) <= MESSAGE_LIMIT


def test_the_shared_digest_cache_keeps_languages_apart() -> None:
    english = compose_digest(_subscription(ENGLISH), SHIPPED, NOW, DigestHistory())
    chinese = compose_digest(_subscription(CHINESE), SHIPPED, NOW, DigestHistory())
    assert english is not None and chinese is not None
    assert english.update_keys == chinese.update_keys  # the same updates, the same day: one cache key but for language
    assert "digest · Wed 25 Nov 2026" in parts(english)[0]
    assert "摘要 · 2026年11月25日 星期三" in parts(chinese)[0] and "digest ·" not in parts(chinese)[0]
    assert chinese.message is not None and "則新動態" in text(Reply(chinese.message))


class FailingLanguageStore:
    async def get_chat_language(self, chat: ChatAddress) -> str | None:
        raise ConnectionError("the database is gone")


async def test_a_failing_store_answers_in_the_sender_s_language_and_keeps_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    services = dataclasses.replace(services_with(None), subscriptions=FailingLanguageStore())  # type: ignore[arg-type]
    assert await services.chat_language(PRIVATE.address, "zh-hk") == CHINESE
    assert await services.chat_language(PRIVATE.address, "en") == ENGLISH  # not cached: the next one is asked again
    assert "could not read or keep the language of chat telegram:7" in caplog.text


async def test_a_group_added_by_a_chinese_speaker_is_greeted_in_chinese_and_keeps_it(sqlite_store: SqlStore) -> None:
    from bot.core.membership import membership_changed
    from bot.core.messages import MembershipChange

    services = services_with(sqlite_store)
    hello = await membership_changed(MembershipChange(GROUP, present=True, was_present=False), services, "zh-TW")
    assert "你好！我是" in html(hello) and "/subscribe@hk_ai_pulse_bot" in html(hello)
    assert await sqlite_store.get_chat_language(GROUP.address) == CHINESE
    other = Chat(telegram(-1009), ChatKind.GROUP)
    assert "Hello! I'm" in html(await membership_changed(MembershipChange(other, True, False), services, "en"))
