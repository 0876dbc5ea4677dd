"""Inline search (`@OurBot finance` typed in any chat): a page of shareable result cards, platform-neutral.

`inline_page(catalogue, "finance", "")` is the first page: cards ranked by the same search as /search, and
`next_offset="20"` when there are more. Each card is what a front end shows in its result list (title, short
description) and what it posts when the card is chosen (a compact document with the source link), plus the
section a "open in the bot" deep link leads to. An empty query pages through the latest updates instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bot.core.catalogue import ENGLISH, Catalogue, Initiative, Section, Update
from bot.core.document import Document, block, bold, doc, italic, line, link
from bot.core.i18n import translator
from bot.core.messages import clean_text, shorten_at_word
from bot.core.numbers import whole_number
from bot.core.render import format_date
from bot.core.search import index_of

PAGE_SIZE = 20  # cards per answer (Telegram takes at most 50)
QUERY_LIMIT = 256  # Telegram's longest inline query; anything longer is cut, not refused
# An offset past every result gives an empty page; the bound keeps a forged offset from asking the search for more.
MAX_OFFSET = 10_000
ID_LIMIT = 64  # bytes, Telegram's limit on a result id and on next_offset
TITLE_CHARS = 100
DESCRIPTION_CHARS = 160
BODY_CHARS = 600  # the card's summary: a card is shared in someone else's chat, so it stays short


@dataclass(frozen=True)
class Card:
    """One inline result: `Card("s-1f3a…", "AI in finance", "Sector · HKMA's GenAI sandbox…", <document>, "finance")`.

    `id` is stable across pages and reloads (1-64 bytes); `section_id` is where a deep link back to the bot
    opens (empty when the item names no section).
    """

    id: str
    title: str
    description: str
    body: Document
    section_id: str


@dataclass(frozen=True)
class InlinePage:
    """One answer to an inline query: its cards, and the offset of the next page (None on the last one)."""

    cards: tuple[Card, ...]
    next_offset: str | None
    open_label: str = "Open in HK AI Pulse"  # the button under a shared card, in the reader's language
    nothing_found: str = "Nothing found: browse the sectors in the bot"  # the way into the bot above no results


def inline_query_text(query: str) -> str:
    """The query as the search reads it: cleaned like a typed command (control characters gone, blanks trimmed)
    and at most 256 characters."""
    return clean_text(query[:QUERY_LIMIT * 2])[:QUERY_LIMIT]


def page_start(offset: str) -> int:
    """Where a page starts: the offset a previous page handed out, 0 for the first page or anything unreadable."""
    return whole_number(offset.strip(), 0, MAX_OFFSET) or 0


def inline_page(catalogue: Catalogue, query: str, offset: str = "", language: str = ENGLISH,
                page_size: int = PAGE_SIZE) -> InlinePage:
    """The cards for one inline query at one offset: search hits for words, the latest updates for nothing.

    `language` ("en" or "zh-Hant") is the language of the cards: each item in its translation, or as written.
    """
    start = page_start(offset)
    wanted = inline_query_text(query)
    items: list[Section | Initiative | Update]
    if wanted:
        hits = index_of(catalogue).search(wanted, limit=start + page_size + 1)
        items = [hit.item for hit in hits]
    else:
        items = list(catalogue.updates[:start + page_size + 1])
    page = items[start:start + page_size]
    more = len(items) > start + page_size
    tr = translator(language)
    return InlinePage(tuple(card(catalogue, found, language) for found in page),
                      str(start + page_size) if more else None, tr.gettext("Open in HK AI Pulse"),
                      tr.gettext("Nothing found: browse the sectors in the bot"))


def card(catalogue: Catalogue, found: Section | Initiative | Update, language: str = ENGLISH) -> Card:
    """The card of one section, initiative or update, in its translation into `language` or as written. Its id
    comes from the item as written, so one item has one id in every language."""
    tr = translator(language)
    if isinstance(found, Section):
        found = found.header_in(language)
        body = doc(block(bold(found.title), _short(found.summary, BODY_CHARS),
                         italic(tr.gettext("Key points, initiatives and the latest updates: open it in the bot."))))
        return Card(_card_id("s", found.id), _short(found.title, TITLE_CHARS),
                    _short(tr.gettext("Sector · %(summary)s", summary=found.summary), DESCRIPTION_CHARS), body,
                    found.id)
    if isinstance(found, Initiative):
        key, found = found.key, found.in_language(language)
        year = f" ({found.year})" if found.year else ""
        section = catalogue.section(found.section_id)
        where = f" · {section.header_in(language).title}" if section else ""
        body = doc(block(line(bold(found.name), f"{year} — {found.body}"),
                         line(_short(found.description, BODY_CHARS), " ", link(tr.gettext("Source"), found.link))))
        return Card(_card_id("i", key), _short(found.name + year, TITLE_CHARS),
                    _short(f"{found.body}{where} · {found.description}", DESCRIPTION_CHARS), body, found.section_id)
    key, found = found.key, found.in_language(language)
    when = format_date(found.date, language)
    body = doc(block(line(bold(when), " · ", bold(found.title)),
                     line(_short(found.summary, BODY_CHARS), " ", link(tr.gettext("Read more"), found.link))))
    return Card(_card_id("u", key), _short(found.title, TITLE_CHARS),
                _short(f"{when} · {found.summary}", DESCRIPTION_CHARS), body,
                found.sections[0] if found.sections else "")


def _card_id(kind: str, key: str) -> str:
    # A digest of the item's own key: stable while the item is, 34 bytes however long its title, and never two
    # alike on one page (a collision of 128-bit digests among a few hundred items is not a practical worry).
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def _short(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word with an ellipsis; line breaks become spaces."""
    return shorten_at_word(text, limit, trailing=" ,;:·—-")
