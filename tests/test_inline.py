"""Inline search in the core (bot/core/inline.py) and its Telegram articles (bot/tg/inline.py), without a server."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.content import load_catalogue
from bot.core.addresses import telegram
from bot.core.catalogue import Section
from bot.core.commands import dispatch
from bot.core.document import Document, Style
from bot.core.i18n import language_from_code
from bot.core.inline import (
    BODY_CHARS,
    DESCRIPTION_CHARS,
    PAGE_SIZE,
    QUERY_LIMIT,
    TITLE_CHARS,
    card,
    inline_page,
    inline_query_text,
    page_start,
)
from bot.core.messages import Chat, Request, User
from bot.core.search import index_of
from bot.core.services import Services, StaticContent
from bot.tg.inline import article, deep_link
from bot.tg.render import MESSAGE_LIMIT, message_length, render_html, text_length

CONTENT = Path(__file__).parent.parent / "content"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
SHIPPED = load_catalogue(CONTENT, now=NOW)


def every_page(query: str, language: str = "en") -> list[list[str]]:
    """The card ids of each page, following next_offset to the end."""
    pages, offset = [], ""
    while True:
        page = inline_page(SHIPPED, query, offset, language)
        pages.append([each.id for each in page.cards])
        if page.next_offset is None:
            return pages
        offset = page.next_offset


def test_pages_hold_every_hit_in_the_searchs_order_exactly_once() -> None:
    pages = every_page("ai")
    expected = [card(SHIPPED, hit.item).id for hit in index_of(SHIPPED).search("ai", limit=10_000)]
    assert [each for page in pages for each in page] == expected
    assert all(len(page) == PAGE_SIZE for page in pages[:-1]) and 0 < len(pages[-1]) <= PAGE_SIZE
    assert len(pages) >= 3


def test_an_empty_query_pages_through_the_latest_updates() -> None:
    cards = [each for page_offset in ("", str(PAGE_SIZE))
             for each in inline_page(SHIPPED, "  ", page_offset).cards]
    assert [each.title for each in cards] == [update.title for update in SHIPPED.updates][:len(cards)]
    assert inline_page(SHIPPED, "", "").next_offset == str(PAGE_SIZE)


@pytest.mark.parametrize("offset", ["", "0", "abc", "-20", "+", "1e3", "٢٠", "99999999999999999999"])
def test_an_offset_the_bot_did_not_hand_out_starts_at_the_first_page(offset: str) -> None:
    assert page_start(offset) == 0
    assert inline_page(SHIPPED, "ai", offset) == inline_page(SHIPPED, "ai", "")


def test_an_offset_past_the_end_gives_an_empty_last_page() -> None:
    page = inline_page(SHIPPED, "ai", "9000")
    assert page.cards == () and page.next_offset is None


def test_nothing_matching_gives_an_empty_page() -> None:
    for query in ("zzqxv", "🤖", "鼴鼠"):
        page = inline_page(SHIPPED, query, "", language_from_code("zh-hk"))
        assert page.cards == () and page.next_offset is None


def test_chinese_text_finds_cards_in_the_readers_language_with_one_id_per_item() -> None:
    chinese = inline_page(SHIPPED, "人工智能 金融", "", "zh-Hant")
    english = inline_page(SHIPPED, "人工智能 金融", "", "en")
    assert chinese.cards and [c.id for c in chinese.cards] == [c.id for c in english.cards]
    assert chinese.cards[0].title != english.cards[0].title


def test_the_query_is_cleaned_like_a_command_and_cut_at_256_characters() -> None:
    assert inline_query_text("\u200ffin\x00ance\x1b \ufeff") == "finance"
    assert inline_query_text("\ud800x") == "\ufffdx"
    assert len(inline_query_text("a" * 10_000)) == QUERY_LIMIT
    assert inline_page(SHIPPED, "fin\x00ance", "") == inline_page(SHIPPED, "finance", "")


def test_every_card_is_compact_with_a_stable_id_and_a_deep_link_section() -> None:
    cards = [card(SHIPPED, found) for found in (*SHIPPED.sections, *SHIPPED.initiatives, *SHIPPED.updates)]
    ids = [each.id for each in cards]
    assert len(set(ids)) == len(ids) and all(1 <= len(each.encode()) <= 64 for each in ids)
    reloaded = load_catalogue(CONTENT, now=NOW)
    assert ids == [card(reloaded, found).id
                   for found in (*reloaded.sections, *reloaded.initiatives, *reloaded.updates)]
    for each in cards:
        assert 0 < len(each.title) <= TITLE_CHARS and 0 < len(each.description) <= DESCRIPTION_CHARS
        assert len(each.body.blocks) == 1 and message_length(each.body) < 1000
        assert SHIPPED.section(each.section_id) is not None
    for each in cards[len(SHIPPED.sections):]:  # initiatives and updates carry their source link
        assert any(span.style is Style.LINK and span.url.startswith("http")
                   for line in each.body.blocks[0].lines for span in line.spans)


def test_a_long_text_is_cut_at_a_word_with_an_ellipsis() -> None:
    finance = SHIPPED.section("finance")
    assert finance is not None
    wordy = dataclasses.replace(finance, title="Finance " * 40, summary="money\nmatters " * 500)
    made = card(SHIPPED, wordy)
    assert len(made.title) <= TITLE_CHARS and made.title.endswith("…") and not made.title.endswith(" …")
    summary = made.body.blocks[0].lines[1].spans[0].text
    assert len(summary) <= BODY_CHARS and summary.endswith("…") and "\n" not in summary
    assert summary[:-1].split()[-1] in ("money", "matters")  # cut between words, not inside one


def test_an_article_carries_the_card_as_html_with_a_button_back_to_the_bot() -> None:
    made = card(SHIPPED, SHIPPED.sections[0])
    result = article(made, "hk_ai_pulse_bot").to_dict()
    assert result["type"] == "article" and result["id"] == made.id and result["title"] == made.title
    assert result["input_message_content"]["parse_mode"] == "HTML"
    assert result["input_message_content"]["message_text"].startswith(f"<b>{SHIPPED.sections[0].title}")
    [[button]] = result["reply_markup"]["inline_keyboard"]
    assert button["url"] == f"https://t.me/hk_ai_pulse_bot?start={SHIPPED.sections[0].id}"


@pytest.mark.parametrize(("username", "section_id"), [("", "finance"), ("bot", ""), ("bot", "a b"),
                                                      ("bot", "x" * 65), ("bot", "財經")])
def test_no_deep_link_when_telegram_could_not_start_with_it(username: str, section_id: str) -> None:
    assert deep_link(username, section_id) is None


def test_an_article_stays_within_telegrams_message_limit_whatever_the_card() -> None:
    usual = card(SHIPPED, SHIPPED.updates[0])
    made = dataclasses.replace(usual, section_id="", body=Document(usual.body.blocks * 80))
    result = article(made, "hk_ai_pulse_bot").to_dict()
    assert text_length(result["input_message_content"]["message_text"]) <= MESSAGE_LIMIT
    assert "reply_markup" not in result  # no section, no deep link


def test_a_section_without_a_title_still_gets_a_card() -> None:
    bare = Section("x", 1, "", (), "", (), (), ())
    result = article(card(SHIPPED, bare), "hk_ai_pulse_bot").to_dict()
    assert result["title"] and result["input_message_content"]["message_text"]


@pytest.mark.parametrize(("bot_username", "user_id", "usage", "setup"), [
    ("hk_ai_pulse_bot", 5, True, False), ("hk_ai_pulse_bot", 900, True, True), ("", 900, False, False)])
async def test_help_says_how_to_search_from_any_chat_and_admins_how_to_switch_it_on(
        bot_username: str, user_id: int, usage: bool, setup: bool) -> None:
    services = Services(content=StaticContent(SHIPPED), clock=lambda: NOW,  # type: ignore[arg-type]
                        bot_username=bot_username, admin_ids=frozenset({900}))
    reply = await dispatch(Request("help", chat=Chat(telegram(user_id)), user=User(user_id)), services)
    text = render_html(reply.body)
    assert ("<code>@hk_ai_pulse_bot finance</code>" in text) is usage
    assert ("/setinline" in text and "@BotFather" in text) is setup
