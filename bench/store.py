"""Store benchmark: one scheduler tick finding and claiming due subscriptions among 1,000,000, and bot memory.

    python -m bench.store                         # SQLite; PostgreSQL too when DATABASE_URL_TEST is set
    source .ci/postgres.sh && python -m bench.store
    python -m bench.store --quick                 # 20,000 subscriptions, a few seconds

Subscriptions are bulk-inserted with next_due_at spread over the day, one slot a minute (1,000,000 / 1,440 =
~694 due per minute). A tick is `store.enqueue_due(now, 5000)` (DigestService's batch): "~700 due" moves now
one minute on; "5,000 due" moves it eight minutes on, so more than one batch is due and the tick takes 5,000.
Retention: every subscription then gets a digest sent 60 days ago, and the sweep deletes them a batch at a time.
Memory: a child process opens the bot (content, store with 100,000 subscriptions, services, the delivery loop
and the scheduler tick running idle) and reports its resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import CONTENT, ROOT, fill_subscriptions, peak_rss_mb, print_table, spread_over_a_day, write_results
from bot.app import build_digests, opened
from bot.core.addresses import ChatAddress
from bot.digest_scheduler import PRUNE_BATCH
from bot.settings import Settings
from bot.store import SqlStore, open_store
from bot.tg.platform import telegram_platform

BASE = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
SLOTS = 1440
TICKS = 5


class NullSender:
    """A Sender that sends nothing (the memory run has nothing due)."""

    async def send(self, chat: ChatAddress, thread_id: int | None, part: str, *, silent: bool) -> None:
        """Do nothing."""


async def _fill_postgres(store: SqlStore, count: int) -> None:
    """Set-based insert on PostgreSQL (generate_series): the same rows fill_subscriptions writes."""
    async with store.driver.transaction() as tx:
        await tx.execute(
            "INSERT INTO subscriptions (chat, thread_id, chat_kind, cadence, weekday, at_time, timezone, sections,"
            " spotlight, active, created_at, updated_at, next_due_at)"
            " SELECT 'telegram:' || g, 0, 'private', 'daily', NULL, '09:00', 'Asia/Hong_Kong', '', TRUE, TRUE, ?, ?,"
            " CAST(? AS TIMESTAMPTZ) + ((g - 1) % 1440) * INTERVAL '1 minute' FROM generate_series(1, ?) AS g",
            (BASE, BASE, BASE, count),
        )
        await tx.execute("ANALYZE subscriptions")


@contextlib.asynccontextmanager
async def _store(kind: str, count: int, postgres_url: str | None) -> AsyncIterator[SqlStore]:
    """A fresh store of `kind` holding `count` subscriptions spread over the day."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_store(f"sqlite:///{tmp}/bench.sqlite3")
            try:
                await fill_subscriptions(store, count, spread_over_a_day(BASE, SLOTS))
                yield store
            finally:
                await store.close()
        return
    assert postgres_url is not None
    store = await open_store(postgres_url)
    try:
        async with store.driver.transaction() as tx:
            for table in ("sent_items", "deliveries", "chat_settings", "subscriptions"):
                await tx.execute(f"DELETE FROM {table}")
        await _fill_postgres(store, count)
        yield store
    finally:
        await store.close()


async def prune_times(store: SqlStore, kind: str, count: int) -> dict[str, Any]:
    """Give every subscription a digest sent 60 days ago, then time the retention sweep's batches (30 days)."""
    sent_at = BASE - timedelta(days=60)
    fill0 = time.perf_counter()
    async with store.driver.transaction() as tx:
        finished = await tx.execute(
            "INSERT INTO deliveries (subscription_id, kind, period, status, created_at, updated_at, sent_at)"
            " SELECT id, 'digest', ?, 'sent', ?, ?, ? FROM subscriptions", (sent_at, sent_at, sent_at, sent_at))
    fill = time.perf_counter() - fill0
    times, counts = [], []
    for _ in range(TICKS):
        start = time.perf_counter()
        counts.append(await store.prune_finished_deliveries(BASE - timedelta(days=30), PRUNE_BATCH))
        times.append((time.perf_counter() - start) * 1000)
    return {"store": kind, "finished_deliveries": finished, "batch": PRUNE_BATCH, "batches": TICKS,
            "deleted": sum(counts), "median_ms": statistics.median(times), "max_ms": max(times), "fill_s": fill}


