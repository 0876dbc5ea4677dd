"""End to end: inline queries (`@hk_ai_pulse_bot finance`) through the real PTB Application against the Bot API
double, which accepts an answer only when every field passes the Bot API spec (types, required fields, lengths,
at most 50 results, next_offset within 64 bytes, HTML that parses)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from doubles.fake_bot_api import FakeBotApi, RecordedRequest, parse_html, spec_problems
from harness import CONTENT, e2e_settings, running_bot
from telegram import Update

from bot.content import load_catalogue
from bot.core.inline import PAGE_SIZE
from bot.core.search import index_of

CATALOGUE = load_catalogue(CONTENT, now=datetime(2026, 11, 25, tzinfo=UTC))
WAIT = 30.0  # seconds: generous, the machine is shared


async def ask(fake: FakeBotApi, query: str, offset: str = "", language_code: str | None = "en") -> dict[str, Any]:
    """Send one inline query and return the answer the double accepted for it."""
    answered = len(fake.calls("answerInlineQuery"))
    update = fake.inline_query_update(query, offset=offset, language_code=language_code)
    fake.push_update(update)
    await fake.wait_for("answerInlineQuery", count=answered + 1, timeout=WAIT)
    answer = fake.inline_answer(update["inline_query"]["id"])
    assert answer is not None
    return checked(answer)


def checked(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer, after asserting the Bot API's limits on it once more (the double refused anything else)."""
    results = answer["results"]
    assert len(results) <= 50
    assert len(answer["next_offset"].encode()) <= 64
    assert answer["is_personal"] is True and 0 < answer["cache_time"] <= 300
    for result in results:
        assert spec_problems("InlineQueryResult", result) == []
        assert result["type"] == "article" and 1 <= len(result["id"].encode()) <= 64 and result["title"]
        content = result["input_message_content"]
        text, _ = parse_html(content["message_text"])
        assert 1 <= len(text) <= 4096 and content["parse_mode"] == "HTML"
    return answer


def refusals(fake: FakeBotApi) -> list[RecordedRequest]:
    """The answerInlineQuery calls the double refused."""
    return [r for r in fake.requests if r.method == "answerInlineQuery" and r.status not in (0, 200)]


def start_payload(result: dict[str, Any]) -> str:
    """The /start payload of a card's deep-link button."""
    [[button]] = result["reply_markup"]["inline_keyboard"]
    url = urlparse(button["url"])
    assert (url.scheme, url.netloc, url.path) == ("https", "t.me", "/hk_ai_pulse_bot")
    return parse_qs(url.query)["start"][0]


