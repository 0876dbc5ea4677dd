"""A reply as a platform-neutral document: blocks of lines of inline spans, rendered by each front end.

`doc(para("Content ", code("v7"), ", loaded today"), block(heading("Sources"), item(link("HKPC", url))))` is a
document of two blocks. Blocks are separated by a blank line (where a long message is best split), lines within a
block by a line break. Every text is plain text: only a renderer escapes or marks it up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

# Telegram's limit on a message's text in UTF-16 code units after entity parsing; the content validator holds every
# rendered item to it, so that each fits one message on any front end.
MESSAGE_TEXT_LIMIT = 4096


class Style(StrEnum):
    """How an inline span is shown."""

    PLAIN = "plain"
    BOLD = "bold"
    ITALIC = "italic"
    CODE = "code"
    LINK = "link"


# Span, Line and Block are named tuples rather than frozen dataclasses: a digest builds some fifty of them per
# chat on the fan-out path, and a tuple is built several times faster, just as immutable.
class Span(NamedTuple):
    """A run of plain text in one style; a link also has its URL. A `\\n` in the text is a line break."""

    text: str
    style: Style = Style.PLAIN
    url: str = ""


class LineKind(StrEnum):
    """What a line is: text, a heading, a list item (shown with a bullet), or preformatted text."""

    TEXT = "text"
    HEADING = "heading"
    ITEM = "item"
    PRE = "pre"


class Line(NamedTuple):
    """One line of a block (preformatted text may span several)."""

    spans: tuple[Span, ...]
    kind: LineKind = LineKind.TEXT


class Block(NamedTuple):
    """Lines that belong together; a renderer separates blocks by a blank line."""

    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Document:
    """A whole message, as blocks; an empty document means nothing to send."""

    blocks: tuple[Block, ...] = ()

    def __hash__(self) -> int:
        # Remembered: the fan-out looks one digest document up in its render and storage caches once per chat,
        # and hashing a few hundred nested tuples each time would cost more than the lookups save.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(self.blocks)
            object.__setattr__(self, "_hash", cached)
        return cached

    def __bool__(self) -> bool:
        return any(span.text for block in self.blocks for line in block.lines for span in line.spans)

    def to_data(self) -> Any:
        """The document as JSON-ready data, for storing a message to render later.

        The named tuples and string enums are the data: `[[[[["Status", "plain", ""]], "heading"]]]` is a block
        holding a heading line. Nothing is converted on the way to json.dumps (the fan-out stores one per chat).
        """
        return self.blocks

    @classmethod
    def from_data(cls, data: Any) -> Document:
        """The document `to_data` described (as read back from JSON)."""
        return cls(tuple(Block(tuple(Line(tuple(Span(str(text), Style(style), str(url)) for text, style, url in spans),
                                          LineKind(kind))
                                     for spans, kind in lines)) for (lines,) in data))


Inline = str | Span  # a str is plain text
Part = Inline | Line | Block | Document


def plain(text: str) -> Span:
    """Plain text."""
    return Span(text)


def bold(text: str) -> Span:
    """Bold text."""
    return Span(text, Style.BOLD)


def italic(text: str) -> Span:
    """Italic text."""
    return Span(text, Style.ITALIC)


def code(text: str) -> Span:
    """Monospace text."""
    return Span(text, Style.CODE)


def link(label: str, url: str) -> Span:
    """A link: its label, and where it goes."""
    return Span(label, Style.LINK, url)


def _spans(parts: Iterable[Inline]) -> tuple[Span, ...]:
    return tuple([Span(part) if type(part) is str else part for part in parts if part])  # type: ignore[misc]


def line(*parts: Inline) -> Line:
    """A line of text: `line("Next run: ", bold("09:00"))`."""
    return Line(_spans(parts))


def heading(*parts: Inline) -> Line:
    """A heading line."""
    return Line(_spans(parts), LineKind.HEADING)


def item(*parts: Inline) -> Line:
    """A list item."""
    return Line(_spans(parts), LineKind.ITEM)


def pre(text: str) -> Line:
    """Preformatted text, shown as it is (line breaks kept)."""
    return Line((Span(text),), LineKind.PRE)


def block(*lines: Line | Inline) -> Block:
    """A block of lines; a bare text or span is a line of its own."""
    return Block(tuple(each if isinstance(each, Line) else line(each) for each in lines
                       if not isinstance(each, Line) or each.spans))


def para(*parts: Inline) -> Block:
    """A block of one line: `para("Content ", code(version), ", loaded ", when)`."""
    return Block((line(*parts),))


def doc(*parts: Part) -> Document:
    """A document of blocks: a Block is one, a Document adds its blocks, a Line or text becomes a block of one line."""
    blocks: list[Block] = []
    for part in parts:
        if isinstance(part, Document):
            blocks.extend(part.blocks)
        elif isinstance(part, Block):
            if part.lines:
                blocks.append(part)
        elif isinstance(part, Line):
            if part.spans:
                blocks.append(Block((part,)))
        elif part:
            blocks.append(para(part))
    return Document(tuple(blocks))
