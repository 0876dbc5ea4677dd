"""A reply is a document: the core builds it without markup, Telegram renders HTML, the console plain text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from bot.console import console_parts, render_reply, render_text
from bot.content import load_catalogue
from bot.core.addresses import TELEGRAM, ChatAddress, telegram
from bot.core.commands import dispatch
from bot.core.document import (
    Block,
    Document,
    Line,
    LineKind,
    Span,
    Style,
    block,
    bold,
    code,
    doc,
    heading,
    italic,
    item,
    line,
    link,
    para,
    pre,
)
from bot.core.messages import Button, Chat, ChatKind, Reply, Request, User
from bot.core.schedule import Cadence, Schedule
from bot.core.services import Services, StaticContent
from bot.core.subscriptions import DigestPayload, SubscriptionRequest, SubscriptionStore
from bot.delivery import DeliveryEngine, Platform, RateLimits
from bot.tg.render import MESSAGE_LIMIT, html_parts, message_length, render_html, text_length

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FIXTURE = load_catalogue(Path(__file__).parent / "fixtures" / "content", now=NOW)


# --- the document ------------------------------------------------------------------------------------------------


def test_str_parts_are_plain_spans_and_empty_parts_vanish() -> None:
    built = doc(para("Content ", code("v7"), ", loaded ", ""), block(heading("Sources"), item(link("HKPC", "u")),
                                                                      line()), Block(()), "")
    assert built == Document((
        Block((Line((Span("Content "), Span("v7", Style.CODE), Span(", loaded "))),)),
        Block((Line((Span("Sources"),), LineKind.HEADING), Line((Span("HKPC", Style.LINK, "u"),), LineKind.ITEM))),
    ))
    assert not doc() and not doc(para(""), Block(()))
    assert doc("x")


def test_a_document_survives_its_stored_form() -> None:
    built = doc(block(heading("Digest"), line(bold("a"), " & ", italic("b"))), para(link("<x>", "https://e.org/?a=1&b=2")),
                block(item("one"), pre("a\n  b")))
    assert Document.from_data(built.to_data()) == built


async def test_the_core_leaves_content_text_plain() -> None:
    services = Services(content=StaticContent(FIXTURE), clock=lambda: NOW)
    reply = await dispatch(Request("sector", ("finance",), Chat(telegram(5)), User(5)), services)
    spans = [span.text for each in reply.body.blocks for one in each.lines for span in one.spans]
    assert "Banks & brokers use <AI> for fraud detection." in spans
    assert not any("&amp;" in text or "<b>" in text for text in spans)


# --- Telegram HTML -----------------------------------------------------------------------------------------------


def test_telegram_html_escapes_every_text_and_marks_up_each_style() -> None:
    built = doc(block(heading("A <b> & ", bold("bold")), item(bold("x<y"), " ", italic("i&j"), " ", code("a<b>"))),
                para(link('l"<', 'https://e.org/?a=1&b="2"')), block(pre("if a < b:\n    pass")))
    assert render_html(built) == (
        "<b>A &lt;b&gt; &amp; bold</b>\n"
        "• <b>x&lt;y</b> <i>i&amp;j</i> <code>a&lt;b&gt;</code>\n\n"
        '<a href="https://e.org/?a=1&amp;b=&quot;2&quot;">l"&lt;</a>\n\n'
        "<pre>if a &lt; b:\n    pass</pre>")


def test_a_long_document_splits_at_blocks_with_tags_closed_and_reopened() -> None:
    built = doc(*(para(bold(f"Item {i}"), " ", "word " * 150) for i in range(20)),
                para(italic(" ".join(f"w{i}" for i in range(2000)))))
    parts = html_parts(built)
    assert len(parts) > 2
    assert all(0 < text_length(part) <= MESSAGE_LIMIT for part in parts)
    italic_parts = [part for part in parts if "<i>" in part]
    assert len(italic_parts) >= 2  # the huge italic paragraph is cut inside the tag ...
    assert all(part.count("<i>") == part.count("</i>") for part in parts)  # ... closed and reopened
    assert italic_parts[-1].startswith("<i>") and italic_parts[-1].endswith("</i>")
    assert "w0 " in italic_parts[0] and "w1999" in italic_parts[-1]


def test_the_limit_counts_utf16_units_not_characters() -> None:
    emoji = "😀 " * 1500  # 3,000 characters, 4,500 UTF-16 units
    assert len(emoji.strip()) < MESSAGE_LIMIT < message_length(doc(emoji))
    parts = html_parts(doc(emoji))
    assert len(parts) == 2 and all(text_length(part) <= MESSAGE_LIMIT for part in parts)
    assert message_length(doc(block(heading("a&b"), item("x")))) == len("a&b\n• x")


# --- the console -------------------------------------------------------------------------------------------------


def test_console_text_is_plain_with_links_spelled_out_and_numbered_buttons() -> None:
    reply = Reply(doc(block(heading("Sectors <all>"), item(bold("A & B"), " ", link("src", "https://e.org"))),
                      block(pre("x < y"))),
                  buttons=((Button("One", "sector one"), Button("Two", "sector two")), (Button("Back", "sectors"),)),
                  notice="Saved")
    shown, buttons = render_reply(reply)
    assert shown == ("(Saved)\nSectors <all>\n• A & B src <https://e.org>\n\nx < y\n\n"
                     "Choose a number:\n  [1] One\n  [2] Two\n  [3] Back")
    assert [button.action for button in buttons] == ["sector one", "sector two", "sectors"]
    assert render_text(doc()) == "" and console_parts(doc()) == []
    assert console_parts(doc("a", "b")) == ["a\n\nb"]


# --- deliveries store the document and render it when they send ----------------------------------------------------


class Sent:
    """A Sender that keeps what it was given."""

    def __init__(self) -> None:
        self.texts: list[tuple[ChatAddress, str]] = []

    async def send(self, chat: ChatAddress, thread_id: int | None, part: str, *, silent: bool) -> None:
        self.texts.append((chat, part))


class CountingRender:
    """Telegram's renderer, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, message: Document) -> Sequence[str]:
        self.calls += 1
        return html_parts(message, limit=60)


