"""Sources benchmark: one poll round of 50 feeds of 200 items, half unchanged (304); dedup of 10,000 items; and
one HTML listing page of 500 items read with its selectors (selectolax).

    python -m bench.sources            # 50 sources x 200 items, 3 rounds; dedup of 10,000 items; a 500-item page
    python -m bench.sources --quick    # 6 sources x 20 items, 1 round; dedup of 1,000; a 50-item page

The feeds come from tests/doubles/feed_server.py in its own process, so the poller's CPU time is its own. Each
round is `bot.sources.poll.poll_sources` as the bot runs it (aiohttp, feedparser in a thread, selection), with
states holding the ETag of half the sources so those answer 304. Wall and CPU time are the poller's
(time.perf_counter, time.process_time); peak memory is the Python allocations during the round (tracemalloc, in a
separate round so it does not slow the timed ones) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from bench.common import peak_rss_mb, print_table, write_results
from bot.core.candidates import SourceState
from bot.core.catalogue import PageSelectors, SourceRules, WatchedSource, Watchlist
from bot.sources.fetch import FetchLimits, feed_session
from bot.sources.page import parse_page
from bot.sources.poll import poll_sources
from bot.sources.select import Entry, Selector
from tests.doubles.feed_server import FeedServer, gov_rss

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
RULES = SourceRules(keywords=("artificial intelligence", "AI", "generative AI", "machine learning", "人工智能",
                              "大模型"),
                    section_keywords={"finance": ("bank", "fintech"), "healthcare": ("hospital",),
                                      "academia": ("university", "research")})


def _feed(source: int, items: int) -> str:
    """A government-shaped feed; every other item is about AI, and every item has a few lines of description."""
    rows = []
    for n in range(items):
        topic = "generative AI sandbox for banks" if n % 2 == 0 else "flag day permits and road works"
        rows.append((f"Source {source} item {n}: {topic}", f"https://feeds.example/{source}/release/{n}.htm",
                     NOW - timedelta(hours=n), "<p>" + "The department said today that the scheme continues. " * 6
                     + "</p>"))
    return gov_rss(rows)


def _serve(sources: int, items: int, conn: Connection) -> None:
    async def run() -> None:
        server = FeedServer()
        await server.start()
        for source in range(sources):
            server.add(f"/feed/{source}.xml", _feed(source, items), etag=f'"v{source}"')
        conn.send(server.port)
        await asyncio.to_thread(conn.recv)  # until the parent says stop
        await server.close()

    asyncio.run(run())


def _watchlist(port: int, sources: int) -> tuple[Watchlist, dict[str, SourceState]]:
    watched = tuple(WatchedSource(id=f"s{n}", name=f"Source {n}", kind="rss",
                                  url=f"http://127.0.0.1:{port}/feed/{n}.xml", language="en",
                                  sections=("government",), poll_minutes=15) for n in range(sources))
    # Half the sources were polled before and have not changed since: they answer 304.
    states = {f"s{n}": SourceState(f"s{n}", etag=f'"v{n}"') for n in range(0, sources, 2)}
    return Watchlist(watched, RULES), states


async def _round(watchlist: Watchlist, states: dict[str, SourceState]) -> tuple[float, float, Any]:
    limits = FetchLimits(read_seconds=30, total_seconds=120)
    async with feed_session("@bench", limits) as fetcher:
        wall, cpu = time.perf_counter(), time.process_time()
        result = await poll_sources(watchlist, states, NOW, fetcher, everything=True)
        return time.perf_counter() - wall, time.process_time() - cpu, result


def poll_round(port: int, sources: int, rounds: int) -> dict[str, Any]:
    """Time `rounds` poll rounds, then measure one round's peak Python memory."""
    watchlist, states = _watchlist(port, sources)
    walls, cpus = [], []
    result: Any = None
    for _ in range(rounds):
        wall, cpu, result = asyncio.run(_round(watchlist, states))
        walls.append(wall)
        cpus.append(cpu)
    tracemalloc.start()
    asyncio.run(_round(watchlist, states))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    not_modified = sum(1 for poll in result.polls if poll.not_modified)
    failed = sum(1 for poll in result.polls if poll.error)
    return {"sources": sources, "answered_304": not_modified, "failed": failed,
            "items_read": sum(len(poll.entries) for poll in result.polls), "candidates": len(result.items),
            "wall_s_median": statistics.median(walls), "wall_s_best": min(walls),
            "cpu_s_median": statistics.median(cpus), "peak_alloc_mb": peak / 2**20, "peak_rss_mb": peak_rss_mb(),
            "rounds": rounds}