async def tick_times(kind: str, count: int, postgres_url: str | None) -> tuple[list[dict[str, Any]],
                                                                             dict[str, Any]]:
    """Time ticks with ~700 due and with 5,000 due (TICKS of each) on one filled store, then the retention sweep."""
    fill0 = time.perf_counter()
    rows = []
    async with _store(kind, count, postgres_url) as store:
        fill = time.perf_counter() - fill0
        per_slot = count / SLOTS
        cases = [("~700 due", [BASE + timedelta(minutes=k) for k in range(TICKS)]),
                 ("5,000 due (one batch)", [BASE + timedelta(minutes=TICKS + 8 * (k + 1)) for k in range(TICKS)])]
        for name, moments in cases:
            times, counts = [], []
            for now in moments:
                start = time.perf_counter()
                counts.append(await store.enqueue_due(now, 5000))
                times.append((time.perf_counter() - start) * 1000)
            rows.append({"store": kind, "subscriptions": count, "case": name, "due_per_minute": round(per_slot),
                         "enqueued": statistics.median(counts), "median_ms": statistics.median(times),
                         "max_ms": max(times), "fill_s": fill})
        prune = await prune_times(store, kind, count)
    return rows, prune


async def _memory_child(count: int) -> dict[str, Any]:
    """In a fresh process: the bot's parts with `count` subscriptions, idle ticks running; its memory."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bot.sqlite3"
        store = await open_store(url)
        await fill_subscriptions(store, count, [datetime.now(UTC) + timedelta(days=1)])
        await store.close()
        rss_empty = _rss_mb()
        settings = Settings(content_dir=CONTENT, content_history_dir=Path(tmp) / "history", database_url=url,
                            tick_seconds=0.2, watch_content=False, watch_sources=False)
        async with opened(settings) as runtime:
            digests = build_digests(runtime, [telegram_platform(NullSender())], lambda: datetime.now(UTC))
            digests.start()
            await asyncio.sleep(1.5)  # a few idle ticks
            active = await runtime.store.count_active()
            rss = _rss_mb()
            await digests.stop()
    return {"subscriptions": active, "rss_mb": rss, "peak_rss_mb": peak_rss_mb(), "rss_before_bot_mb": rss_empty}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory(count: int) -> dict[str, Any]:
    """Run _memory_child in a subprocess and return its figures."""
    done = subprocess.run([sys.executable, "-m", "bench.store", "--memory-child", str(count)], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the tick and memory measurements, print the tables, write bench/results/store.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--memory-subscriptions", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("DATABASE_URL_TEST"),
                        help="a PostgreSQL URL (default: DATABASE_URL_TEST); its tables are emptied")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(asyncio.run(_memory_child(args.memory_child))))
        return {}
    if args.quick:
        args.subscriptions, args.memory_subscriptions = 20_000, 2_000
    kinds = ["sqlite"] + (["postgres"] if args.postgres else [])
    measured = [asyncio.run(tick_times(kind, args.subscriptions, args.postgres)) for kind in kinds]
    ticks = [row for rows, _ in measured for row in rows]
    prunes = [prune for _, prune in measured]
    print_table("Scheduler tick: enqueue_due(now, 5000)", ticks,
                ["store", "subscriptions", "case", "due_per_minute", "enqueued", "median_ms", "max_ms", "fill_s"])
    print_table(f"Retention sweep: one batch of prune_finished_deliveries (after a tick, {PRUNE_BATCH:,} at most)",
                prunes,
                ["store", "finished_deliveries", "batch", "batches", "deleted", "median_ms", "max_ms", "fill_s"])
    mem = memory(args.memory_subscriptions)
    print_table("Bot process memory (content, SQLite store, services, idle tick)", [mem],
                ["subscriptions", "rss_mb", "peak_rss_mb", "rss_before_bot_mb"])
    result = {"ticks": ticks, "prunes": prunes, "memory": mem, "postgres": bool(args.postgres)}
    write_results("store", "store", result)
    return result


if __name__ == "__main__":
    main()
