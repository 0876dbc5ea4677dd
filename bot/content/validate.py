"""Validate content given as {relative path: YAML text} into a Catalogue, or raise with every error: pure, no disk."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import PurePath, PurePosixPath
from types import MappingProxyType
from typing import Any

from bot.content.errors import ContentError, InvalidContent, Unreadable
from bot.content.parse import LineList, LineMap, parse_file
from bot.core.catalogue import (
    CHINESE,
    ENGLISH,
    LANGUAGES,
    UPDATE_TITLE_LIMIT,
    About,
    Catalogue,
    Initiative,
    PageSelectors,
    Section,
    Source,
    SourceRules,
    Update,
    WatchedSource,
    Watchlist,
)
from bot.core.chinese import to_traditional
from bot.core.document import doc
from bot.core.render import render_initiative, render_section_header, render_update
from bot.sources.page import css_problem
from bot.tg.render import MESSAGE_LIMIT, message_length

SECTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
CHINESE_ALIAS = re.compile(r"^[^\s/@]{1,32}$")  # a name typed after /sector: no spaces, no command marks
MAX_TITLE = 40
MAX_UPDATE_TITLE = UPDATE_TITLE_LIMIT
EARLIEST_YEAR = 1950


# --- validation -------------------------------------------------------------------------------


class _Reporter:
    """Collects errors for one file, and the translations it lacks (an error only when a check asks for them)."""

    def __init__(self, file: str, errors: list[ContentError],
                 missing: list[tuple[str, ContentError]] | None = None) -> None:
        self.file = file
        self.errors = errors
        self.missing = [] if missing is None else missing

    def error(self, line: int, key: str, message: str) -> None:
        self.errors.append(ContentError(self.file, line, key, message))

    def untranslated(self, language: str, line: int, key: str, message: str) -> None:
        self.missing.append((language, ContentError(self.file, line, key, message)))


@dataclass(frozen=True)
class _Field:
    """A key a mapping may hold, and whether it must."""

    name: str
    required: bool = True


def _check_keys(report: _Reporter, data: LineMap, where: str, fields: Iterable[_Field]) -> None:
    known = {f.name for f in fields}
    for key, line in getattr(data, "key_lines", {}).items():
        if key not in known:
            report.error(line, _join(where, key), f"unknown key (expected one of: {', '.join(sorted(known))})")
    for key, line in data.get("__duplicate_keys__", []):
        report.error(line, _join(where, key), "duplicate key")
    for f in fields:
        if f.required and f.name not in data:
            report.error(data.line, _join(where, f.name), "missing required field")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _line_of(data: LineMap, key: str) -> int:
    return data.key_lines.get(key, data.line) if isinstance(data, LineMap) else 0


def _text(report: _Reporter, data: LineMap, where: str, key: str, *, required: bool = True,
          max_length: int | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    line = _line_of(data, key)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        report.error(line, _join(where, key), f"must be text, not {_kind(value)}")
        return None
    text = " ".join(str(value).split())
    if not text:
        if required:
            report.error(line, _join(where, key), "must not be empty")
        return None
    if max_length is not None and len(text) > max_length:
        report.error(line, _join(where, key), f"is {len(text)} characters; at most {max_length} allowed")
    return text


def _link(report: _Reporter, data: LineMap, where: str, key: str) -> str | None:
    value = _text(report, data, where, key)
    if value is None:
        return None
    if not re.match(r"^https?://[^\s/$.?#][^\s]*$", value):
        report.error(_line_of(data, key), _join(where, key), f"must be an http(s) link, got {value!r}")
        return None
    return value


def _string_list(report: _Reporter, data: LineMap, where: str, key: str) -> list[tuple[str, int]]:
    value = data.get(key)
    if value is None:
        return []
    line = _line_of(data, key)
    if not isinstance(value, list):
        report.error(line, _join(where, key), f"must be a list, not {_kind(value)}")
        return []
    items: list[tuple[str, int]] = []
    lines = getattr(value, "item_lines", [line] * len(value))
    for index, (item, item_line) in enumerate(zip(value, lines, strict=True)):
        if not isinstance(item, str) or not item.strip():
            report.error(item_line, f"{_join(where, key)}[{index}]", "must be non-empty text")
            continue
        items.append((" ".join(item.split()), item_line))
    return items


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return type(value).__name__


def _mappings(report: _Reporter, raw: list[Any], key: str, line: int) -> Iterator[tuple[str, LineMap]]:
    """Each mapping in a list with its place (`key[index]`); an item that is not one is reported."""
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(item, LineMap):
            item_line = raw.item_lines[index] if isinstance(raw, LineList) else line
            report.error(item_line, where, f"must be a mapping, not {_kind(item)}")
            continue
        yield where, item


SECTION_FIELDS = (
    _Field("id"), _Field("order"), _Field("title"), _Field("aliases", False),
    _Field("summary"), _Field("key_points"), _Field("related", False),
    _Field("initiatives"), _Field(CHINESE, False),
)
INITIATIVE_FIELDS = (
    _Field("name"), _Field("year", False), _Field("body"),
    _Field("description"), _Field("link"), _Field("note", False), _Field(CHINESE, False),
)
UPDATE_FIELDS = (
    _Field("date"), _Field("sections"), _Field("title"),
    _Field("summary"), _Field("link"), _Field("language", False), _Field(ENGLISH, False), _Field(CHINESE, False),
)
ABOUT_FIELDS = (
    _Field("name"), _Field("tagline"), _Field("about"),
    _Field("contact"), _Field("sources"), _Field(CHINESE, False),
)
# What a translation (the `zh-Hant:` mapping of an English item, the `en:` of a Chinese update) holds. A name left
# out is the original name: a programme without an official Chinese name keeps its English one.
SECTION_TRANSLATED = (_Field("title"), _Field("aliases", False), _Field("summary"), _Field("key_points"))
INITIATIVE_TRANSLATED = (_Field("name", False), _Field("body"), _Field("description"), _Field("note", False))
UPDATE_TRANSLATED = (_Field("title"), _Field("summary"))
ABOUT_TRANSLATED = (_Field("name", False), _Field("tagline"), _Field("about"), _Field("contact"))
SOURCE_FIELDS = (_Field("title"), _Field("link"))
WATCHLIST_FIELDS = (_Field("keywords"), _Field("section_keywords", False), _Field("sources"))
WATCHED_FIELDS = (
    _Field("id"), _Field("name"), _Field("kind"), _Field("url"), _Field("language"),
    _Field("sections"), _Field("poll_minutes"), _Field("keywords", False), _Field("note", False),
    _Field("select", False),
)
SELECT_FIELDS = (_Field("item"), _Field("title"), _Field("link"), _Field("date", False), _Field("date_format", False),
                 _Field("summary", False))
SOURCE_KINDS = ("rss", "atom", "html")
SOURCE_LANGUAGES = ("en", "zh-Hant")
MIN_POLL_MINUTES = 15


def _translations(report: _Reporter, data: LineMap, where: str, language: str,
                  fields: tuple[_Field, ...]) -> Iterator[tuple[str, str, LineMap, bool]]:
    """Each translation of an item written in `language`: (its language, its place, its mapping, complete?).

    A translation that is absent, or lacks a field it needs, is noted as missing (`content check --lang` lists
    those); keys it must not hold, and a "translation" into the item's own language, are errors.
    """
    if language in data:
        others = " or ".join(other for other in LANGUAGES if other != language)
        report.error(_line_of(data, language), _join(where, language),
                     f"the text is in {language} already; a translation goes under {others}")
    for other in LANGUAGES:
        if other == language:
            continue
        place = _join(where, other)
        raw = data.get(other)
        if raw is None:
            report.untranslated(other, data.line, place, "missing translation")
            continue
        if not isinstance(raw, LineMap):
            report.error(_line_of(data, other), place, f"must be a mapping of translated fields, not {_kind(raw)}")
            continue
        _check_keys(report, raw, place, tuple(_Field(f.name, False) for f in fields))
        complete = True
        for f in fields:
            if f.required and f.name not in raw:
                report.untranslated(other, raw.line, _join(place, f.name), "missing translation")
                complete = False
        yield other, place, raw, complete


@dataclass
class _Pending:
    """What one pass over the files found, before cross-file checks."""

    sections: list[tuple[Section, _Reporter, LineMap]] = field(default_factory=list)
    updates: list[tuple[Update, _Reporter, LineMap, str]] = field(default_factory=list)
    about: About | None = None
    declared_ids: set[str] = field(default_factory=set)  # ids of every section file, valid or not
    watchlist: tuple[Watchlist, _Reporter, LineMap] | None = None


def _read_section(report: _Reporter, data: Any, today: date) -> Section | None:
    if not isinstance(data, LineMap):
        report.error(getattr(data, "line", 1), "(file)", f"must be a mapping of section fields, not {_kind(data)}")
        return None
    _check_keys(report, data, "", SECTION_FIELDS)
    section_id = _text(report, data, "", "id")
    if section_id is not None and not SECTION_ID.match(section_id):
        report.error(_line_of(data, "id"), "id", "must be lowercase letters, digits and dashes (max 32)")
    order = data.get("order")
    if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
        report.error(_line_of(data, "order"), "order", f"must be a whole number, not {_kind(order)}")
        order = None
    title = _text(report, data, "", "title", max_length=MAX_TITLE)
    summary = _text(report, data, "", "summary")
    aliases = _string_list(report, data, "", "aliases")
    for alias, line in aliases:
        if not SECTION_ID.match(alias):
            report.error(line, "aliases", f"alias {alias!r} must be lowercase letters, digits and dashes")
    key_points = _string_list(report, data, "", "key_points")
    if "key_points" in data and not key_points and isinstance(data.get("key_points"), list):
        report.error(_line_of(data, "key_points"), "key_points", "must list at least one point")
    related = _string_list(report, data, "", "related")
    initiatives = _read_initiatives(report, data, section_id or "?", today)
    translations: list[Section] = []
    for language, where, raw, complete in _translations(report, data, "", ENGLISH, SECTION_TRANSLATED):
        shown_title = _text(report, raw, where, "title", max_length=MAX_TITLE)
        shown_summary = _text(report, raw, where, "summary")
        shown_aliases = _string_list(report, raw, where, "aliases")
        for alias, line in shown_aliases:
            if not CHINESE_ALIAS.match(alias):
                report.error(line, f"{where}.aliases", f"alias {alias!r} must be one word of at most 32 characters")
        shown_points = _string_list(report, raw, where, "key_points")
        if "key_points" in raw and not shown_points and isinstance(raw.get("key_points"), list):
            report.error(_line_of(raw, "key_points"), f"{where}.key_points", "must list at least one point")
        if complete and section_id and order is not None and shown_title and shown_summary and shown_points:
            translations.append(Section(
                id=section_id, order=order, title=shown_title, aliases=tuple(_alias(a) for a, _ in shown_aliases),
                summary=shown_summary, key_points=tuple(p for p, _ in shown_points),
                related=tuple(r for r, _ in related), initiatives=(), language=language))
    if section_id is None or title is None or summary is None or order is None or initiatives is None:
        return None
    return Section(
        id=section_id, order=order, title=title, aliases=tuple(a for a, _ in aliases), summary=summary,
        key_points=tuple(p for p, _ in key_points), related=tuple(r for r, _ in related),
        initiatives=initiatives, translations=tuple(translations),
    )


def _alias(name: str) -> str:
    """A section name as lookups compare it: lowercase, and Chinese in Hong Kong Traditional characters."""
    return to_traditional(name.strip().lower())


def _read_initiatives(report: _Reporter, data: LineMap, section_id: str, today: date) -> tuple[Initiative, ...] | None:
    raw = data.get("initiatives")
    if raw is None:
        return None
    if not isinstance(raw, list):
        report.error(_line_of(data, "initiatives"), "initiatives", f"must be a list, not {_kind(raw)}")
        return None
    result: list[Initiative] = []
    seen: dict[str, int] = {}
    for where, item in _mappings(report, raw, "initiatives", data.line):
        _check_keys(report, item, where, INITIATIVE_FIELDS)
        name = _text(report, item, where, "name")
        body = _text(report, item, where, "body")
        description = _text(report, item, where, "description")
        link = _link(report, item, where, "link")
        note = _text(report, item, where, "note", required=False)
        year = item.get("year")
        if year is not None and (isinstance(year, bool) or not isinstance(year, int)
                                 or not EARLIEST_YEAR <= year <= today.year + 1):
            report.error(_line_of(item, "year"), f"{where}.year",
                         f"must be a year between {EARLIEST_YEAR} and {today.year + 1}, got {year!r}")
            year = None
        if name is not None:
            if name.lower() in seen:
                first = seen[name.lower()]
                report.error(item.line, f"{where}.name", f"duplicate initiative {name!r} (also at line {first})")
            seen.setdefault(name.lower(), item.line)
        translations: list[Initiative] = []
        for language, place, raw_text, complete in _translations(report, item, where, ENGLISH,
                                                                 INITIATIVE_TRANSLATED):
            shown_name = _text(report, raw_text, place, "name")
            shown_body = _text(report, raw_text, place, "body")
            shown_description = _text(report, raw_text, place, "description")
            shown_note = _text(report, raw_text, place, "note", required=False)
            if note is not None and "note" not in raw_text:
                # The note carries a caveat (a secondary source, an unconfirmed link) no reader may lose.
                report.untranslated(language, raw_text.line, f"{place}.note", "missing translation (the original "
                                                                              "has a note)")
                complete = False
            if complete and name and shown_body and shown_description and link:
                translations.append(Initiative(name=shown_name or name, body=shown_body,
                                               description=shown_description, link=link, section_id=section_id,
                                               year=year, note=shown_note, language=language))
        if name and body and description and link:
            result.append(Initiative(name=name, body=body, description=description, link=link,
                                     section_id=section_id, year=year, note=note,
                                     translations=tuple(translations)))
    return tuple(result)


def _read_updates(report: _Reporter, data: Any, latest: date | None) -> list[tuple[Update, LineMap, str]]:
    if not isinstance(data, LineMap) or not isinstance(data.get("updates"), list):
        report.error(getattr(data, "line", 1), "updates", "the file must hold `updates:` with a list of updates")
        return []
    _check_keys(report, data, "", (_Field("updates"),))
    raw: LineList = data["updates"]
    result: list[tuple[Update, LineMap, str]] = []
    for where, item in _mappings(report, raw, "updates", raw.line):
        _check_keys(report, item, where, UPDATE_FIELDS)
        day = _date(report, item, where)
        if day is not None and latest is not None and day > latest:
            # A typo like 2062 would pin the update to the top of /latest and keep it out of digests until then.
            report.error(_line_of(item, "date"), f"{where}.date",
                         f"{day.isoformat()} is in the future (after tomorrow, {latest.isoformat()})")
            day = None
        sections = _string_list(report, item, where, "sections")
        if "sections" in item and not sections and isinstance(item.get("sections"), list):
            report.error(_line_of(item, "sections"), f"{where}.sections", "must name at least one section")
        title = _text(report, item, where, "title", max_length=MAX_UPDATE_TITLE)
        summary = _text(report, item, where, "summary")
        link = _link(report, item, where, "link")
        language = _language(report, item, where)
        translations: list[Update] = []
        for other, place, raw_text, complete in _translations(report, item, where, language or ENGLISH,
                                                              UPDATE_TRANSLATED):
            shown_title = _text(report, raw_text, place, "title", max_length=MAX_UPDATE_TITLE)
            shown_summary = _text(report, raw_text, place, "summary")
            if complete and day and sections and shown_title and shown_summary and link:
                translations.append(Update(date=day, sections=tuple(s for s, _ in sections), title=shown_title,
                                           summary=shown_summary, link=link, language=other))
        if day and sections and title and summary and link and language:
            update = Update(date=day, sections=tuple(s for s, _ in sections), title=title, summary=summary, link=link,
                            language=language, translations=tuple(translations))
            result.append((update, item, where))
    return result


def _language(report: _Reporter, item: LineMap, where: str) -> str | None:
    """The language an update is written in: `language:`, English when not given."""
    if "language" not in item:
        return ENGLISH
    language = _text(report, item, where, "language")
    if language is not None and language not in LANGUAGES:
        report.error(_line_of(item, "language"), f"{where}.language",
                     f"must be one of {', '.join(LANGUAGES)}, got {language!r}")
        return None
    return language


def _date(report: _Reporter, item: LineMap, where: str) -> date | None:
    value = item.get("date")
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        report.error(_line_of(item, "date"), f"{where}.date", f"must be a real date written YYYY-MM-DD, got {value!r}")
        return None


def _read_about(report: _Reporter, data: Any) -> About | None:
    if not isinstance(data, LineMap):
        report.error(getattr(data, "line", 1), "(file)", f"must be a mapping, not {_kind(data)}")
        return None
    _check_keys(report, data, "", ABOUT_FIELDS)
    texts = {key: _text(report, data, "", key) for key in ("name", "tagline", "about", "contact")}
    sources: list[Source] = []
    raw = data.get("sources")
    if isinstance(raw, LineList):
        for where, item in _mappings(report, raw, "sources", raw.line):
            _check_keys(report, item, where, SOURCE_FIELDS)
            title, link = _text(report, item, where, "title"), _link(report, item, where, "link")
            if title and link:
                sources.append(Source(title, link))
    elif raw is not None:
        report.error(_line_of(data, "sources"), "sources", f"must be a list, not {_kind(raw)}")
    name, tagline, about, contact = texts["name"], texts["tagline"], texts["about"], texts["contact"]
    translations: list[About] = []
    for language, where, raw_text, complete in _translations(report, data, "", ENGLISH, ABOUT_TRANSLATED):
        shown = {key: _text(report, raw_text, where, key) for key in ("name", "tagline", "about", "contact")}
        if complete and name and shown["tagline"] and shown["about"] and shown["contact"]:
            translations.append(About(name=shown["name"] or name, tagline=shown["tagline"], about=shown["about"],
                                      contact=shown["contact"], sources=tuple(sources), language=language))
    if not (name and tagline and about and contact):
        return None
    return About(name=name, tagline=tagline, about=about, contact=contact, sources=tuple(sources),
                 translations=tuple(translations))


def _read_watchlist(report: _Reporter, data: Any) -> Watchlist | None:
    if not isinstance(data, LineMap):
        report.error(getattr(data, "line", 1), "(file)", f"must be a mapping, not {_kind(data)}")
        return None
    _check_keys(report, data, "", WATCHLIST_FIELDS)
    keywords = _string_list(report, data, "", "keywords")
    if "keywords" in data and not keywords and isinstance(data.get("keywords"), list):
        report.error(_line_of(data, "keywords"), "keywords", "must list at least one keyword")
    section_keywords: dict[str, tuple[str, ...]] = {}
    raw_sections = data.get("section_keywords")
    if isinstance(raw_sections, LineMap):
        for section_id in raw_sections:
            if section_id == "__duplicate_keys__":
                continue
            words = _string_list(report, raw_sections, "section_keywords", str(section_id))
            section_keywords[str(section_id)] = tuple(w for w, _ in words)
    elif raw_sections is not None:
        report.error(_line_of(data, "section_keywords"), "section_keywords",
                     f"must be a mapping, not {_kind(raw_sections)}")
    sources: list[WatchedSource] = []
    seen: dict[str, int] = {}
    raw = data.get("sources")
    if isinstance(raw, LineList):
        for where, item in _mappings(report, raw, "sources", raw.line):
            raw_id = item.get("id")
            if isinstance(raw_id, str) and raw_id.strip() in seen:
                report.error(_line_of(item, "id"), f"{where}.id", f"duplicate source id {raw_id.strip()!r} "
                                                                  f"(also at line {seen[raw_id.strip()]})")
            elif isinstance(raw_id, str):
                seen[raw_id.strip()] = _line_of(item, "id")
            source = _read_watched(report, item, where)
            if source is not None and source.id not in {s.id for s in sources}:
                sources.append(source)
    elif raw is not None:
        report.error(_line_of(data, "sources"), "sources", f"must be a list, not {_kind(raw)}")
    if not keywords:
        return None
    return Watchlist(sources=tuple(sources), rules=SourceRules(
        keywords=tuple(k for k, _ in keywords), section_keywords=MappingProxyType(section_keywords)))


def _read_watched(report: _Reporter, item: LineMap, where: str) -> WatchedSource | None:
    _check_keys(report, item, where, WATCHED_FIELDS)
    source_id = _text(report, item, where, "id")
    if source_id is not None and not SECTION_ID.match(source_id):
        report.error(_line_of(item, "id"), f"{where}.id", "must be lowercase letters, digits and dashes (max 32)")
        source_id = None
    name = _text(report, item, where, "name", max_length=MAX_UPDATE_TITLE)
    kind = _text(report, item, where, "kind")
    if kind is not None and kind not in SOURCE_KINDS:
        report.error(_line_of(item, "kind"), f"{where}.kind", f"must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
        kind = None
    page = None
    if kind == "html":
        page = _read_selectors(report, item, where)
        if page is None:
            kind = None
    elif "select" in item and kind is not None:
        report.error(_line_of(item, "select"), f"{where}.select", "only a kind: html source has selectors")
    url = _link(report, item, where, "url")
    language = _text(report, item, where, "language")
    if language is not None and language not in SOURCE_LANGUAGES:
        report.error(_line_of(item, "language"), f"{where}.language",
                     f"must be one of {', '.join(SOURCE_LANGUAGES)}, got {language!r}")
        language = None
    sections = _string_list(report, item, where, "sections")
    minutes = item.get("poll_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)
                                or minutes < MIN_POLL_MINUTES):
        report.error(_line_of(item, "poll_minutes"), f"{where}.poll_minutes",
                     f"must be a whole number of minutes, at least {MIN_POLL_MINUTES}, got {minutes!r}")
        minutes = None
    keywords = _string_list(report, item, where, "keywords")
    note = _text(report, item, where, "note", required=False)
    if not (source_id and name and kind and url and language and minutes):
        return None
    return WatchedSource(id=source_id, name=name, kind=kind, url=url, language=language,
                         sections=tuple(s for s, _ in sections), poll_minutes=minutes,
                         keywords=tuple(k for k, _ in keywords), note=note, page=page)


def _read_selectors(report: _Reporter, item: LineMap, where: str) -> PageSelectors | None:
    """A kind: html source's `select:` mapping: CSS selectors, each checked by the library that will run it."""
    where = _join(where, "select")
    data = item.get("select")
    if not isinstance(data, LineMap):
        report.error(_line_of(item, "select"), where, "missing required field: a kind: html source needs "
                     "selectors (item, title, link)" if data is None else f"must be a mapping, not {_kind(data)}")
        return None
    _check_keys(report, data, where, SELECT_FIELDS)
    found: dict[str, str | None] = {}
    for name in ("item", "title", "link", "date", "summary"):
        selector = _text(report, data, where, name)
        refused = None if selector is None else css_problem(selector)
        if refused is not None:
            report.error(_line_of(data, name), _join(where, name), refused)
            selector = None
        found[name] = selector
    date_format = _text(report, data, where, "date_format")
    usable = all(found[name] is not None for name in ("item", "title", "link")) and all(
        found[name] is not None for name in ("date", "summary") if name in data)
    if ("date" in data) != ("date_format" in data):
        given, missing = ("date", "date_format") if "date" in data else ("date_format", "date")
        report.error(_line_of(data, given), _join(where, missing), f"missing: {given} needs {missing}")
        usable = False
    elif date_format is not None and (problem := _date_format_problem(date_format)):
        report.error(_line_of(data, "date_format"), _join(where, "date_format"), problem)
        usable = False
    if not usable:
        return None
    item_css, title, link = found["item"], found["title"], found["link"]
    if item_css is None or title is None or link is None:  # never, when usable: said for the type checker
        return None
    return PageSelectors(item=item_css, title=title, link=link, date=found["date"], date_format=date_format,
                         summary=found["summary"])


