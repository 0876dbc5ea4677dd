"""One content file's text to YAML values that know their lines, or its one error: the only YAML reader of content."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from bot.content.errors import ContentError, Unreadable

MAX_FILE_BYTES = 1024 * 1024  # the largest content file on disk or from a replica (updates.yaml grows)
MAX_DEPTH = 32  # YAML nesting levels; content needs 5, and deeper documents only serve to exhaust the stack


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
class Parsed:
    """A content file's YAML values (LineMap/LineList inside)."""

    data: Any


def parse_file(text: str | Unreadable, shown_file: str) -> Parsed | ContentError:
    """A file's YAML, or its one error: unreadable, too large, or not valid (refused) YAML."""
    if isinstance(text, str) and len(text) > MAX_FILE_BYTES // 4 and len(text.encode()) > MAX_FILE_BYTES:
        text = Unreadable(f"is {len(text.encode())} bytes; at most {MAX_FILE_BYTES} allowed")
    if isinstance(text, Unreadable):
        return ContentError(shown_file, 1, "(file)", text.message)
    try:
        return Parsed(parse_yaml(text))
    except yaml.YAMLError as exc:
        return yaml_error(shown_file, exc, text)
    except UnicodeEncodeError as exc:  # a lone surrogate, as JSON from another replica can carry
        return ContentError(shown_file, text.count("\n", 0, exc.start) + 1, "(file)",
                            f"not UTF-8 text (bad character at offset {exc.start})")
