"""Which parsed entries become found items: about AI, not seen before, with suggested sections. Pure: no I/O.

`Entry("Generative AI sandbox opens", "https://www.info.gov.hk/gia/general/202611/04/P2026110400123.htm?utm_source=x",
...)` from `gov-press-en` becomes a `FoundItem` whose link has no `utm_source`, whose title_key is
`gia:P2026110400123` (the Chinese release of the same day has that key too, so only the first is kept), and whose
sections are the source's defaults plus those its words suggest (`bank` -> finance).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bot.core.candidates import FoundItem
from bot.core.catalogue import Catalogue, SourceRules, WatchedSource
from bot.core.messages import shorten_at_word

EXCERPT_CHARS = 300
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid", "mc_cid", "mc_eid",
    "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "spm", "ref_src",
})
_GIA_RELEASE = re.compile(r"/gia/general/\d{6}/\d{2}/(P\d{10,})\.htm", re.IGNORECASE)
_CJK = re.compile(r"[\u3000-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")


@dataclass(frozen=True)
class Entry:
    """One item as a feed gave it, cleaned: plain-text title and summary, an absolute link, an aware UTC date."""

    title: str
    link: str
    published: datetime | None
    summary: str


class KeywordMatcher:
    """Matches keywords in text: Latin-script ones as whole words, case-insensitively; Chinese ones as substrings."""

    def __init__(self, keywords: Iterable[str]) -> None:
        words = sorted({" ".join(k.split()) for k in keywords if k.strip()}, key=len, reverse=True)
        latin = [w for w in words if not _CJK.search(w)]
        self.cjk = tuple(w for w in words if _CJK.search(w))
        # A letter or digit on either side means another word: `AI` is not found in `AIA`, `said` or `Thailand`.
        pattern = "|".join(r"\s+".join(re.escape(part) for part in w.split()) for w in latin)
        self.latin = re.compile(rf"(?<![^\W_])(?:{pattern})(?![^\W_])", re.IGNORECASE) if latin else None

    def matches(self, text: str) -> bool:
        """Whether any keyword occurs in the text."""
        if self.latin is not None and self.latin.search(text):
            return True
        return any(word in text for word in self.cjk)


class Selector:
    """Turns entries of the sources into found items under one set of rules (built once per poll)."""

    def __init__(self, rules: SourceRules) -> None:
        self.rules = rules
        self.ai = KeywordMatcher(rules.keywords)
        self.extra: dict[tuple[str, ...], KeywordMatcher] = {}
        self.sections = {section: KeywordMatcher(words) for section, words in rules.section_keywords.items()}

    def is_about_ai(self, source: WatchedSource, text: str) -> bool:
        """Whether the text matches the AI keywords, or the source's own extra keywords."""
        if self.ai.matches(text):
            return True
        if not source.keywords:
            return False
        matcher = self.extra.setdefault(source.keywords, KeywordMatcher(source.keywords))
        return matcher.matches(text)

    def suggest_sections(self, source: WatchedSource, text: str) -> tuple[str, ...]:
        """The source's default sections, then those whose keywords the text has."""
        found = list(source.sections)
        for section, matcher in self.sections.items():
            if section not in found and matcher.matches(text):
                found.append(section)
        return tuple(found)

    def select(self, batches: Sequence[tuple[WatchedSource, Sequence[Entry]]],
               known_links: Iterable[str] = ()) -> list[FoundItem]:
        """The entries about AI, first of each link and title_key, none whose link is known (e.g. content/ has it)."""
        seen_links = {canonical_url(link) for link in known_links}
        seen_keys: set[str] = set()
        found: list[FoundItem] = []
        for source, entries in batches:
            for entry in entries:
                text = f"{entry.title}\n{entry.summary}"
                if not self.is_about_ai(source, text):
                    continue
                link = canonical_url(entry.link)
                key = title_key(entry.title, link)
                if link in seen_links or key in seen_keys:
                    continue
                seen_links.add(link)
                seen_keys.add(key)
                found.append(FoundItem(
                    source_id=source.id, title=entry.title, link=link, published=entry.published,
                    excerpt=excerpt(entry.summary), language=source.language,
                    sections=self.suggest_sections(source, text), title_key=key,
                ))
        return found


def content_links(catalogue: Catalogue) -> list[str]:
    """Every link content/ already has (updates and initiatives): an item found there is not offered again."""
    return [update.link for update in catalogue.updates] + [item.link for item in catalogue.initiatives]


def canonical_url(url: str) -> str:
    """One spelling per link: lower-case scheme and host, no default port, fragment or tracking parameters."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))


def title_key(title: str, link: str = "") -> str:
    """A key equal for near-identical titles, and for the English and Chinese versions of one government release.

    The government publishes both versions under one release number (`.../P2026110400123.htm` in either feed), so
    that number is the key where the link has one; otherwise the title without case, accents, punctuation and
    spacing, and without the "(with photos)" kind of suffix.
    """
    release = _GIA_RELEASE.search(link)
    if release:
        return f"gia:{release.group(1).upper()}"
    text = unicodedata.normalize("NFKC", title).casefold()
    text = re.sub(r"[(（][^()（）]*(photo|video|圖|片)[^()（）]*[)）]\s*$", "", text)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first `limit` characters of a plain text, cut at a word where there is one, with an ellipsis."""
    return shorten_at_word(text, limit, trailing=" ,.;:")
