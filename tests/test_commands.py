"""Every command of the table, through the transport-agnostic core."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from replies import html

from bot.content import load_catalogue
from bot.core.addresses import telegram
from bot.core.commands import COMMANDS, dispatch, resolve_section
from bot.core.messages import CALLBACK_DATA_LIMIT, Chat, ChatKind, Reply, Request, User, interpret
from bot.core.render import format_date
from bot.core.services import Services, StaticContent
from bot.tg.render import MESSAGE_LIMIT, split_message, text_length

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SHIPPED = load_catalogue(Path(__file__).parent.parent / "content", now=NOW)
FIXTURE = load_catalogue(Path(__file__).parent / "fixtures" / "content", now=NOW)
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "blockquote"}


def services(catalogue: object = SHIPPED, admins: frozenset[int] = frozenset()) -> Services:
    return Services(content=StaticContent(catalogue), clock=lambda: NOW, bot_username="hk_ai_pulse_bot",  # type: ignore[arg-type]
                    admin_ids=admins)


PRIVATE_CHAT = Chat(telegram(5), ChatKind.PRIVATE)


async def ask(text: str, catalogue: object = SHIPPED, *, button: bool = False, chat: Chat = PRIVATE_CHAT) -> Reply:
    request = interpret(text, chat, User(5, "Ada"), "hk_ai_pulse_bot", from_button=button)
    assert request is not None
    return await dispatch(request, services(catalogue))


class _StrictHtml(HTMLParser):
    """Fails on tags Telegram does not accept or on unbalanced nesting."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, f"Telegram rejects <{tag}>"
        if tag == "a":
            assert dict(attrs).get("href", "").startswith("http")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def assert_valid_telegram_html(reply: Reply) -> None:
    for part in split_message(html(reply)):
        assert 0 < text_length(part) <= MESSAGE_LIMIT
        parser = _StrictHtml()
        parser.feed(part)
        parser.close()
        assert not parser.stack, f"unclosed tags {parser.stack}"
    for row in reply.buttons:
        for button in row:
            assert 1 <= len(button.action.encode()) <= CALLBACK_DATA_LIMIT


@pytest.mark.parametrize("text", ["/start", "/start finance", "/help", "/sectors", "/sector finance",
                                  "/sector fintek", "/sector", "/initiatives", "/initiatives healthcare",
                                  "/search hkust ai", "/latest", "/latest 20", "/about", "/nope"])
async def test_every_reply_is_valid_telegram_html(text: str) -> None:
    assert_valid_telegram_html(await ask(text))


async def test_every_section_and_its_initiatives_render_validly() -> None:
    for section in SHIPPED.sections:
        assert_valid_telegram_html(await ask(f"/sector {section.id}"))
        assert_valid_telegram_html(await ask(f"/initiatives {section.id}"))


async def test_content_strings_are_escaped() -> None:
    reply = await ask("/sector finance", FIXTURE)
    assert "Banks &amp; brokers use &lt;AI&gt; for fraud detection." in html(reply)


async def test_sector_by_alias_shows_section_with_latest_and_buttons() -> None:
    reply = await ask("/sector fintech")
    assert "<b>AI in finance</b>" in html(reply)
    assert "Latest" in html(reply)
    actions = [button.action for row in reply.buttons for button in row]
    assert "initiatives finance" in actions and "sectors" in actions


async def test_sector_near_miss_offers_did_you_mean_buttons() -> None:
    reply = await ask("/sector fintek")
    assert "Did you mean" in html(reply)
    assert [b.action for row in reply.buttons for b in row] == ["sector finance"]


async def test_sector_close_typo_opens_the_section_and_says_so() -> None:
    reply = await ask("/sector healthcar")
    assert "<b>Healthcare" in html(reply) and "closest to “healthcar”" in html(reply)


async def test_sector_unknown_name_lists_sectors() -> None:
    reply = await ask("/sector underwater-basket-weaving")
    assert "No sector called" in html(reply) and len([b for r in reply.buttons for b in r]) == 8


async def test_sector_without_argument_lists_sectors() -> None:
    reply = await ask("/sector")
    assert "Which sector?" in html(reply)
    assert next(b.action for row in reply.buttons for b in row) == "sector overview"


def test_resolve_section_exact_alias_and_candidates() -> None:
    assert resolve_section(SHIPPED, "GOV")[0].id == "government"  # type: ignore[union-attr]
    section, candidates = resolve_section(SHIPPED, "zzz")
    assert section is None and candidates == []


async def test_start_with_deep_link_payload_opens_section() -> None:
    reply = await ask("/start healthcare")
    assert "<b>Healthcare" in html(reply)


async def test_start_welcomes_with_sector_buttons() -> None:
    reply = await ask("/start")
    assert "HK AI Pulse" in html(reply)
    assert len([b for r in reply.buttons for b in r]) == len(SHIPPED.sections)


async def test_help_lists_every_public_command_from_the_table() -> None:
    reply = await ask("/help")
    for command in COMMANDS:
        if not command.admin_only:
            assert command.usage.split()[0] in html(reply)


async def test_initiatives_of_a_section_carry_year_body_and_source() -> None:
    reply = await ask("/initiatives finance", FIXTURE)
    assert "<b>Fintech Supervisory Sandbox</b> (2016) — HKMA" in html(reply)
    assert '<a href="https://www.hkma.gov.hk/sandbox">Source</a>' in html(reply)
    assert "<i>Note: News report.</i>" in html(reply)


async def test_initiatives_without_argument_groups_all_sections() -> None:
    reply = await ask("/initiatives", FIXTURE)
    assert html(reply).index("Government initiatives") < html(reply).index("AI in finance")
    assert "Innovation and Technology Fund" in html(reply)


