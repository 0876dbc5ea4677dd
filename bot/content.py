"""Load and validate content/ into an immutable, typed catalogue, reporting every error with its place."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from bot.core.catalogue import About, Catalogue, Initiative, Section, Source, Update
from bot.core.document import doc
from bot.core.render import render_initiative, render_section_header, render_update
from bot.tg.render import MESSAGE_LIMIT, message_length

SECTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
MAX_TITLE = 40
MAX_UPDATE_TITLE = 120
EARLIEST_YEAR = 1950
MAX_FILE_BYTES = 1024 * 1024  # the largest content file on disk or from a replica (updates.yaml grows)
MAX_DEPTH = 32  # YAML nesting levels; content needs 5, and deeper documents only serve to exhaust the stack


@dataclass(frozen=True)
class ContentError:
    """One problem in a content file, printed as `file:line: key: message`."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


class InvalidContent(Exception):
    """Raised when content/ has errors; carries all of them."""

    def __init__(self, errors: list[ContentError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


# --- YAML with line numbers -------------------------------------------------------------------


class LineMap(dict[str, Any]):
    """A YAML mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    """A YAML sequence that remembers the line of itself and of each item (1-based)."""

    line: int = 0
    item_lines: list[int]


class _Guarded:
    """Composes YAML refusing anchors, aliases and deep nesting, before anything is built from it."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Compose one node, refusing what could expand or recurse without bound."""
        # Content has no use for anchors or aliases, and an alias is how a 500-byte file expands to gigabytes
        # ("billion laughs", also through keys and merge keys); refusing them here is before any expansion.
        # PyYAML composes and constructs recursively, so the depth cap also keeps RecursionError out of reach.
        event = self.peek_event()  # type: ignore[attr-defined]
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, f"aliases (*{event.anchor}) are not allowed in content "
                                              "files; write the value out", mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise yaml.composer.ComposerError(None, None, f"anchors (&{anchor}) are not allowed in content files",
                                              mark)
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        finally:
            self._depth -= 1


class _LineLoader(_Guarded, yaml.SafeLoader):
    """SafeLoader that records line numbers, keeps dates as strings and refuses anchors, aliases and deep nesting."""


_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise yaml.constructor.ConstructorError(None, None, "merge keys (<<) are not allowed in content files",
                                                    key_node.start_mark)
        key = loader.construct_object(key_node, deep=True)
        key_text = str(key)
        if key_text in result:
            # A repeated key silently overwrites in plain YAML; here it is an error we report later.
            result.setdefault("__duplicate_keys__", []).append((key_text, key_node.start_mark.line + 1))
            continue
        result[key_text] = loader.construct_object(value_node, deep=True)
        result.key_lines[key_text] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


_Loader: type[_LineLoader] | type[_FastLineLoader] = _LineLoader
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _FastLineLoader(_Guarded, yaml.composer.Composer, CParser, yaml.constructor.SafeConstructor,
                          yaml.resolver.Resolver):
        """_LineLoader with libyaml's scanner and parser: 5x faster on a large file; composing stays guarded."""

        # Composer comes before CParser so that composing (and its guard) is ours; CParser supplies the events.
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            yaml.composer.Composer.__init__(self)

    _FastLineLoader.yaml_implicit_resolvers = _LineLoader.yaml_implicit_resolvers
    _FastLineLoader.yaml_constructors = _LineLoader.yaml_constructors
    _Loader = _FastLineLoader


def parse_yaml(text: str) -> Any:
    """Parse YAML safely (no arbitrary objects, anchors, aliases or deep nesting) into LineMap/LineList values."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_error(file: str, exc: yaml.YAMLError, text: str = "") -> ContentError:
    """A YAML syntax error (or a refused alias, anchor or nesting) as one line: `file:line: (yaml): ...`."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):  # a character YAML refuses (NUL, other controls)
        line = text.count("\n", 0, exc.position) + 1
    else:
        line = 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ContentError(file, line, "(yaml)", f"not valid YAML: {problem}")


@dataclass(frozen=True)
class Unreadable:
    """A content file that could not be read as text; its one error says why."""

    message: str


def decode_content(data: bytes) -> str | Unreadable:
    """A content file's text, or why it is not usable text (too large, not UTF-8)."""
    if len(data) > MAX_FILE_BYTES:
        return Unreadable(f"is {len(data)} bytes; at most {MAX_FILE_BYTES} allowed")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Unreadable(f"not UTF-8 text (bad byte at offset {exc.start})")


def read_content(directory: Path) -> dict[str, str | Unreadable]:
    """Every content file below `directory` as {relative path: text, or why it is unreadable}."""
    texts: dict[str, str | Unreadable] = {}
    for path in content_files(directory):
        relative = path.relative_to(directory).as_posix()
        try:
            with path.open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)  # a huge file is refused without reading all of it
        except OSError as exc:
            texts[relative] = Unreadable(f"cannot be read: {exc.strerror or type(exc).__name__}")
            continue
        if len(data) > MAX_FILE_BYTES:
            texts[relative] = Unreadable(f"is more than {MAX_FILE_BYTES} bytes; at most {MAX_FILE_BYTES} allowed")
        else:
            texts[relative] = decode_content(data)
    return texts


# --- validation -------------------------------------------------------------------------------


class _Reporter:
    """Collects errors for one file."""

    def __init__(self, file: str, errors: list[ContentError]) -> None:
        self.file = file
        self.errors = errors

    def error(self, line: int, key: str, message: str) -> None:
        self.errors.append(ContentError(self.file, line, key, message))


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # text | int | list | map | date | link | ids
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


SECTION_FIELDS = (
    _Field("id", "text"), _Field("order", "int"), _Field("title", "text"), _Field("aliases", "list", False),
    _Field("summary", "text"), _Field("key_points", "list"), _Field("related", "list", False),
    _Field("initiatives", "list"),
)
INITIATIVE_FIELDS = (
    _Field("name", "text"), _Field("year", "int", False), _Field("body", "text"),
    _Field("description", "text"), _Field("link", "link"), _Field("note", "text", False),
)
UPDATE_FIELDS = (
    _Field("date", "date"), _Field("sections", "ids"), _Field("title", "text"),
    _Field("summary", "text"), _Field("link", "link"),
)
ABOUT_FIELDS = (
    _Field("name", "text"), _Field("tagline", "text"), _Field("about", "text"),
    _Field("contact", "text"), _Field("sources", "list"),
)
SOURCE_FIELDS = (_Field("title", "text"), _Field("link", "link"))


@dataclass
class _Pending:
    """What one pass over the files found, before cross-file checks."""

    sections: list[tuple[Section, _Reporter, LineMap]] = field(default_factory=list)
    updates: list[tuple[Update, _Reporter, LineMap, str]] = field(default_factory=list)
    about: About | None = None
    declared_ids: set[str] = field(default_factory=set)  # ids of every section file, valid or not


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
    if section_id is None or title is None or summary is None or order is None or initiatives is None:
        return None
    return Section(
        id=section_id, order=order, title=title, aliases=tuple(a for a, _ in aliases), summary=summary,
        key_points=tuple(p for p, _ in key_points), related=tuple(r for r, _ in related),
        initiatives=initiatives,
    )


def _read_initiatives(report: _Reporter, data: LineMap, section_id: str, today: date) -> tuple[Initiative, ...] | None:
    raw = data.get("initiatives")
    if raw is None:
        return None
    if not isinstance(raw, list):
        report.error(_line_of(data, "initiatives"), "initiatives", f"must be a list, not {_kind(raw)}")
        return None
    result: list[Initiative] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        where = f"initiatives[{index}]"
        line = raw.item_lines[index] if isinstance(raw, LineList) else data.line
        if not isinstance(item, LineMap):
            report.error(line, where, f"must be a mapping, not {_kind(item)}")
            continue
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
        if name and body and description and link:
            result.append(Initiative(name=name, body=body, description=description, link=link,
                                     section_id=section_id, year=year, note=note))
    return tuple(result)


def _read_updates(report: _Reporter, data: Any, latest: date | None) -> list[tuple[Update, LineMap, str]]:
    if not isinstance(data, LineMap) or not isinstance(data.get("updates"), list):
        report.error(getattr(data, "line", 1), "updates", "the file must hold `updates:` with a list of updates")
        return []
    _check_keys(report, data, "", (_Field("updates", "list"),))
    raw: LineList = data["updates"]
    result: list[tuple[Update, LineMap, str]] = []
    for index, item in enumerate(raw):
        where = f"updates[{index}]"
        if not isinstance(item, LineMap):
            report.error(raw.item_lines[index], where, f"must be a mapping, not {_kind(item)}")
            continue
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
        if day and sections and title and summary and link:
            update = Update(date=day, sections=tuple(s for s, _ in sections), title=title, summary=summary, link=link)
            result.append((update, item, where))
    return result


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
        for index, item in enumerate(raw):
            where = f"sources[{index}]"
            if not isinstance(item, LineMap):
                report.error(raw.item_lines[index], where, f"must be a mapping, not {_kind(item)}")
                continue
            _check_keys(report, item, where, SOURCE_FIELDS)
            title, link = _text(report, item, where, "title"), _link(report, item, where, "link")
            if title and link:
                sources.append(Source(title, link))
    elif raw is not None:
        report.error(_line_of(data, "sources"), "sources", f"must be a list, not {_kind(raw)}")
    name, tagline, about, contact = texts["name"], texts["tagline"], texts["about"], texts["contact"]
    if not (name and tagline and about and contact):
        return None
    return About(name=name, tagline=tagline, about=about, contact=contact, sources=tuple(sources))


def content_files(directory: Path) -> list[Path]:
    """Every *.yaml / *.yml file below `directory`: the one definition of which files are content."""
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_catalogue(directory: Path, *, now: datetime, overrides: Mapping[str, str] | None = None,
                   shown: str | None = None, future_updates: bool = True) -> Catalogue:
    """Read every YAML file under `directory`, validate all of it, and return the catalogue.

    `overrides` maps a path relative to `directory` to replacement text, so a file an admin uploads can be
    validated against the rest of the content before anything is written. Errors name files as
    `<shown>/<relative path>` (default: the directory as given; "" for paths relative to it). With
    `future_updates=False` an update dated after tomorrow is an error (`content check` asks for that; the running
    bot accepts one, so content written ahead of time still loads). Raises InvalidContent with every error found.
    """
    prefix = directory.as_posix() if shown is None else shown
    if not directory.is_dir():
        raise InvalidContent([ContentError(prefix or ".", 0, "(directory)", "content directory not found")])
    texts = read_content(directory)
    texts.update(overrides or {})
    return validate_texts(texts, base=directory, now=now, shown=shown, future_updates=future_updates)


@dataclass(frozen=True)
class _Parsed:
    data: Any


def _parse_file(text: str | Unreadable, shown_file: str) -> _Parsed | ContentError:
    """A file's YAML, or its one error: unreadable, too large, or not valid (refused) YAML."""
    if isinstance(text, str) and len(text) > MAX_FILE_BYTES // 4 and len(text.encode()) > MAX_FILE_BYTES:
        text = Unreadable(f"is {len(text.encode())} bytes; at most {MAX_FILE_BYTES} allowed")
    if isinstance(text, Unreadable):
        return ContentError(shown_file, 1, "(file)", text.message)
    try:
        return _Parsed(parse_yaml(text))
    except yaml.YAMLError as exc:
        return yaml_error(shown_file, exc, text)
    except UnicodeEncodeError as exc:  # a lone surrogate, as JSON from another replica can carry
        return ContentError(shown_file, text.count("\n", 0, exc.start) + 1, "(file)",
                            f"not UTF-8 text (bad character at offset {exc.start})")


def validate_texts(texts: Mapping[str, str | Unreadable], *, base: Path, now: datetime,
                   shown: str | None = None, future_updates: bool = True) -> Catalogue:
    """Validate content given as {relative path: YAML text}; raise InvalidContent listing every problem."""
    errors: list[ContentError] = []
    pending = _Pending()
    today = now.date()
    latest = None if future_updates else today + timedelta(days=1)
    prefix = base.as_posix() if shown is None else shown
    for relative in sorted(texts):
        shown_file = f"{prefix}/{relative}" if prefix else relative
        report = _Reporter(shown_file, errors)
        parsed = _parse_file(texts[relative], shown_file)
        if isinstance(parsed, ContentError):
            errors.append(parsed)
            if relative.startswith("sections/"):
                # Assume the usual <id>.yaml naming so other files' references to it are not reported too.
                pending.declared_ids.add(Path(relative).stem)
            continue
        data = parsed.data
        name = Path(relative).name
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
        else:
            report.error(1, "(file)", "unexpected content file: put sections in sections/, "
                                      "news in updates.yaml, and the bot's description in about.yaml")
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
        for name, key in [(section.id, "id"), *((alias, "aliases") for alias in section.aliases)]:
            line = _line_of(data, key)
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
        if message_length(doc(render_update(update))) > MESSAGE_LIMIT:
            report.error(item.line, f"{where}.summary", f"renders to more than {MESSAGE_LIMIT} characters")
    _check_cut_links(pending)
    if pending.about is None and not any(Path(p).name.startswith("about.") for p in texts):
        errors.append(ContentError(f"{prefix}/about.yaml" if prefix else "about.yaml", 0, "(file)",
                                   "missing about.yaml"))
    if not pending.sections:
        errors.append(ContentError(f"{prefix}/sections" if prefix else "sections", 0, "(directory)",
                                   "no sections found"))
    if errors or pending.about is None:
        return None
    sections = tuple(sorted((s for s, _, _ in pending.sections), key=lambda s: (s.order, s.id)))
    lookup = {name: section for section in sections for name in (section.id, *section.aliases)}
    updates = tuple(sorted((u for u, _, _, _ in pending.updates), key=lambda u: (u.date, u.title), reverse=True))
    digest = hashlib.sha256()
    for relative in sorted(texts):
        text = texts[relative]
        assert isinstance(text, str)  # an unreadable file is an error, and errors return before this
        digest.update(relative.encode() + b"\0" + text.encode() + b"\0")
    return Catalogue(sections=sections, updates=updates, about=pending.about, version=digest.hexdigest()[:12],
                     loaded_at=now, by_name=MappingProxyType(lookup))


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


def _check_fits(report: _Reporter, data: LineMap, section: Section) -> None:
    """Every unit the bot sends alone (a section header, one initiative) must fit one Telegram message."""
    if message_length(render_section_header(section)) > MESSAGE_LIMIT:
        report.error(_line_of(data, "summary"), "summary", f"the section renders to more than {MESSAGE_LIMIT} chars")
    raw = data.get("initiatives")
    lines = raw.item_lines if isinstance(raw, LineList) else []
    for index, initiative in enumerate(section.initiatives):
        if message_length(doc(render_initiative(initiative))) > MESSAGE_LIMIT:
            line = lines[index] if index < len(lines) else data.line
            report.error(line, f"initiatives[{index}]", f"renders to more than {MESSAGE_LIMIT} characters")


class ContentLibrary:
    """Holds the last good catalogue of a content directory; a failed reload leaves it in force."""

    def __init__(self, directory: Path, catalogue: Catalogue) -> None:
        self.directory = directory
        self._catalogue = catalogue

    @classmethod
    def open(cls, directory: Path, *, now: datetime) -> ContentLibrary:
        """Load a directory; raises InvalidContent if it is not valid (the bot refuses to start on it)."""
        return cls(directory, load_catalogue(directory, now=now))

    @property
    def catalogue(self) -> Catalogue:
        """The content in force."""
        return self._catalogue

    def reload(self, *, now: datetime, shown: str | None = None) -> Catalogue:
        """Validate the directory again and swap it in; on errors raise InvalidContent and keep serving the old.

        `shown` is how errors name the directory (see load_catalogue).
        """
        # One assignment: a reader on another thread sees the old catalogue or the new one, never a mix.
        self._catalogue = load_catalogue(self.directory, now=now, shown=shown)
        return self._catalogue
