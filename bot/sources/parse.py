"""A fetched feed's bytes to clean entries, with feedparser: plain-text titles, absolute links, aware UTC dates.

What a feed gets wrong is counted, never raised: entries without a title or link are skipped, entries without a
date are kept undated, a date more than a day ahead is dropped (the item is kept, undated: a wrong date would sort
it above real news), a feed of more than MAX_ENTRIES items is read up to that many, and bytes that are not a feed
at all (an HTML page, broken XML with no entries) are a `ParsedFeed.error`.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import feedparser  # type: ignore[import-untyped]

from bot.sources.select import Entry, excerpt

MAX_ENTRIES = 500
MAX_TITLE_CHARS = 300  # a real headline is far shorter; a longer "title" is a feed's mistake
MAX_SUMMARY_CHARS = 2_000  # enough for the excerpt and the keywords; a whole article is not needed
FUTURE_SLACK = timedelta(days=1)
FALLBACK_ENCODINGS = ("utf-8", "big5hkscs", "gb18030")
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template"})


@dataclass
class ParsedFeed:
    """Entries read from one feed, what was wrong with some of them, or why none could be read."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each: "3 entries without a link skipped"
    error: str | None = None  # set when the bytes are not a usable feed
    total: int = 0  # entries the feed held, before any cap


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment, without tags and without the content of scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def plain_text(fragment: str) -> str:
    """An HTML fragment as one line of plain text: tags and scripts gone, entities decoded, spaces collapsed."""
    parser = _TextOnly()
    parser.feed(fragment)
    parser.close()
    return " ".join("".join(parser.parts).split())


def parse_feed(data: bytes, *, content_type: str | None, base_url: str, now: datetime,
               max_entries: int = MAX_ENTRIES) -> ParsedFeed:
    """Parse a feed's bytes (RSS or Atom, any declared or undeclared encoding) into entries and problems."""
    parsed = _feedparse(data, content_type)
    if isinstance(parsed.get("bozo_exception"), feedparser.CharacterEncodingOverride):
        # The feed's declared encoding is wrong, and feedparser's fallback is windows-1252, which turns Big5 into
        # mojibake. Try the encodings Hong Kong feeds use, strictly, and parse the text as UTF-8.
        for encoding in FALLBACK_ENCODINGS:
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            parsed = _feedparse(text.encode("utf-8"), "application/xml; charset=utf-8")
            break
    result = ParsedFeed()
    raw_entries = list(parsed.get("entries", []))
    result.total = len(raw_entries)
    if not parsed.get("version") and not raw_entries:
        reason = parsed.get("bozo_exception")
        result.error = f"not an RSS or Atom feed ({_reason(reason)})" if reason else "not an RSS or Atom feed"
        return result
    exception = parsed.get("bozo_exception")
    malformed = exception is not None and not isinstance(exception, feedparser.CharacterEncodingOverride)
    if result.total > max_entries:
        result.problems.append(f"feed has {result.total} entries; read the first {max_entries}")
        raw_entries = raw_entries[:max_entries]
    untitled = unlinked = undated = future = 0
    for raw in raw_entries:
        title = excerpt(plain_text(str(raw.get("title") or "")), MAX_TITLE_CHARS)
        link = str(raw.get("link") or "").strip()
        if not title:
            untitled += 1
            continue
        if not link.startswith(("http://", "https://")):
            link = urljoin(base_url, link) if link else ""
        if not link.startswith(("http://", "https://")):
            unlinked += 1
            continue
        published = _date(raw)
        if published is None:
            undated += 1
        elif published > now + FUTURE_SLACK:
            future += 1
            published = None
        summary = excerpt(plain_text(str(raw.get("summary") or "")), MAX_SUMMARY_CHARS)
        result.entries.append(Entry(title=title, link=link, published=published, summary=summary))
    for count, what in ((untitled, "without a title skipped"), (unlinked, "without a link skipped"),
                        (undated, "without a date kept undated"), (future, "dated in the future kept undated")):
        if count:
            result.problems.append(f"{count} {'entry' if count == 1 else 'entries'} {what}")
    if malformed and not result.entries:
        result.error = f"malformed feed ({_reason(exception)})"
    elif malformed:
        result.problems.insert(0, f"malformed feed, read as far as possible ({_reason(exception)})")
    return result


def _feedparse(data: bytes, content_type: str | None) -> Any:
    headers = {"content-type": content_type} if content_type else {}
    return feedparser.parse(data, response_headers=headers, sanitize_html=True, resolve_relative_uris=True)


def _date(raw: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        value = raw.get(key)
        if isinstance(value, time.struct_time):
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, OSError):
                return None
    return None


def _reason(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text[:120] if text else type(exc).__name__