async def test_a_query_answers_with_cards_ranked_by_the_search(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        answer = await ask(fake, "finance")
    results = answer["results"]
    expected = index_of(CATALOGUE).search("finance", limit=PAGE_SIZE)
    assert len(results) == len(expected) > 0 and answer["next_offset"] == ""
    assert results[0]["title"] == "AI in finance" and start_payload(results[0]) == "finance"
    assert "<b>AI in finance</b>" in results[0]["input_message_content"]["message_text"]
    assert "inline_query" in fake.calls("getUpdates")[-1]["allowed_updates"]


async def test_paging_follows_next_offset_to_every_hit_once(fake: FakeBotApi, tmp_path: Path) -> None:
    hits = len(index_of(CATALOGUE).search("ai", limit=10_000))
    assert hits > 2 * PAGE_SIZE  # the content is big enough for three pages
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        first = await ask(fake, "ai")
        assert len(first["results"]) == PAGE_SIZE and first["next_offset"]
        pages = [first]
        while pages[-1]["next_offset"]:
            pages.append(await ask(fake, "ai", offset=pages[-1]["next_offset"]))
    ids = [result["id"] for page in pages for result in page["results"]]
    assert len(ids) == len(set(ids)) == hits
    assert all(0 < len(page["results"]) <= PAGE_SIZE for page in pages)


async def test_an_empty_query_pages_through_the_latest_updates(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        first = await ask(fake, "")
        second = await ask(fake, "", offset=first["next_offset"])
    titles = [result["title"] for result in first["results"] + second["results"]]
    assert titles == [update.title for update in CATALOGUE.updates][:len(titles)]
    assert len(first["results"]) == PAGE_SIZE and "Read more" in first["results"][0]["input_message_content"][
        "message_text"]


async def test_a_query_that_matches_nothing_gets_a_valid_empty_answer(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        answer = await ask(fake, "zzqxv")
        assert answer["results"] == [] and answer["next_offset"] == ""
        # The button above the empty list opens the bot: /start with its payload is the welcome with every sector.
        fake.push_update(fake.command_update(f"/start {answer['button']['start_parameter']}", chat_id=612,
                                             user_id=612))
        [sent] = await fake.wait_for("sendMessage", chat_id=612, timeout=WAIT)
    buttons = [b["callback_data"] for row in sent["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [f"sector {section.id}" for section in CATALOGUE.sections]


async def test_the_longest_query_and_odd_characters_are_answered(fake: FakeBotApi, tmp_path: Path) -> None:
    longest = ("finance " * 32)[:256]
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        long_answer = await ask(fake, longest)
        odd = await ask(fake, "\u200ffin\x00ance\x1b \ufeff")
        plain = await ask(fake, "finance")
        bad_offset = await ask(fake, "ai", offset="-7; drop table")
    assert [r["id"] for r in long_answer["results"]] == [r["id"] for r in plain["results"]]
    assert [r["id"] for r in odd["results"]] == [r["id"] for r in plain["results"]]
    assert len(bad_offset["results"]) == PAGE_SIZE and bad_offset["next_offset"] == str(PAGE_SIZE)


@pytest.mark.parametrize("query", ["人工智能 金融", "香港", "金融科技 finance", "人工智能"])
async def test_chinese_text_finds_chinese_cards(fake: FakeBotApi, tmp_path: Path, query: str) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        chinese = await ask(fake, query, language_code="zh-hk")
        english = await ask(fake, query, language_code="en")
    assert chinese["results"] and "button" not in chinese
    # The same items, each shown in the reader's language: Chinese text for zh-hk, English for everyone else.
    assert [r["id"] for r in chinese["results"]] == [r["id"] for r in english["results"]]
    first = chinese["results"][0]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in first["title"] + first["description"])
    assert chinese["results"][0]["input_message_content"] != english["results"][0]["input_message_content"]


async def test_simplified_chinese_finds_what_traditional_finds(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        traditional = await ask(fake, "香港科技大學", language_code="zh-hk")
        simplified = await ask(fake, "香港科技大学", language_code="zh-hk")
    assert traditional["results"]
    assert [r["id"] for r in simplified["results"]] == [r["id"] for r in traditional["results"]]


async def test_the_card_button_opens_its_sector_in_the_bot(fake: FakeBotApi, tmp_path: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path)):
        answer = await ask(fake, "hospital authority")
        payload = start_payload(answer["results"][0])
        fake.push_update(fake.command_update(f"/start {payload}", chat_id=611, user_id=611))
        [sent] = await fake.wait_for("sendMessage", chat_id=611, timeout=WAIT)
    section = CATALOGUE.section(payload)
    assert section is not None and section.title in sent["text"]


async def test_an_answer_telegram_refuses_is_logged_and_the_next_query_still_works(
        fake: FakeBotApi, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_bot(fake, e2e_settings(fake, tmp_path)) as runtime:
        update = fake.inline_query_update("finance")
        fake.push_update(update)
        await fake.wait_for("answerInlineQuery", timeout=WAIT)
        # The same query again, handled to the end: its id was answered, so Telegram refuses a second answer.
        application = runtime.application
        assert application is not None
        await application.process_update(Update.de_json({"update_id": 1, **update}, application.bot))
        answer = await ask(fake, "health")
    refused = refusals(fake)
    assert len(refused) == 1 and "query is too old" in (refused[0].error or "")
    assert answer["results"]
    assert any("could not answer inline query" in record.getMessage() for record in caplog.records)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
