"""Languages of the interface: a Translator per language (gettext catalogues, Babel dates), passed explicitly.

There is no "current language": a command asks `translator(request.language)` and uses what it gets, so two chats
in two languages can be answered at once. `tr.gettext("No sector called “%(name)s”.", name="fintek")` looks the
English text up in the chat's catalogue and fills in the named values; English is the source language and needs
no catalogue.
"""

from __future__ import annotations

import functools
import gettext
import io
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

# Babel formats dates and compiles catalogues; it does no input or output of its own, so the core may use it.
from babel.dates import format_date as babel_format_date
from babel.dates import format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from bot.core.catalogue import CHINESE as CHINESE  # the content's languages are the bot's
from bot.core.catalogue import ENGLISH as ENGLISH
from bot.core.catalogue import LANGUAGES as LANGUAGES

# What each language is called in its own words, for the /language buttons.
LANGUAGE_NAMES = {ENGLISH: "English", CHINESE: "繁體中文"}
# The catalogue folder of each translated language (Babel's locale identifier: Traditional Chinese as in Hong Kong).
LOCALES = {CHINESE: "zh_Hant_HK"}
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"
# Telegram's language_code values (IETF tags, any case, `-` or `_`) that mean a reader of Traditional Chinese.
_CHINESE_CODES = frozenset({"zh", "zh-hk", "zh-tw", "zh-hant", "zh-mo", "zh-hant-hk", "zh-hant-tw"})


def N_(message: str) -> str:
    """Mark a message for the catalogue where it is defined (the command table); it is translated where shown."""
    return message


def language_from_code(code: str | None) -> str:
    """A chat's language from a user's language_code: `zh-HK`, `zh_tw`, `zh-Hant`, `zh` give zh-Hant, else en."""
    if not code:
        return ENGLISH
    return CHINESE if code.strip().lower().replace("_", "-") in _CHINESE_CODES else ENGLISH


def known_language(language: str | None) -> str:
    """`language` when we have it, else English (a stored value from a newer version, a typo)."""
    return language if language in LANGUAGES else ENGLISH


@dataclass(frozen=True, eq=False)
class Translator:
    """One language's messages and date formats."""

    language: str
    catalogue: gettext.NullTranslations

    def gettext(self, message: str, /, **values: object) -> str:
        """The message in this language, with `%(name)s` placeholders filled from `values`."""
        text = self.catalogue.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, count: int, /, **values: object) -> str:
        """The singular or plural form for `count` (available as `%(count)s`), filled from `values`."""
        return self.catalogue.ngettext(singular, plural, count) % {"count": count, **values}

    @property
    def locale(self) -> str:
        """Babel's locale identifier."""
        return LOCALES.get(self.language, "en")

    def format_day(self, day: date) -> str:
        """A date as every reply shows it: `25 Feb 2025`, `2025年2月25日`."""
        if self.language == ENGLISH:
            return f"{day.day} {day:%b %Y}"  # no leading zero, whatever the platform's strftime
        return _babel_date(_day_of(day), "long", self.locale)

    def weekday(self, day: date) -> str:
        """The day of the week: `Mon`, `星期一`."""
        if self.language == ENGLISH:
            return f"{day:%a}"
        return _babel_date(_day_of(day), "EEEE", self.locale)

    def day_and_time(self, moment: datetime) -> str:
        """A coming moment in a chat's own timezone, 24-hour: `Tue 25 Feb 09:00`, `2月25日 星期二 09:00`."""
        if self.language == ENGLISH:
            return f"{moment:%a} {moment.day} {moment:%b %H:%M}"
        return f"{format_skeleton('MMMd', moment, locale=self.locale)} {self.weekday(moment)} {moment:%H:%M}"

    def number(self, value: int) -> str:
        """A count with the language's digit grouping (Babel's): `12,345` in both languages."""
        return format_decimal(value, locale=self.locale)


def _day_of(moment: date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


# Babel takes tens of microseconds a date; a reply shows the same few dates again and again.
@functools.lru_cache(maxsize=4096)
def _babel_date(day: date, pattern: str, locale: str) -> str:
    return babel_format_date(day, pattern, locale=locale)


def catalogue_path(language: str, suffix: str) -> Path:
    """Where a language's catalogue lives: `bot/locale/zh_Hant_HK/LC_MESSAGES/messages.po` (or .mo)."""
    return LOCALE_DIR / LOCALES[language] / "LC_MESSAGES" / f"{DOMAIN}.{suffix}"


def _load(language: str) -> gettext.NullTranslations:
    """The compiled catalogue (built at install); a source checkout without it compiles the .po in memory."""
    mo, po = catalogue_path(language, "mo"), catalogue_path(language, "po")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as compiled:
            return gettext.GNUTranslations(compiled)
    with po.open("rb") as source:
        messages = read_po(source, locale=LOCALES[language])
    buffer = io.BytesIO()
    write_mo(buffer, messages)  # fuzzy entries are left out, as pybabel compile does
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@functools.cache
def translator(language: str) -> Translator:
    """The translator of a language (cached: catalogues are read once per process); unknown ones get English."""
    language = known_language(language)
    if language == ENGLISH:
        return Translator(ENGLISH, gettext.NullTranslations())
    return Translator(language, _load(language))
