"""Chinese search benchmark: character bigrams against the jieba segmenter on the labelled queries.

    python -m bench.search_zh

Reads bench/search_queries.yaml (English, Traditional, Simplified and mixed queries, each with the items that are
a right answer at the top) and, for each way of cutting Chinese into tokens, prints precision@1 and MRR (over the
top 8, as /search shows) per kind of query and overall, the index build time and the median search time. The
index and the ranking are the bot's own (bot.core.search); only the Chinese tokeniser changes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.common import CONTENT, print_table, write_results
from bot.content import load_catalogue
from bot.core.catalogue import Catalogue, Initiative, Section, Update
from bot.core.chinese import bigrams
from bot.core.search import SearchIndex

QUERIES = Path(__file__).parent / "search_queries.yaml"
TOP = 8


def _jieba() -> dict[str, Callable[[str], list[str]]]:
    """jieba on the Traditional text as it is, and in search mode on the text made Simplified (its dictionary is
    Simplified); each side of the match goes through the same function, so both are consistent."""
    import jieba
    import opencc

    jieba.setLogLevel(60)
    jieba.initialize()
    to_simplified = opencc.OpenCC("hk2s")
    return {
        "jieba (Traditional)": lambda run: jieba.lcut(run),
        "jieba search mode (via Simplified)": lambda run: jieba.lcut_for_search(to_simplified.convert(run)),
    }


def name(item: Section | Initiative | Update) -> str:
    """An item as the query file names it."""
    if isinstance(item, Section):
        return f"section:{item.id}"
    if isinstance(item, Initiative):
        return f"initiative:{item.key}"
    return f"update:{item.key}"


def score(index: SearchIndex, queries: list[dict[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """(precision@1, MRR, count) per kind of query and for all of them."""
    found: dict[str, list[tuple[float, float]]] = {}
    for entry in queries:
        ranked = [name(hit.item) for hit in index.search(entry["query"], limit=TOP)]
        wanted = set(entry["expect"])
        first = next((rank for rank, item in enumerate(ranked, 1) if item in wanted), None)
        pair = (1.0 if first == 1 else 0.0, 1 / first if first else 0.0)
        for kind in (entry["kind"], "all"):
            found.setdefault(kind, []).append(pair)
    return {kind: (statistics.mean(p for p, _ in pairs), statistics.mean(r for _, r in pairs), len(pairs))
            for kind, pairs in found.items()}


def timed(catalogue: Catalogue, tokeniser: Callable[[str], list[str]],
          queries: list[dict[str, Any]]) -> tuple[SearchIndex, float, float]:
    """The index, its build time (ms) and the median time of one search (µs)."""
    start = time.perf_counter()
    index = SearchIndex.build(catalogue, tokeniser)
    build_ms = (time.perf_counter() - start) * 1000
    samples = []
    for _ in range(20):
        for entry in queries:
            start = time.perf_counter()
            index.search(entry["query"], limit=TOP)
            samples.append((time.perf_counter() - start) * 1e6)
    return index, build_ms, statistics.median(samples)


def main() -> list[dict[str, Any]]:
    """Score each tokeniser, print the table and return its rows."""
    queries = yaml.safe_load(QUERIES.read_text())["queries"]
    catalogue = load_catalogue(CONTENT, now=datetime.now(UTC))
    tokenisers: dict[str, Callable[[str], list[str]]] = {"character bigrams": bigrams, **_jieba()}
    rows = []
    for label, tokeniser in tokenisers.items():
        index, build_ms, search_us = timed(catalogue, tokeniser, queries)
        scores = score(index, queries)
        row: dict[str, Any] = {"tokeniser": label}
        for kind in ("en", "zh-Hant", "zh-Hans", "mixed", "all"):
            p1, mrr, _ = scores[kind]
            row[f"{kind}_p@1"] = round(p1, 2)
            if kind == "all":
                row["all_mrr"] = round(mrr, 3)
        row["build_ms"] = round(build_ms, 1)
        row["search_p50_us"] = round(search_us, 1)
        rows.append(row)
    counts = {kind: n for kind, (_, _, n) in score(SearchIndex.build(catalogue), queries).items()}
    title = (f"{len(queries)} labelled queries ({', '.join(f'{k}: {n}' for k, n in counts.items() if k != 'all')}), "
             f"top {TOP}")
    print_table(title, rows, list(rows[0]))
    write_results("search_zh", "search_zh", {"queries": len(queries), "rows": rows})
    return rows


if __name__ == "__main__":
    main()