async def _nothing(_: object) -> None:
    return None


@pytest.fixture
def store(sqlite_store: SubscriptionStore) -> SubscriptionStore:
    return sqlite_store


async def test_a_broadcast_is_stored_as_a_document_and_rendered_once_per_delivery(store: SubscriptionStore) -> None:
    schedule = Schedule(Cadence.DAILY, time(9), "UTC")
    await store.save_subscription(SubscriptionRequest(telegram(1), None, ChatKind.PRIVATE, schedule),
                                  NOW - timedelta(days=1))
    message = doc(para(bold("News & views")), para("word " * 20))
    assert await store.enqueue_broadcast(DigestPayload(message=message), NOW) == 1
    # A row an earlier version wrote holds Telegram HTML parts and no document: it is sent as it is.
    assert await store.enqueue_broadcast(DigestPayload(("<b>Old</b> row",)), NOW + timedelta(seconds=1)) == 1
    claimed = await store.claim_deliveries("w", NOW + timedelta(seconds=2), 60, 10)
    assert sorted((d.payload.message is not None) for d in claimed if d.payload) == [False, True]
    assert [d.payload.message for d in claimed if d.payload and d.payload.message] == [message]
    for each in claimed:
        await store.retry_delivery(each.id, NOW, "handed back for the engine")
    sender, render = Sent(), CountingRender()
    engine = DeliveryEngine(store, Platform(TELEGRAM, sender, render=render), RateLimits(messages_per_second=1000),
                            worker_id="w", compose=_nothing, now=lambda: NOW + timedelta(seconds=3))
    report = await engine.run_once()
    assert report.sent == 2
    assert render.calls == 1  # the document once, however many parts; the old row not at all
    texts = [text for _, text in sender.texts]
    assert "<b>Old</b> row" in texts
    rendered = [text for text in texts if text != "<b>Old</b> row"]
    assert len(rendered) >= 2 and rendered[0] == "<b>News &amp; views</b>"
    assert re.sub(r"\s+", " ", " ".join(rendered[1:])).strip() == ("word " * 20).strip()


async def test_one_document_sent_to_many_chats_is_rendered_once(store: SubscriptionStore) -> None:
    schedule = Schedule(Cadence.DAILY, time(9), "UTC")
    for chat_id in (1, 2, 3):
        await store.save_subscription(SubscriptionRequest(telegram(chat_id), None, ChatKind.PRIVATE, schedule),
                                      NOW - timedelta(days=1))
    assert await store.enqueue_broadcast(DigestPayload(message=doc(para("Same for all"))), NOW) == 3
    sender, render = Sent(), CountingRender()
    engine = DeliveryEngine(store, Platform(TELEGRAM, sender, render=render), RateLimits(messages_per_second=1000),
                            worker_id="w", compose=_nothing, now=lambda: NOW + timedelta(seconds=3))
    assert (await engine.run_once()).sent == 3
    assert sorted(chat for chat, _ in sender.texts) == [telegram(1), telegram(2), telegram(3)]
    assert render.calls == 1  # each claim reads its own copy back from the store; equal documents share a rendering
