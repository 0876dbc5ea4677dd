"""Content as documents (initiatives, sections, updates), dates and file names as every reply shows them."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import TYPE_CHECKING

from bot.core.catalogue import CHINESE, ENGLISH
from bot.core.document import Block, Document, Inline, block, bold, doc, heading, italic, item, line, link, para
from bot.core.i18n import N_, translator

if TYPE_CHECKING:
    from bot.core.catalogue import Initiative, Section, Update

# Shown beside content that has no translation into the reader's language, keyed by the reader's language: the
# reader sees the text in the language it was written in, and knows why.
# The mark a reader of each language sees beside text not translated for them (a message like any other: the
# Chinese reader's is translated in the catalogue).
FALLBACK_MARKS = {ENGLISH: N_("(in Chinese only)"), CHINESE: N_("(in English only)")}


def fallback_text(language: str) -> str:
    """The words of the mark a reader of `language` sees beside untranslated text."""
    return translator(language).gettext(FALLBACK_MARKS.get(language, FALLBACK_MARKS[ENGLISH]))

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


def fallback_mark(shown_language: str, language: str) -> tuple[Inline, ...]:
    """`(" ", italic("(in Chinese only)"))` when text in `shown_language` is shown to a reader of `language`."""
    if shown_language == language:
        return ()
    return " ", italic(fallback_text(language))


def render_initiative(initiative: Initiative, language: str = ENGLISH) -> Block:
    """One initiative in the reader's language: name (year), body, description, source link, caveat."""
    tr = translator(language)
    shown = initiative.in_language(language)
    year = f" ({shown.year})" if shown.year else ""
    return block(item(bold(shown.name), f"{year} — {shown.body}", *fallback_mark(shown.language, language)),
                 line(shown.description, " ", link(tr.gettext("Source"), shown.link)),
                 line(italic(tr.gettext("Note: %(note)s", note=shown.note))) if shown.note else line())


def render_section_header(section: Section, language: str = ENGLISH) -> Document:
    """Title, summary and key points of a section, in the reader's language."""
    tr = translator(language)
    shown = section.header_in(language)
    return doc(para(bold(shown.title), *fallback_mark(shown.language, language)), para(shown.summary),
               block(heading(tr.gettext("Key points")), *(item(point) for point in shown.key_points)))


def render_update(update: Update, language: str = ENGLISH) -> Block:
    """One dated update with its link, in the reader's language."""
    tr = translator(language)
    shown = update.in_language(language)
    return block(line(bold(format_date(shown.date, language)), " · ", bold(shown.title),
                      *fallback_mark(shown.language, language)),
                 line(shown.summary, " ", link(tr.gettext("Read more"), shown.link)))
