"""Inline benchmark: time to answer one inline query in-process (core page + Telegram articles + the JSON PTB sends).

    python -m bench.inline            # 2,000 answers per query
    python -m bench.inline --quick    # a few seconds

What is timed is the bot's own work for one `@bot <query>`: `inline_page` over the shipped content (the search
index already built, as it is after the first query), `articles` (PTB objects) and their JSON, the body of
answerInlineQuery. The network round trip is not included. The table also shows each answer's size in bytes.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import CONTENT, print_table, write_results
from bot.content import load_catalogue
from bot.core.inline import inline_page
from bot.tg.inline import articles

# (query, offset): a sector word, a word on every page (third page), the empty query, a 256-character query,
# Chinese text (matched in the Chinese translations), nothing matching.
QUERIES = (("finance", ""), ("ai", "40"), ("", ""), (("hong kong ai " * 20)[:256], ""), ("人工智能 金融", ""),
           ("zzqxv", ""))


def answer_times(iterations: int) -> list[dict[str, Any]]:
    """p50/p99/max microseconds to build each answer, after a warm-up."""
    catalogue = load_catalogue(CONTENT, now=datetime.now(UTC))
    rows = []
    for query, offset in QUERIES:
        def answer(query: str = query, offset: str = offset) -> str:
            page = inline_page(catalogue, query, offset)
            return json.dumps([result.to_dict() for result in articles(page, "hk_ai_pulse_bot")])

        for _ in range(min(100, iterations)):
            body = answer()
        samples = []
        for _ in range(iterations):
            start = time.perf_counter_ns()
            answer()
            samples.append(time.perf_counter_ns() - start)
        samples.sort()
        rows.append({"query": (query[:24] + "…") if len(query) > 24 else query or "(empty)", "offset": offset,
                     "results": len(json.loads(body)), "answer_bytes": len(body.encode()),
                     "iterations": iterations, "p50_us": samples[len(samples) // 2] / 1000,
                     "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
                     "max_us": samples[-1] / 1000})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Time every query, print the table and write bench/results/inline.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations = 200
    rows = answer_times(args.iterations)
    print_table("Inline answer build time in-process (page + articles + JSON, shipped content)", rows,
                ["query", "offset", "results", "answer_bytes", "iterations", "p50_us", "p99_us", "max_us"])
    write_results("inline", "inline", {"answers": rows})
    return rows


if __name__ == "__main__":
    main()
