"""Content as documents (initiatives, sections, updates), dates and file names as every reply shows them."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import TYPE_CHECKING

from bot.core.document import Block, Document, block, bold, doc, heading, italic, item, line, link, para
from bot.core.i18n import ENGLISH, translator

if TYPE_CHECKING:
    from bot.core.catalogue import Initiative, Section, Update

MAX_NAME_LENGTH = 80  # characters of an uploaded file's name shown in replies and logs


def printable_name(name: str) -> str:
    r"""An uploaded file's name made safe to show and log: no control characters (newline, NUL, ...), capped length.

    `"a\nb\x00.yaml"` becomes `"a?b?.yaml"`; a name is otherwise the sender's choice and must not add lines to a
    reply or the audit log, nor break a database that refuses NUL.
    """
    cleaned = "".join("?" if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs") else char
                      for char in name)
    # A long name loses its middle, so its end (the .yaml that decides whether it is accepted) stays.
    return cleaned if len(cleaned) <= MAX_NAME_LENGTH else f"{cleaned[:MAX_NAME_LENGTH - 21]}…{cleaned[-20:]}"


def format_date(day: date, language: str = ENGLISH) -> str:
    """A date as every reply shows it: `25 Feb 2025` (no leading zero, whatever the platform's strftime),
    `2025年2月25日` in Chinese."""
    return translator(language).format_day(day)


def render_initiative(initiative: Initiative, language: str = ENGLISH) -> Block:
    """One initiative: name (year), body, description, source link, caveat."""
    tr = translator(language)
    year = f" ({initiative.year})" if initiative.year else ""
    return block(item(bold(initiative.name), f"{year} — {initiative.body}"),
                 line(initiative.description, " ", link(tr.gettext("Source"), initiative.link)),
                 line(italic(tr.gettext("Note: %(note)s", note=initiative.note))) if initiative.note else line())


def render_section_header(section: Section, language: str = ENGLISH) -> Document:
    """Title, summary and key points of a section."""
    tr = translator(language)
    return doc(para(bold(section.title)), para(section.summary),
               block(heading(tr.gettext("Key points")), *(item(point) for point in section.key_points)))


def render_update(update: Update, language: str = ENGLISH) -> Block:
    """One dated update with its link."""
    tr = translator(language)
    return block(line(bold(format_date(update.date, language)), " · ", bold(update.title)),
                 line(update.summary, " ", link(tr.gettext("Read more"), update.link)))