def _date_format_problem(date_format: str) -> str | None:
    """Why a strptime format cannot read dates ('%d %b %Y' can; 'Dec 3' cannot), or None."""
    sample = datetime(2026, 12, 3, 9, 30)
    try:
        if "%" not in date_format or datetime.strptime(sample.strftime(date_format), date_format).date() != \
                sample.date():
            return f"must be a strptime format naming the day, month and year (e.g. '%d %b %Y'), got {date_format!r}"
    except ValueError as exc:
        return f"not a usable strptime format ({exc}): {date_format!r}"
    return None


def validate_texts(texts: Mapping[str, str | Unreadable], *, base: PurePath, now: datetime,
                   shown: str | None = None, future_updates: bool = True,
                   require_language: str | None = None) -> Catalogue:
    """Validate content given as {relative path: YAML text}; raise InvalidContent listing every problem.

    With `require_language` (`zh-Hant`), every missing translation into it is a problem too, at its place.
    """
    errors: list[ContentError] = []
    missing: list[tuple[str, ContentError]] = []
    pending = _Pending()
    today = now.date()
    latest = None if future_updates else today + timedelta(days=1)
    prefix = base.as_posix() if shown is None else shown
    for relative in sorted(texts):
        shown_file = f"{prefix}/{relative}" if prefix else relative
        report = _Reporter(shown_file, errors, missing)
        parsed = parse_file(texts[relative], shown_file)
        if isinstance(parsed, ContentError):
            errors.append(parsed)
            if relative.startswith("sections/"):
                # Assume the usual <id>.yaml naming so other files' references to it are not reported too.
                pending.declared_ids.add(PurePosixPath(relative).stem)
            continue
        data = parsed.data
        name = PurePosixPath(relative).name
        if relative.startswith("sections/"):
            if isinstance(data, LineMap) and isinstance(data.get("id"), str):
                pending.declared_ids.add(data["id"].strip())
            section = _read_section(report, data, today)
            if section is not None:
                pending.sections.append((section, report, data))
        elif name in ("updates.yaml", "updates.yml"):
            pending.updates.extend((u, report, item, where) for u, item, where in _read_updates(report, data, latest))
        elif name in ("about.yaml", "about.yml"):
            if pending.about is not None:
                report.error(1, "(file)", "a second about file; keep one")
            pending.about = _read_about(report, data)
        elif name in ("sources.yaml", "sources.yml"):
            if pending.watchlist is not None:
                report.error(1, "(file)", "a second sources file; keep one")
            watchlist = _read_watchlist(report, data)
            if watchlist is not None and isinstance(data, LineMap):
                pending.watchlist = (watchlist, report, data)
        else:
            report.error(1, "(file)", "unexpected content file: put sections in sections/, news in updates.yaml, "
                                      "the bot's description in about.yaml and watched sources in sources.yaml")
    errors.extend(error for language, error in missing if language == require_language)
    catalogue = _cross_check(pending, errors, prefix, texts, now)
    if errors or catalogue is None:
        if not errors:
            errors.append(ContentError(prefix or ".", 0, "(content)", "no usable content"))
        raise InvalidContent(errors)
    return catalogue


