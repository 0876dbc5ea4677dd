"""Command benchmark: time to build a reply in-process (p50/p99), and updates per second through the whole bot.

    python -m bench.commands            # 10,000 builds per command; 1,000 updates end to end at 0 and 40 ms
    python -m bench.commands --quick    # a few seconds

In-process: `await dispatch(request, services)` with the shipped content and no store (none of /sector,
/search, /start touches it), in each interface language (English, and Traditional Chinese through its
catalogue). End to end: the whole bot (`bot.app`: PTB Application, long polling, SQLite store, scheduler)
against the Bot API double in another process, which queues N command updates; the time runs from queueing
them until the double has recorded N replies.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "true")

from bench.common import CONTENT, print_table, write_results
from bench.double import DoubleProcess
from bot.app import opened, telegram_running
from bot.content import load_catalogue
from bot.core.addresses import telegram
from bot.core.commands import dispatch
from bot.core.messages import Chat, Request, User
from bot.core.services import Services, StaticContent
from bot.settings import Secret, Settings

COMMANDS = ("/sector finance", "/search hkust ai", "/start")
LANGUAGES = ("en", "zh-Hant")


def _request(text: str, language: str = "en") -> Request:
    command, *args = text.lstrip("/").split()
    return Request(command, tuple(args), Chat(telegram(42)), User(42, "Ada"), language=language)


async def reply_build_times(iterations: int) -> list[dict[str, Any]]:
    """p50/p99/max microseconds of `dispatch` for each command in each language, after a warm-up."""
    now = datetime.now(UTC)
    services = Services(content=StaticContent(load_catalogue(CONTENT, now=now)), clock=lambda: now)
    rows = []
    for language, text in ((language, text) for language in LANGUAGES for text in COMMANDS):
        request = _request(text, language)
        for _ in range(min(200, iterations)):
            await dispatch(request, services)
        samples = []
        for _ in range(iterations):
            start = time.perf_counter_ns()
            await dispatch(request, services)
            samples.append(time.perf_counter_ns() - start)
        samples.sort()
        rows.append({"command": text, "language": language, "iterations": iterations,
                     "p50_us": samples[len(samples) // 2] / 1000,
                     "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
                     "max_us": samples[-1] / 1000, "mean_us": statistics.fmean(samples) / 1000})
    return rows


async def updates_per_second(updates: int, latency: float) -> dict[str, Any]:
    """The whole bot answering `updates` queued commands against the double with `latency`."""
    with DoubleProcess(latency=latency) as double, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(telegram_token=Secret(double.token), telegram_api_url=double.api_url, content_dir=CONTENT,
                            content_history_dir=Path(tmp) / "history", watch_content=False, watch_sources=False,
                            log_level="WARNING",
                            database_url=f"sqlite:///{tmp}/bot.sqlite3", tick_seconds=15.0)
        async with opened(settings) as runtime, telegram_running(runtime):
            await asyncio.sleep(0.2)  # let the start-up calls (getMe, setMyCommands) finish
            baseline = int(double.stats()["ok_sends"])
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.to_thread(double.push_commands, list(COMMANDS), updates, 10_000)
            replies = 0
            while replies < updates:
                await asyncio.sleep(0.05)
                replies = int((await asyncio.to_thread(double.stats))["ok_sends"]) - baseline
                if time.monotonic() - wall0 > 600:
                    break
            wall = time.monotonic() - wall0
            cpu = time.process_time() - cpu0
    return {"latency_ms": latency * 1000, "updates": updates, "replies": replies, "seconds": wall,
            "updates_per_s": replies / wall, "cpu_ms_per_update": 1000 * cpu / max(replies, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both parts, print the tables and write bench/results/commands.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=1_000)
    parser.add_argument("--latencies", default="0,0.04", help="the double's latencies (s) for the end-to-end part")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.updates, args.latencies = 500, 60, "0"
    builds = asyncio.run(reply_build_times(args.iterations))
    print_table("Reply build time in-process (dispatch, shipped content, no store)", builds,
                ["command", "language", "iterations", "p50_us", "p99_us", "max_us", "mean_us"])
    e2e = [asyncio.run(updates_per_second(args.updates, float(latency))) for latency in args.latencies.split(",")]
    print_table("Updates end to end (whole bot vs the double in another process)", e2e,
                ["latency_ms", "updates", "replies", "seconds", "updates_per_s", "cpu_ms_per_update"])
    result = {"reply_build": builds, "end_to_end": e2e}
    write_results("commands", "commands", result)
    return result


if __name__ == "__main__":
    main()
