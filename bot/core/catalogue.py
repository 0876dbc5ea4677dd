"""The content model: sections, initiatives and dated updates, immutable once loaded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import MappingProxyType
from typing import TypeVar

from bot.core.chinese import to_traditional

ENGLISH = "en"
CHINESE = "zh-Hant"  # Traditional Chinese as written in Hong Kong
LANGUAGES = (ENGLISH, CHINESE)


@dataclass(frozen=True)
class Initiative:
    """A named programme, body or scheme, with its source.

    Its text is in `language`; `translations` holds the same initiative in the other language, if written. A reader
    gets `in_language(...)`, whose `language` differs from theirs when no translation exists (a marked fallback).
    """

    name: str
    body: str
    description: str
    link: str
    section_id: str
    year: int | None = None
    note: str | None = None
    language: str = ENGLISH
    translations: tuple[Initiative, ...] = ()

    @property
    def key(self) -> str:
        """Stable identity used to remember which initiatives a chat was shown."""
        return f"{self.section_id}/{self.name}"

    def in_language(self, language: str) -> Initiative:
        """The initiative as a reader of `language` sees it: its translation, or itself when there is none."""
        return _translated(self, language)


@dataclass(frozen=True)
class Section:
    """One section of the catalogue (government, finance, ...), in `language`, with its `translations`."""

    id: str
    order: int
    title: str
    aliases: tuple[str, ...]
    summary: str
    key_points: tuple[str, ...]
    related: tuple[str, ...]
    initiatives: tuple[Initiative, ...]
    language: str = ENGLISH
    translations: tuple[Section, ...] = ()  # title, aliases, summary and key points in another language

    def in_language(self, language: str) -> Section:
        """The section as a reader of `language` sees it: header translated if it can be, each initiative too."""
        shown = _translated(self, language)
        return replace(shown, initiatives=tuple(one.in_language(language) for one in self.initiatives),
                       translations=())

    def header_in(self, language: str) -> Section:
        """Only the title, aliases, summary and key points in `language` (or as written): cheaper than
        in_language for a title or a header, but its initiatives are not to be read (a translation has none)."""
        return _translated(self, language)


UPDATE_TITLE_LIMIT = 120  # characters of an update's title: the validator's limit, and /review edit's


@dataclass(frozen=True)
class Update:
    """A dated item of news, the stuff digests are made of; written in `language`, maybe with `translations`.

    An update from a Chinese source may be Chinese only: `language="zh-Hant"` and no English translation.
    """

    date: date
    sections: tuple[str, ...]
    title: str
    summary: str
    link: str
    language: str = ENGLISH
    translations: tuple[Update, ...] = ()

    @property
    def key(self) -> str:
        """Stable identity used to remember which updates a chat already received."""
        return f"{self.date.isoformat()}/{self.title}"

    def in_language(self, language: str) -> Update:
        """The update as a reader of `language` sees it: its translation, or itself when there is none."""
        return _translated(self, language)


@dataclass(frozen=True)
class Source:
    """A starting point for readers who want the primary material."""

    title: str
    link: str


@dataclass(frozen=True)
class About:
    """What the bot says about itself."""

    name: str
    tagline: str
    about: str
    contact: str
    sources: tuple[Source, ...]
    language: str = ENGLISH
    translations: tuple[About, ...] = ()

    def in_language(self, language: str) -> About:
        """What the bot says about itself to a reader of `language`, or the original when not translated."""
        return _translated(self, language)


_Text = TypeVar("_Text", Initiative, Section, Update, About)


def _translated(item: _Text, language: str) -> _Text:
    if item.language == language:
        return item
    return next((one for one in item.translations if one.language == language), item)


@dataclass(frozen=True)
class PageSelectors:
    """How to read a `kind: html` listing page: CSS selectors for each item and, inside it, its parts.

    `{item: "ul.news li", title: "a", link: "a", date: ".date", date_format: "%d %b %Y"}` reads
    `<li><a href="/p1.htm">AI sandbox opens</a><span class="date">3 Dec 2026</span></li>` as one item; the link is
    the `href` of the `link` element (or of the first link inside it); a date is a day in Hong Kong.
    """

    item: str
    title: str
    link: str
    date: str | None = None
    date_format: str | None = None  # a strptime format, given with `date`
    summary: str | None = None


@dataclass(frozen=True)
class WatchedSource:
    """An official source the bot polls for news, from content/sources.yaml.

    `{id: hkma-press, name: HKMA press releases, kind: rss, url: https://www.hkma.gov.hk/...xml, language: en,
    sections: [finance], poll_minutes: 30}` is `WatchedSource("hkma-press", "HKMA press releases", "rss", ...)`.
    """

    id: str
    name: str
    kind: str  # "rss", "atom" or "html"
    url: str
    language: str  # "en" or "zh-Hant"
    sections: tuple[str, ...]  # suggested for every item of this source
    poll_minutes: int
    keywords: tuple[str, ...] = ()  # extra AI keywords for this source only
    note: str | None = None
    page: PageSelectors | None = None  # for kind "html": where the items are on the page


@dataclass(frozen=True)
class SourceRules:
    """Which items are about AI (keywords, English and Chinese) and which sections they suggest."""

    keywords: tuple[str, ...]
    section_keywords: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Watchlist:
    """The sources file: the sources and the rules that pick candidates from them."""

    sources: tuple[WatchedSource, ...]
    rules: SourceRules

    def source(self, source_id: str) -> WatchedSource | None:
        """One source by id."""
        return next((source for source in self.sources if source.id == source_id), None)


@dataclass(frozen=True)
class Catalogue:
    """All content, validated; never mutated after loading."""

    sections: tuple[Section, ...]
    updates: tuple[Update, ...]
    about: About
    version: str
    loaded_at: datetime
    by_name: Mapping[str, Section] = field(default_factory=lambda: MappingProxyType({}))
    watchlist: Watchlist | None = None  # content/sources.yaml, when there is one

    def section(self, name: str) -> Section | None:
        """Find a section by id or alias (English or Chinese, Simplified typed or Traditional), case-insensitively."""
        return self.by_name.get(to_traditional(name.strip().lower()))

    @property
    def initiatives(self) -> tuple[Initiative, ...]:
        """Every initiative, in section order."""
        return tuple(item for section in self.sections for item in section.initiatives)

    def updates_for(self, section_id: str) -> tuple[Update, ...]:
        """Updates tagged with one section, newest first."""
        return tuple(update for update in self.updates if section_id in update.sections)
