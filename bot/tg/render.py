"""Documents as Telegram HTML: every text escaped, long messages split at 4,096 UTF-16 units with tags kept balanced."""

from __future__ import annotations

import re
from html import escape

from bot.core.document import MESSAGE_TEXT_LIMIT, Document, Line, LineKind, Span, Style

MESSAGE_LIMIT = MESSAGE_TEXT_LIMIT  # Telegram's limit on a message's text, in UTF-16 code units after entity parsing
_TAG = re.compile(r"<(/?)([a-z-]+)[^>]*>")
BULLET = "• "


def render_html(document: Document) -> str:
    """The document as one Telegram HTML text: blocks apart by a blank line, lines by a line break."""
    return "\n\n".join("\n".join(_line(each) for each in block.lines) for block in document.blocks)


def html_parts(document: Document, limit: int = MESSAGE_LIMIT) -> list[str]:
    """The document as the Telegram messages that carry it, each at most `limit` counted characters."""
    return split_message(render_html(document), limit)


def message_length(document: Document) -> int:
    """How many characters Telegram counts in the document's text (UTF-16 units, markup excluded)."""
    return text_length(render_html(document))


def _line(line: Line) -> str:
    kind = line.kind
    if kind is LineKind.PRE:
        return f"<pre>{_escape(''.join(span.text for span in line.spans))}</pre>"
    if kind is LineKind.HEADING:
        # A heading is bold as a whole; a bold span inside it would nest <b> in <b>.
        return f"<b>{''.join([_span(span, in_bold=True) for span in line.spans])}</b>"
    text = "".join([_span(span) for span in line.spans])
    return BULLET + text if kind is LineKind.ITEM else text


def _span(span: Span, in_bold: bool = False) -> str:
    # Digests render on the fan-out path: the common cases first, compared by identity (no Enum hashing).
    style = span.style
    text = _escape(span.text)
    if style is Style.PLAIN or (in_bold and style is Style.BOLD):
        return text
    if style is Style.LINK:
        return f'<a href="{escape(span.url, quote=True)}">{text}</a>'
    tag = "b" if style is Style.BOLD else "i" if style is Style.ITALIC else "code"
    return f"<{tag}>{text}</{tag}>"


def _escape(text: str) -> str:
    """What html.escape(text, quote=False) does, without its call overhead."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_length(html: str) -> int:
    """Length of the text Telegram counts: tags removed, entities as one character, in UTF-16 units."""
    plain = _TAG.sub("", html)
    plain = re.sub(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-f]+);", "_", plain)
    return len(plain.encode("utf-16-le")) // 2


def split_message(html: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split HTML into messages of at most `limit` counted characters.

    Prefers paragraph boundaries, then line breaks, then spaces; a tag is never cut, and tags open at a
    cut are closed at the end of one part and reopened at the start of the next.
    """
    html = html.strip()
    if text_length(html) <= limit:
        return [html] if html else []
    parts: list[str] = []
    current = ""
    for paragraph in html.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if text_length(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        if text_length(paragraph) <= limit:
            current = paragraph
        else:
            pieces = _split_long(paragraph, limit)
            parts.extend(pieces[:-1])
            current = pieces[-1]
    if current:
        parts.append(current)
    return parts


def _split_long(paragraph: str, limit: int) -> list[str]:
    """Split one paragraph at newlines or spaces, keeping tags balanced in each part."""
    tokens = re.findall(r"<[^>]+>|\n|[^\s<]+|[ \t]+", paragraph)
    parts: list[str] = []
    open_tags: list[str] = []  # full opening tags in force, e.g. '<a href="...">'
    waiting = ""  # opening tags not yet followed by text: they move with the next word
    current = ""
    size = 0

    def cut() -> None:
        nonlocal current, size
        closing = "".join(f"</{_tag_name(tag)}>" for tag in reversed(open_tags))
        parts.append((current + closing).strip())
        current, size = "".join(open_tags), 0

    for token in tokens:
        if token.startswith("<"):
            if token.startswith("</"):
                current += waiting + token
                waiting = ""
                if open_tags:
                    open_tags.pop()
            else:
                waiting += token
            continue
        if token.isspace() and size == 0:
            continue
        token_size = text_length(token)
        if size + token_size > limit and size > 0:
            cut()
            if token.isspace():
                continue
        while token_size > limit:  # one word longer than a whole message (a huge URL): cut inside it
            current += waiting + token[:limit]
            open_tags.extend(re.findall(r"<[^>]+>", waiting))
            waiting, token = "", token[limit:]
            size = limit
            cut()
            token_size = text_length(token)
        current += waiting + token
        open_tags.extend(re.findall(r"<[^>]+>", waiting))
        waiting = ""
        size += token_size
    current += waiting
    if current.strip():
        parts.append(current.strip())
    return [part for part in parts if text_length(part) > 0]


def _tag_name(tag: str) -> str:
    match = _TAG.match(tag)
    return match.group(2) if match else ""
