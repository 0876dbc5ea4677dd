"""Ranked search across sections, initiatives and updates, with an index built once per catalogue."""

from __future__ import annotations

import math
import re
import weakref
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.catalogue import Catalogue, Initiative, Section, Update
from bot.core.chinese import bigrams, han_runs, has_chinese, to_traditional

_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
# How a run of Chinese characters becomes tokens. Character pairs won over a dictionary segmenter (jieba) on the
# labelled queries of bench/search_queries.yaml: see bench/README.md, "Chinese search".
ChineseTokens = Callable[[str], list[str]]

# A word in a title or name counts more than one in a description.
TITLE_WEIGHT = 3.0
BODY_WEIGHT = 2.0
TEXT_WEIGHT = 1.0


def words(text: str, chinese: ChineseTokens = bigrams) -> list[str]:
    """Lowercase words of a text; 'GenA.I.' and 'gen-ai' both give searchable parts, and Chinese (Simplified made
    Traditional first) gives its `chinese` tokens: `人工智能 金融` -> 人工, 工智, 智能, 金融."""
    lowered = text.lower().replace("a.i.", "ai")
    found = [w.replace(".", "").replace("'", "") for w in _WORD.findall(lowered)]
    if has_chinese(lowered):
        found.extend(token for run in han_runs(to_traditional(lowered)) for token in chinese(run))
    return found


def _is_chinese(token: str) -> bool:
    return has_chinese(token[:1])


@dataclass(frozen=True)
class Hit:
    """One search result: what matched and how well."""

    score: float
    kind: str  # "section" | "initiative" | "update"
    item: Section | Initiative | Update


@dataclass(frozen=True)
class SearchIndex:
    """An inverted index: word -> {document number: weight}."""

    documents: tuple[tuple[str, Section | Initiative | Update], ...]
    postings: dict[str, dict[int, float]]
    vocabulary: tuple[str, ...]

    chinese: ChineseTokens = bigrams

    @classmethod
    def build(cls, catalogue: Catalogue, chinese: ChineseTokens = bigrams) -> SearchIndex:
        """Index every section, initiative and update of a catalogue, in every language it is written in, so an
        English or a Chinese query finds the same item."""
        documents: list[tuple[str, Section | Initiative | Update]] = []
        fields: list[list[tuple[str, float]]] = []
        for section in catalogue.sections:
            documents.append(("section", section))
            fields.append([field for shown in (section, *section.translations) for field in (
                (" ".join((shown.title, shown.id, *shown.aliases)), TITLE_WEIGHT),
                (shown.summary + " " + " ".join(shown.key_points), TEXT_WEIGHT))])
            for initiative in section.initiatives:
                documents.append(("initiative", initiative))
                fields.append([field for shown in (initiative, *initiative.translations) for field in (
                    (shown.name, TITLE_WEIGHT), (shown.body, BODY_WEIGHT),
                    (f"{shown.description} {shown.year or ''}", TEXT_WEIGHT))])
        for update in catalogue.updates:
            documents.append(("update", update))
            fields.append([field for shown in (update, *update.translations)
                           for field in ((shown.title, TITLE_WEIGHT), (shown.summary, TEXT_WEIGHT))])
        postings: dict[str, dict[int, float]] = defaultdict(dict)
        for number, document_fields in enumerate(fields):
            for text, weight in document_fields:
                for word in words(text, chinese):
                    postings[word][number] = max(postings[word].get(number, 0.0), weight)
        return cls(tuple(documents), dict(postings), tuple(sorted(postings)), chinese)

    def search(self, query: str, limit: int = 8) -> list[Hit]:
        """Rank documents by how many query words they hold, weighted by rarity (idf) and field."""
        scores: dict[int, float] = defaultdict(float)
        matched: dict[int, int] = defaultdict(int)
        total = len(self.documents) or 1
        for word in dict.fromkeys(words(query, self.chinese)):
            for term in self._terms(word):
                postings = self.postings[term]
                idf = math.log(1 + total / len(postings))
                exact = 1.0 if term == word else 0.6
                for number, weight in postings.items():
                    scores[number] += weight * idf * exact
            for number in {n for term in self._terms(word) for n in self.postings[term]}:
                matched[number] += 1
        ranked = sorted(scores, key=lambda n: (-matched[n], -scores[n], n))
        return [Hit(scores[n], *self.documents[n]) for n in ranked[:limit]]

    def _terms(self, word: str) -> list[str]:
        """The word itself and, for words of 3+ letters, indexed words it begins (`health` -> `healthcare`); a
        Chinese token matches only itself (`金融` must not find every token that starts with 金)."""
        if len(word) < 3 or _is_chinese(word):
            return [word] if word in self.postings else []
        found = []
        for term in self.vocabulary[bisect_left(self.vocabulary, word):]:
            if not term.startswith(word):
                break
            found.append(term)
        return found


# One index per catalogue in force, built on first use; it goes when its catalogue does (a reload replaced it).
_INDEXES: dict[int, SearchIndex] = {}


def index_of(catalogue: Catalogue) -> SearchIndex:
    """The search index of a catalogue, built once on first use."""
    index = _INDEXES.get(id(catalogue))
    if index is None:
        index = _INDEXES[id(catalogue)] = SearchIndex.build(catalogue)
        weakref.finalize(catalogue, _INDEXES.pop, id(catalogue), None)
    return index