async def test_initiatives_without_argument_carry_descriptions_and_caveats_like_one_section() -> None:
    everything = html(await ask("/initiatives"))
    for section in SHIPPED.sections:
        if section.initiatives:
            one_section = html(await ask(f"/initiatives {section.id}"))
            listed = one_section.split("\n\n", 1)[1]  # the items, without that reply's heading
            assert listed in everything, section.id
    assert all(escape(item.description, quote=False) in everything for item in SHIPPED.initiatives)
    notes = [item.note for item in SHIPPED.initiatives if item.note]
    assert notes and all(escape(f"Note: {note}", quote=False) in everything for note in notes)


async def test_initiatives_without_argument_split_under_the_limit_with_headings_kept_with_items() -> None:
    parts = split_message(html(await ask("/initiatives")))
    assert len(parts) > 1 and all(text_length(part) <= MESSAGE_LIMIT for part in parts)
    headings = [f"<b>{section.title}</b> (/initiatives {section.id})" for section in SHIPPED.sections
                if section.initiatives]
    for heading in headings:  # each heading once, in the same message as its first initiative
        assert sum(f"{heading}\n• " in part for part in parts) == 1, heading


async def test_initiatives_of_unknown_section_suggests() -> None:
    reply = await ask("/initiatives fintek")
    assert "/initiatives finance" in html(reply)


async def test_search_ranks_the_best_match_first() -> None:
    reply = await ask("/search hkust ai")
    first_result = html(reply).split("\n")[1]
    assert "HKUST" in first_result


async def test_search_finds_updates_and_prefixes() -> None:
    reply = await ask("/search sandbox", FIXTURE)
    assert "Fintech Supervisory Sandbox" in html(reply) and "13 Aug 2024" in html(reply)


async def test_search_shows_dates_as_every_other_reply_does() -> None:
    searched, latest = html(await ask("/search sandbox", FIXTURE)), html(await ask("/latest", FIXTURE))
    assert "2024-08-13" not in searched
    assert "13 Aug 2024" in searched and "13 Aug 2024" in latest


def test_one_date_format_without_leading_zero() -> None:
    assert format_date(date(2025, 2, 5)) == "5 Feb 2025"
    assert format_date(date(2025, 2, 25)) == "25 Feb 2025"


async def test_search_without_words_explains() -> None:
    assert "What should I look for?" in html(await ask("/search"))


async def test_search_with_no_match_says_so() -> None:
    assert "Nothing matches “quantumbanana”" in html(await ask("/search quantumbanana"))


async def test_latest_shows_newest_first_and_validates_count() -> None:
    reply = await ask("/latest 2", FIXTURE)
    assert html(reply).index("GenA.I. Sandbox launched") < html(reply).index("Innovation and Technology Fund set up")
    assert "takes a number from 1 to 20" in html(await ask("/latest lots"))
    assert "takes a number from 1 to 20" in html(await ask("/latest 0"))


async def test_about_names_sources_and_contact() -> None:
    reply = await ask("/about", FIXTURE)
    assert "Example source" in html(reply) and "Ask the test admins." in html(reply) and FIXTURE.version in html(reply)


async def test_about_ends_with_the_operators_contact_under_a_heading() -> None:
    bot = replace(services(), operator_contact="@hk_ai_pulse_ops")
    request = interpret("/about", PRIVATE_CHAT, User(5, "Ada"), "hk_ai_pulse_bot")
    assert request is not None
    text = html(await dispatch(request, bot))
    contact = text.index("<b>Contact</b>\n")
    assert text.index("<b>Sources</b>") < contact < text.index("@hk_ai_pulse_ops") < text.index("Content version")
    assert "below" not in text  # nothing promised that does not follow


async def test_about_says_so_when_the_operator_has_published_no_contact() -> None:
    text = html(await ask("/about"))
    assert "<b>Contact</b>" in text and "has not published a contact" in text and "below" not in text


async def test_unknown_command_gets_a_helpful_answer() -> None:
    reply = await ask("/sectr")
    assert "I don't know /sectr" in html(reply) and "/sector" in html(reply) and "/help" in html(reply)


async def test_pressed_button_replaces_the_message() -> None:
    assert (await ask("sector finance", button=True)).replace
    assert not (await ask("/sector finance")).replace


async def test_a_failing_command_answers_politely(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        @property
        def catalogue(self) -> object:
            raise RuntimeError("disk on fire")

    request = Request("sectors", chat=Chat(telegram(1)), user=User(1))
    reply = await dispatch(request, Services(content=Broken(), clock=lambda: NOW))
    assert "something went wrong" in html(reply) and "disk on fire" not in html(reply)


def test_interpret_commands_addressed_to_bots() -> None:
    group = Chat(telegram(-100), ChatKind.SUPERGROUP)
    mine = interpret("/sector@HK_AI_Pulse_Bot finance", group, None, "hk_ai_pulse_bot")
    assert mine is not None and mine.command == "sector" and mine.args == ("finance",)
    assert interpret("/sector@other_bot finance", group, None, "hk_ai_pulse_bot") is None
    assert interpret("hello everyone", group, None, "hk_ai_pulse_bot") is None
    private = interpret("cyberport funding", Chat(telegram(1)), None, "hk_ai_pulse_bot")
    assert private is not None and private.command == "search" and private.args == ("cyberport", "funding")


def test_command_table_is_consistent() -> None:
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    for command in COMMANDS:
        assert command.name.isascii() and command.name.islower() and 1 <= len(command.name) <= 32
        assert 1 <= len(command.summary) <= 256