def _cross_check(pending: _Pending, errors: list[ContentError], prefix: str,
                 texts: Mapping[str, str | Unreadable], now: datetime) -> Catalogue | None:
    names: dict[str, tuple[_Reporter, str, int]] = {}
    for section, report, data in pending.sections:
        for name, key, line in _names(section, data):
            if name in names:
                # Report the clash at both places: either file may be the one an admin just changed.
                other_report, other_key, other_line = names[name]
                report.error(line, key, f"{name!r} is already used by {other_report.file}:{other_line}")
                other_report.error(other_line, other_key, f"{name!r} is already used by {report.file}:{line}")
            else:
                names[name] = (report, key, line)
    known = pending.declared_ids
    for section, report, data in pending.sections:
        for related in section.related:
            if related not in known:
                report.error(_line_of(data, "related"), "related", f"no section with id {related!r}")
            elif related == section.id:
                report.error(_line_of(data, "related"), "related", "a section cannot be related to itself")
        _check_fits(report, data, section)
    seen_updates: dict[str, int] = {}
    for update, report, item, where in pending.updates:
        for section_id in update.sections:
            if section_id not in known:
                report.error(_line_of(item, "sections"), f"{where}.sections", f"no section with id {section_id!r}")
        if update.key in seen_updates:
            first = seen_updates[update.key]
            report.error(item.line, f"{where}.title", f"duplicate update (same date and title as line {first})")
        seen_updates.setdefault(update.key, item.line)
        for language in LANGUAGES:
            if message_length(doc(render_update(update, language))) > MESSAGE_LIMIT:
                report.error(item.line, _summary_key(where, update.language, language),
                             f"renders to more than {MESSAGE_LIMIT} characters")
    _check_cut_links(pending)
    _check_watchlist_sections(pending)
    if pending.about is None and not any(PurePosixPath(p).name.startswith("about.") for p in texts):
        errors.append(ContentError(f"{prefix}/about.yaml" if prefix else "about.yaml", 0, "(file)",
                                   "missing about.yaml"))
    if not pending.sections:
        errors.append(ContentError(f"{prefix}/sections" if prefix else "sections", 0, "(directory)",
                                   "no sections found"))
    if errors or pending.about is None:
        return None
    sections = tuple(sorted((s for s, _, _ in pending.sections), key=lambda s: (s.order, s.id)))
    lookup = {name: section for section in sections
              for name in (section.id, *section.aliases, *(a for t in section.translations for a in t.aliases))}
    updates = tuple(sorted((u for u, _, _, _ in pending.updates), key=lambda u: (u.date, u.title), reverse=True))
    digest = hashlib.sha256()
    for relative in sorted(texts):
        text = texts[relative]
        assert isinstance(text, str)  # an unreadable file is an error, and errors return before this
        digest.update(relative.encode() + b"\0" + text.encode() + b"\0")
    return Catalogue(sections=sections, updates=updates, about=pending.about, version=digest.hexdigest()[:12],
                     loaded_at=now, by_name=MappingProxyType(lookup),
                     watchlist=pending.watchlist[0] if pending.watchlist else None)