def dedup(count: int, runs: int) -> dict[str, Any]:
    """Select from `count` entries over 50 sources, a quarter repeating another's link and a quarter its title."""
    sources = [WatchedSource(id=f"s{n}", name=f"S{n}", kind="rss", url=f"https://feeds.example/{n}", language="en",
                             sections=("government",), poll_minutes=15) for n in range(50)]
    per_source = count // len(sources)
    batches = []
    for s, source in enumerate(sources):
        entries = []
        for n in range(per_source):
            index = s * per_source + n
            kind = index % 4
            if kind == 1:  # the same release as the one before, with tracking parameters and a fragment
                link, title = f"https://news.example/{index - 1}?utm_source=rss&fbclid=x#top", f"AI release {index - 1}"
            elif kind == 2:  # a near-identical title on another link
                link, title = f"https://other.example/{index}", f"AI  Release {index - 2} (with photos)"
            else:
                link, title = f"https://news.example/{index}", f"AI release {index}"
            entries.append(Entry(title, link, NOW, "Machine learning at the university hospital and the bank."))
        batches.append((source, entries))
    known = [f"https://news.example/{n}" for n in range(0, 400, 4)]  # content/ already links to 100 of them
    times = []
    found: list[Any] = []
    for _ in range(runs):
        start = time.perf_counter()
        found = Selector(RULES).select(batches, known_links=known)
        times.append(time.perf_counter() - start)
    return {"entries": per_source * len(sources), "kept": len(found), "median_ms": statistics.median(times) * 1000,
            "best_ms": min(times) * 1000, "per_entry_us": statistics.median(times) / (per_source * len(sources)) * 1e6,
            "runs": runs}


def page_parse(items: int, runs: int) -> dict[str, Any]:
    """Read a `kind: html` listing page of `items` items (title, link, date, summary each) with its selectors."""
    rows = "".join(f"<li><a class='t' href='/news/{n}'>AI item {n} &amp; more</a> <span class='d'>3 Dec 2026</span>"
                   f"<p>Summary of item {n}, in a paragraph of ordinary length for a listing page.</p></li>"
                   for n in range(items))
    html = f"<!doctype html><html><body><nav>menu</nav><ul class='news'>{rows}</ul></body></html>".encode()
    selectors = PageSelectors(item="ul.news > li", title="a.t", link="a.t", date="span.d", date_format="%d %b %Y",
                              summary="p")
    times = []
    read = 0
    for _ in range(runs):
        start = time.perf_counter()
        parsed = parse_page(html, selectors, content_type="text/html; charset=utf-8",
                            base_url="https://body.example/en/news", now=NOW, max_entries=items)
        times.append(time.perf_counter() - start)
        read = len(parsed.entries)
    return {"items": items, "read": read, "page_kb": len(html) // 1024, "median_ms": statistics.median(times) * 1000,
            "best_ms": min(times) * 1000, "per_item_us": statistics.median(times) / items * 1e6, "runs": runs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both measurements; print the tables and write bench/results/sources.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dedup", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.sources, args.items, args.rounds, args.dedup = 6, 20, 1, 1_000
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(args.sources, args.items, child), daemon=True)
    server.start()
    try:
        port = parent.recv()
        poll = {"items_per_feed": args.items, **poll_round(port, args.sources, args.rounds)}
    finally:
        parent.send("stop")
        server.join(timeout=30)
    dedup_row = dedup(args.dedup, 1 if args.quick else 5)
    page_row = page_parse(50 if args.quick else 500, 1 if args.quick else 5)
    print_table("One poll round (half the sources answer 304)", [poll],
                ["sources", "items_per_feed", "answered_304", "failed", "items_read", "candidates", "wall_s_median",
                 "wall_s_best", "cpu_s_median", "peak_alloc_mb", "peak_rss_mb", "rounds"])
    print_table("Selection and dedup", [dedup_row], ["entries", "kept", "median_ms", "best_ms", "per_entry_us", "runs"])
    print_table("An HTML listing page read with its selectors", [page_row],
                ["items", "read", "page_kb", "median_ms", "best_ms", "per_item_us", "runs"])
    result = {"poll": poll, "dedup": dedup_row, "page": page_row}
    write_results("sources", "sources", result)
    return result


if __name__ == "__main__":
    main()
