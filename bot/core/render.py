"""Render content as Telegram HTML (every content string escaped) and split long replies safely."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.core.catalogue import Initiative, Section, Update

MAX_NAME_LENGTH = 80  # characters of an uploaded file's name shown in replies and logs
MESSAGE_LIMIT = 4096
_TAG = re.compile(r"<(/?)([a-z-]+)[^>]*>")


def text_length(html: str) -> int:
    """Length of the text Telegram counts: tags removed, entities as one character, in UTF-16 units."""
    plain = _TAG.sub("", html)
    plain = re.sub(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-f]+);", "_", plain)
    return len(plain.encode("utf-16-le")) // 2


def bold(text: str) -> str:
    """Bold, escaped."""
    return f"<b>{escape(text, quote=False)}</b>"


def italic(text: str) -> str:
    """Italic, escaped."""
    return f"<i>{escape(text, quote=False)}</i>"


def code(text: str) -> str:
    """Monospace, escaped."""
    return f"<code>{escape(text, quote=False)}</code>"


def link(label: str, url: str) -> str:
    """A link with escaped label and URL."""
    return f'<a href="{escape(url, quote=True)}">{escape(label, quote=False)}</a>'


def printable_name(name: str) -> str:
    r"""An uploaded file's name made safe to show and log: no control characters (newline, NUL, ...), capped length.

    `"a\nb\x00.yaml"` becomes `"a?b?.yaml"`; a name is otherwise the sender's choice and must not add lines to a
    reply or the audit log, nor break a database that refuses NUL.
    """
    cleaned = "".join("?" if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs") else char
                      for char in name)
    # A long name loses its middle, so its end (the .yaml that decides whether it is accepted) stays.
    return cleaned if len(cleaned) <= MAX_NAME_LENGTH else f"{cleaned[:MAX_NAME_LENGTH - 21]}…{cleaned[-20:]}"


def plain(text: str) -> str:
    """Escaped text."""
    return escape(text, quote=False)


def format_date(day: date) -> str:
    """A date as every reply shows it: `25 Feb 2025` (no leading zero, whatever the platform's strftime)."""
    return f"{day.day} {day:%b %Y}"


def render_initiative(initiative: Initiative) -> str:
    """One initiative: name (year), body, description, source link, caveat."""
    year = f" ({initiative.year})" if initiative.year else ""
    parts = [f"• {bold(initiative.name)}{plain(year)} — {plain(initiative.body)}",
             f"{plain(initiative.description)} {link('Source', initiative.link)}"]
    if initiative.note:
        parts.append(italic(f"Note: {initiative.note}"))
    return "\n".join(parts)


def render_section_header(section: Section) -> str:
    """Title, summary and key points of a section."""
    points = "\n".join(f"• {plain(point)}" for point in section.key_points)
    return f"{bold(section.title)}\n\n{plain(section.summary)}\n\n{bold('Key points')}\n{points}"


def render_update(update: Update) -> str:
    """One dated update with its link."""
    return (f"{bold(format_date(update.date))} · {bold(update.title)}\n"
            f"{plain(update.summary)} {link('Read more', update.link)}")


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