def _check_watchlist_sections(pending: _Pending) -> None:
    """Every section a source or a section keyword names must exist."""
    if pending.watchlist is None:
        return
    watchlist, report, data = pending.watchlist
    known = pending.declared_ids
    raw_sections = data.get("section_keywords")
    for section_id in watchlist.rules.section_keywords:
        if section_id not in known:
            line = raw_sections.key_lines.get(section_id, data.line) if isinstance(raw_sections, LineMap) else data.line
            report.error(line, f"section_keywords.{section_id}", f"no section with id {section_id!r}")
    raw = data.get("sources")
    for index, item in enumerate(raw if isinstance(raw, LineList) else []):
        if not isinstance(item, LineMap) or not isinstance(item.get("sections"), list):
            continue
        for section_id in item["sections"]:
            if isinstance(section_id, str) and section_id.strip() not in known:
                report.error(_line_of(item, "sections"), f"sources[{index}].sections",
                             f"no section with id {section_id.strip()!r}")


def _check_cut_links(pending: _Pending) -> None:
    """A link whose slug another link continues inside a word (`.../policy-on-responsible-appl` of
    `.../policy-on-responsible-application`) was cut off when copied. A parent page (`.../programmes/` of
    `.../programmes/incu-tech/`) or a shorter id (`/article/1` of `/article/10`) is not reported."""
    found: list[tuple[str, _Reporter, int, str]] = []
    for _, report, data in pending.sections:
        raw = data.get("initiatives")
        for index, item in enumerate(raw if isinstance(raw, LineList) else []):
            if isinstance(item, LineMap) and isinstance(item.get("link"), str):
                found.append((item["link"].strip(), report, _line_of(item, "link"), f"initiatives[{index}].link"))
    for update, report, item, where in pending.updates:
        found.append((update.link, report, _line_of(item, "link"), f"{where}.link"))
    links = sorted({link for link, *_ in found})
    for link, report, line, key in found:
        slug = link.rsplit("/", 1)[-1]
        if "-" not in slug or not link[-1].isalpha():
            continue
        longer = [other for other in links if other.startswith(link) and other[len(link):][:1].isalpha()]
        if longer:
            report.error(line, key, f"looks cut off: {longer[0]!r} continues it")


