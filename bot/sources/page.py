"""A fetched HTML listing page to clean entries, with selectolax (the Lexbor HTML5 parser and its CSS engine) and
the source's declared selectors: no hand-written scraping.

`PageSelectors(item="ul.news li", title="a", link="a", date=".date", date_format="%d %b %Y")` reads
`<li><a href="/p1.htm">AI sandbox opens</a> <span class="date">3 Dec 2026</span></li>` as
`Entry("AI sandbox opens", "https://body.hk/p1.htm", 2026-12-02 16:00 UTC, "")`: a date is a day in Hong Kong.
What a page gets wrong is counted as for feeds (`ParsedFeed.problems`); a page where the item selector matches
nothing is an error, as its layout has changed and the source needs new selectors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from bot.core.catalogue import PageSelectors
from bot.sources.parse import (
    FALLBACK_ENCODINGS,
    FUTURE_SLACK,
    MAX_ENTRIES,
    MAX_SUMMARY_CHARS,
    MAX_TITLE_CHARS,
    ParsedFeed,
)
from bot.sources.select import Entry, excerpt

PAGE_ZONE = ZoneInfo("Asia/Hong_Kong")  # the watched bodies date their pages in Hong Kong time
_EMPTY = LexborHTMLParser("<p></p>")


def css_problem(selector: str) -> str | None:
    """Why the CSS engine that reads pages refuses a selector, or None when it takes it."""
    try:
        _EMPTY.css(selector)
    except (SelectolaxError, ValueError) as exc:
        return f"not a CSS selector the page reader understands ({' '.join(str(exc).split()) or 'invalid'}): " \
               f"{selector!r}"
    return None


def decode_page(data: bytes, content_type: str | None) -> str:
    """The page's text: in its declared charset, else UTF-8, else the encodings Hong Kong pages use."""
    declared = _charset(content_type)
    for encoding in (declared, "utf-8", *FALLBACK_ENCODINGS):
        if encoding is None:
            continue
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("utf-8", errors="replace")


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip().strip('"')
    return None


def parse_page(data: bytes, selectors: PageSelectors, *, content_type: str | None, base_url: str, now: datetime,
               max_entries: int = MAX_ENTRIES) -> ParsedFeed:
    """Read a listing page's items with the source's selectors into entries and problems."""
    result = ParsedFeed()
    if content_type and "html" not in content_type.lower():
        result.error = f"not an HTML page ({content_type.split(';')[0].strip()})"
        return result
    tree = LexborHTMLParser(decode_page(data, content_type))
    nodes = tree.css(selectors.item)
    result.total = len(nodes)
    if not nodes:
        result.error = f"no item matches {selectors.item!r}: the page has changed, or the selectors are wrong"
        return result
    if result.total > max_entries:
        result.problems.append(f"page has {result.total} items; read the first {max_entries}")
        nodes = nodes[:max_entries]
    untitled = unlinked = undated = future = 0
    for node in nodes:
        title = excerpt(_text(node, selectors.title), MAX_TITLE_CHARS)
        link = _href(node, selectors.link, base_url)
        if not title:
            untitled += 1
            continue
        if link is None:
            unlinked += 1
            continue
        published = None
        if selectors.date is not None and selectors.date_format is not None:
            published = _day(_text(node, selectors.date), selectors.date_format)
            if published is None:
                undated += 1
            elif published > now + FUTURE_SLACK:
                future += 1
                published = None
        summary = excerpt(_text(node, selectors.summary), MAX_SUMMARY_CHARS) if selectors.summary else ""
        result.entries.append(Entry(title=title, link=link, published=published, summary=summary))
    for count, what in ((untitled, "without a title skipped"), (unlinked, "without a link skipped"),
                        (undated, "without a readable date kept undated"),
                        (future, "dated in the future kept undated")):
        if count:
            result.problems.append(f"{count} {'item' if count == 1 else 'items'} {what}")
    return result


def _text(node: LexborNode, selector: str | None) -> str:
    found = node.css_first(selector) if selector else None
    return " ".join(found.text(separator=" ").split()) if found is not None else ""


def _href(node: LexborNode, selector: str, base_url: str) -> str | None:
    """The absolute http(s) address of the link element, or of the first link inside it."""
    found = node.css_first(selector)
    if found is not None and found.attributes.get("href") is None:
        found = found.css_first("a[href]")
    href = (found.attributes.get("href") or "").strip() if found is not None else ""
    link = urljoin(base_url, href) if href else ""
    return link if link.startswith(("http://", "https://")) else None


def _day(text: str, date_format: str) -> datetime | None:
    """The start of the day a page gives, in Hong Kong, as aware UTC; None when the text is not that format."""
    try:
        day = datetime.strptime(text, date_format)
    except ValueError:
        return None
    return day.replace(tzinfo=PAGE_ZONE).astimezone(UTC)