def _names(section: Section, data: LineMap) -> Iterator[tuple[str, str, int]]:
    """Every name a section answers to, with its key and line: id, aliases, and the translations' aliases."""
    yield section.id, "id", _line_of(data, "id")
    for alias in section.aliases:
        yield alias, "aliases", _line_of(data, "aliases")
    for translation in section.translations:
        raw = data.get(translation.language)
        for alias in translation.aliases:
            yield alias, f"{translation.language}.aliases", _line_of(raw, "aliases") if isinstance(raw, LineMap) else 0


def _summary_key(where: str, written: str, language: str) -> str:
    """Where a too-long text is: `summary`, or `zh-Hant.summary` for its translation."""
    return _join(where, "summary" if written == language else f"{language}.summary")


def _check_fits(report: _Reporter, data: LineMap, section: Section) -> None:
    """Every unit the bot sends alone (a section header, one initiative) must fit one Telegram message, in every
    language (UTF-16 units, as Telegram counts)."""
    raw = data.get("initiatives")
    lines = raw.item_lines if isinstance(raw, LineList) else []
    for language in LANGUAGES:
        if message_length(render_section_header(section, language)) > MESSAGE_LIMIT:
            report.error(_line_of(data, "summary"), _summary_key("", ENGLISH, language),
                         f"the section renders to more than {MESSAGE_LIMIT} chars")
        for index, initiative in enumerate(section.initiatives):
            if message_length(doc(render_initiative(initiative, language))) > MESSAGE_LIMIT:
                line = lines[index] if index < len(lines) else data.line
                key = f"initiatives[{index}]" if language == ENGLISH else f"initiatives[{index}].{language}"
                report.error(line, key, f"renders to more than {MESSAGE_LIMIT} characters")
