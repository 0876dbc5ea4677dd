"""Fan-out benchmark: N subscribed chats, one digest each, at Telegram's rate ceiling, against the Bot API double.

    python -m bench.fanout                      # the issue's scenarios (about 8 minutes)
    python -m bench.fanout --quick              # a few seconds: N=200, 1,000/s, 5 ms latency
    python -m bench.fanout --scenario 1000:10000 --variants engine-json,ptb-loop --latency 0.04

Each (scenario, variant) runs in two fresh processes: the double (`bench.double`) and the sender under test
(`python -m bench.fanout --worker ...`), so CPU seconds and peak memory are the sender's alone.

Variants:
- engine-json: the real delivery path (DigestService tick, DeliveryEngine, SQLite store, digest composer) with
  BotApiSender (JSON over aiohttp), recording Prometheus metrics as the bot does by default.
- engine-json-nometrics: the same with metrics off (METRICS_ENABLED=false), to measure what recording costs.
- engine-ptb: the same path with TelegramSender over PTB's Bot (HTTPXRequest, pool = in-flight).
- ptb-loop: `for chat in chats: await bot.send_message(...)` (no store).
- ptb-aiorl: PTB's ExtBot with AIORateLimiter(overall_max_rate=ceiling) and concurrent sends (no store).
- engine-slack: the real delivery path to Slack channels (SlackSender, chat.postMessage through slack-sdk) against
  the Slack Web API double (tests/doubles/slack_api.py, in a thread of the driver process); CHATS are channels,
  the ceiling the workspace-wide pace (`python -m bench.fanout --scenario 50:2000 --variants engine-slack`).
Baselines (and engine-ptb) stop after --cap-seconds; their rate is what they reached by then.
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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "true")  # PTB 22 reads a deprecated attribute to build RetryAfter otherwise

from telegram import Bot, LinkPreviewOptions
from telegram.error import RetryAfter as PtbRetryAfter
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest

from bench.common import CONTENT, ROOT, GcPauses, fill_subscriptions, peak_rss_mb, print_table, write_results
from bench.double import DoubleProcess
from bot.app import freeze_startup_objects
from bot.content import load_catalogue
from bot.core.digest_composer import DigestRules, compose_digest
from bot.core.ports import NO_METRICS
from bot.core.services import StaticContent
from bot.core.subscriptions import DigestHistory
from bot.delivery import DeliveryEngine, RateLimits, Sender
from bot.digest_scheduler import DigestService, digest_composer
from bot.metrics import PrometheusMetrics
from bot.slack.connect import close_client, web_client
from bot.slack.identity import slack_chat
from bot.slack.sender import SlackSender, slack_platform
from bot.store import open_store
from bot.tg.platform import telegram_platform
from bot.tg.render import html_parts
from bot.tg.sender import BotApiSender, TelegramSender

VARIANTS = ("engine-json", "engine-ptb", "ptb-loop", "ptb-aiorl")
ENGINE_VARIANTS = ("engine-json", "engine-json-nometrics", "engine-ptb", "engine-slack")
JSON_VARIANTS = ("engine-json", "engine-json-nometrics")


@dataclass(frozen=True)
class Job:
    """One variant of one scenario, as handed to a worker process."""

    variant: str
    ceiling: float
    chats: int
    latency: float
    rate_429: float
    rate_500: float
    in_flight: int
    cap_seconds: float
    engine_cap_seconds: float = 300.0
    api_url: str = ""
    token: str = ""


# --------------------------------------------------------------------------------------------------- worker


def _sample_digest(now: datetime) -> str:
    """One digest as the composer writes it, for the baselines (which have no store)."""
    catalogue = load_catalogue(CONTENT, now=now)
    from bot.core.addresses import telegram
    from bot.core.messages import ChatKind
    from bot.core.schedule import Cadence, Schedule
    from bot.core.subscriptions import Subscription

    schedule = Schedule(Cadence.DAILY, datetime.strptime("09:00", "%H:%M").time(), "Asia/Hong_Kong")
    subscription = Subscription(1, telegram(1), None, ChatKind.PRIVATE, schedule, (), True, now, now)
    payload = compose_digest(subscription, catalogue, now, DigestHistory(), DigestRules())
    assert payload is not None
    assert payload.message is not None
    return html_parts(payload.message)[0]


async def _engine_run(job: Job) -> dict[str, Any]:
    """The real path: bulk subscriptions due now, one scheduler tick, then the engine until everything is done."""
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/bench.sqlite3")
        try:
            if job.variant == "engine-slack":
                await _fill_slack_channels(store, job.chats, now - timedelta(minutes=1))
            else:
                await fill_subscriptions(store, job.chats, [now - timedelta(minutes=1)])
            content = StaticContent(load_catalogue(CONTENT, now=now))

            def clock() -> datetime:
                return datetime.now(UTC)

            limits = RateLimits(messages_per_second=job.ceiling, max_in_flight=job.in_flight,
                                max_claimed=max(256, 2 * job.in_flight))
            async with contextlib.AsyncExitStack() as stack:
                sender: Sender
                if job.variant == "engine-slack":
                    client = web_client(job.token, job.api_url, connections=job.in_flight)
                    stack.push_async_callback(close_client, client)
                    sender = SlackSender(client)
                elif job.variant in JSON_VARIANTS:
                    sender = await stack.enter_async_context(BotApiSender(f"{job.api_url}/bot{job.token}"))
                else:
                    request = HTTPXRequest(connection_pool_size=job.in_flight, pool_timeout=30.0)
                    bot = await stack.enter_async_context(Bot(job.token, base_url=f"{job.api_url}/bot",
                                                              request=request))
                    sender = TelegramSender(bot)
                platform = (slack_platform(sender) if job.variant == "engine-slack"
                            else telegram_platform(sender))
                metrics = NO_METRICS if job.variant == "engine-json-nometrics" else PrometheusMetrics("bench")
                engine = DeliveryEngine(store, platform, limits, worker_id="bench",
                                        compose=digest_composer(store, content, clock, DigestRules()), now=clock,
                                        metrics=metrics)
                service = DigestService(store, engine, clock, tick_seconds=15.0, metrics=metrics)
                freeze_startup_objects()  # as `python -m bot` does once it has started
                cpu0, wall0 = time.process_time(), time.monotonic()
                tick0 = time.perf_counter()
                enqueued = await service.tick()
                tick_seconds = time.perf_counter() - tick0
                # The bot's own delivery loop (retries go out when they fall due); this only watches the store.
                service.start(schedule=False)
                cap = job.engine_cap_seconds if job.variant in (*JSON_VARIANTS, "engine-slack") else job.cap_seconds
                deadline = time.monotonic() + cap
                capped = False
                while engine.total.settled < enqueued and not capped:  # the engine's counters: no store query
                    await asyncio.sleep(0.05)
                    capped = time.monotonic() > deadline
                await service.stop()
                report = engine.total
                wall = time.monotonic() - wall0
                cpu = time.process_time() - cpu0
            stats = await store.delivery_stats()
        finally:
            await store.close()
    return {"enqueued": enqueued, "tick_seconds": tick_seconds, "wall_seconds": wall, "cpu_seconds": cpu,
            "store_sent": stats.sent, "store_failed": stats.failed, "store_pending": stats.pending + stats.sending,
            "store_possible_duplicates": stats.possible_duplicates, "report": asdict(report),
            "capped": capped}


async def _fill_slack_channels(store: Any, count: int, due: datetime) -> None:
    """`count` Slack channels (C0000001 ...), each with a daily digest due at `due` (as fill_subscriptions does)."""
    sql = ("INSERT INTO subscriptions (chat, thread_id, chat_kind, cadence, weekday, at_time, timezone, sections,"
           " spotlight, active, created_at, updated_at, next_due_at) VALUES (?, 0, 'group', 'daily', NULL, '09:00',"
           " 'Asia/Hong_Kong', '', TRUE, TRUE, ?, ?, ?)")
    rows = [(str(slack_chat("T0123", f"C{number:07d}").address), due, due, due) for number in range(1, count + 1)]
    async with store.driver.transaction() as tx:
        await tx.executemany(sql, rows)


async def _baseline_run(job: Job) -> dict[str, Any]:
    """What a user would otherwise write: a plain send loop, or AIORateLimiter with concurrent sends."""
    text = _sample_digest(datetime.now(UTC))
    preview = LinkPreviewOptions(is_disabled=True)
    failures = 0
    attempted = 0
    pool = max(job.in_flight, 1)
    request = HTTPXRequest(connection_pool_size=pool, pool_timeout=30.0)
    deadline = time.monotonic() + job.cap_seconds
    cpu0, wall0 = time.process_time(), time.monotonic()
    if job.variant == "ptb-loop":
        async with Bot(job.token, base_url=f"{job.api_url}/bot", request=request) as bot:
            for chat in range(1, job.chats + 1):
                if time.monotonic() > deadline:
                    break
                attempted += 1
                try:
                    await bot.send_message(chat, text, parse_mode="HTML", link_preview_options=preview)
                except TelegramError:
                    failures += 1
    else:
        limiter = AIORateLimiter(overall_max_rate=job.ceiling, overall_time_period=1, max_retries=3)
        async with ExtBot(job.token, base_url=f"{job.api_url}/bot", request=request, rate_limiter=limiter) as bot:
            gate = asyncio.Semaphore(pool)

            async def one(chat: int) -> bool:
                async with gate:
                    if time.monotonic() > deadline:
                        return False
                    try:
                        await bot.send_message(chat, text, parse_mode="HTML", link_preview_options=preview)
                    except (TelegramError, PtbRetryAfter):
                        return True
                    return True

            results = await asyncio.gather(*(one(chat) for chat in range(1, job.chats + 1)),
                                           return_exceptions=True)
            attempted = sum(1 for r in results if r is True)
    wall = time.monotonic() - wall0
    cpu = time.process_time() - cpu0
    return {"wall_seconds": wall, "cpu_seconds": cpu, "attempted": attempted, "send_errors": failures,
            "capped": attempted < job.chats}


def worker(job: Job) -> dict[str, Any]:
    """Run one job in this process; its figures plus this process's peak memory."""
    run = _engine_run if job.variant in ENGINE_VARIANTS else _baseline_run
    gc_pauses = GcPauses()
    result = asyncio.run(run(job))
    result["peak_rss_mb"] = peak_rss_mb()
    result["gc"] = gc_pauses.summary()
    return result


# --------------------------------------------------------------------------------------------------- driver


def run_job(job: Job) -> dict[str, Any]:
    """Start the double and a worker process for one job; join the double's record with the worker's figures."""
    if job.variant == "engine-slack":
        return run_slack_job(job)
    with DoubleProcess(latency=job.latency, rate_429=job.rate_429, rate_500=job.rate_500) as double:
        spec = json.dumps(asdict(Job(**{**asdict(job), "api_url": double.api_url, "token": double.token})))
        done = subprocess.run([sys.executable, "-m", "bench.fanout", "--worker", spec], capture_output=True,
                              text=True, check=False, cwd=ROOT, env={**os.environ, "PTB_TIMEDELTA": "true"})
        if done.returncode != 0:
            raise RuntimeError(f"worker {job.variant} failed:\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        stats = double.stats()
    counts = stats["sent_per_chat"]
    delivered = len(counts)
    duplicates = sum(count - 1 for count in counts.values() if count > 1)
    # A capped baseline is judged on the chats it tried; a capped engine run left the rest pending in its store.
    attempted = job.chats if not result.get("capped") else result.get("attempted")
    ok = int(stats["ok_sends"])
    first, last = stats["first_send_at"], stats["last_send_at"]
    rate = (ok - 1) / (last - first) if ok > 1 and last > first else 0.0
    per_second = stats.get("per_second") or []
    row = {
        "variant": job.variant, "ceiling": job.ceiling, "chats": job.chats, "faults": _faults(job),
        "sent": ok, "rate": rate, "ratio": rate / job.ceiling,
        # Telegram counts refused requests against the ceiling too: the share of it the run used, errors included.
        "request_ratio": (stats["attempts"] / (last - first) / job.ceiling) if ok > 1 and last > first else 0.0,
        "max_1s": stats["max_in_1s"],
        "max_arrivals_1s": stats.get("max_arrivals_in_1s"),
        "wall_s": result["wall_seconds"], "cpu_s_per_1k": 1000 * result["cpu_seconds"] / max(ok, 1),
        "peak_rss_mb": result["peak_rss_mb"], "duplicates": duplicates,
        "losses": (job.chats - delivered) if not result.get("capped") else None,
        "lost_of_tried": None if attempted is None else attempted - delivered,
        "capped": bool(result.get("capped")), "attempts": stats["attempts"], "errors": stats["errors"],
        "double_cpu_s": stats["cpu_seconds"], "double_gc": stats["gc"], "worker": result,
        "median_1s": statistics.median(per_second) if per_second else None,
        "per_second": per_second,  # answers in each full second of the run, to see where a run lost time
    }
    return row


def run_slack_job(job: Job) -> dict[str, Any]:
    """engine-slack: the Slack Web API double in a thread of this process, the engine in a worker process."""
    import threading

    from doubles.slack_api import SlackApiDouble

    started = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        finished = holder["finished"] = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        async with SlackApiDouble(latency=job.latency) as api:
            for number in range(1, job.chats + 1):
                api.add_channel(f"C{number:07d}", creator="U0OWNER")
            holder["api"] = api
            started.set()
            await finished.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    started.wait(30)
    api = holder["api"]
    try:
        spec = json.dumps(asdict(Job(**{**asdict(job), "api_url": api.base_url, "token": api.token})))
        done = subprocess.run([sys.executable, "-m", "bench.fanout", "--worker", spec], capture_output=True,
                              text=True, check=False, cwd=ROOT, env=dict(os.environ))
        if done.returncode != 0:
            raise RuntimeError(f"worker {job.variant} failed:\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        holder["loop"].call_soon_threadsafe(holder["finished"].set)
        thread.join(30)
    times = sorted(call.at for call in api.calls if call.method == "chat.postMessage")
    ok = sum(len(messages) for messages in api.posted.values())
    first, last = (times[0], times[-1]) if times else (0.0, 0.0)
    rate = (ok - 1) / (last - first) if ok > 1 and last > first else 0.0
    max_1s, start = 0, 0
    for end, moment in enumerate(times):  # the most requests arriving in any 1 s window
        while moment - times[start] >= 1.0:
            start += 1
        max_1s = max(max_1s, end - start + 1)
    duplicates = sum(len(messages) - 1 for messages in api.posted.values() if len(messages) > 1)
    return {
        "variant": job.variant, "ceiling": job.ceiling, "chats": job.chats, "faults": _faults(job), "sent": ok,
        "rate": rate, "ratio": rate / job.ceiling, "request_ratio": None, "max_1s": None,
        "max_arrivals_1s": max_1s, "wall_s": result["wall_seconds"],
        "cpu_s_per_1k": 1000 * result["cpu_seconds"] / max(ok, 1), "peak_rss_mb": result["peak_rss_mb"],
        "duplicates": duplicates, "losses": job.chats - len(api.posted), "lost_of_tried": None,
        "capped": bool(result.get("capped")), "attempts": len(times), "errors": len(times) - ok,
        "over_channel_rate": api.over_channel_rate, "violations": api.violations[:10], "worker": result,
    }


def _faults(job: Job) -> str:
    if not job.rate_429 and not job.rate_500:
        return "none"
    return f"{job.rate_429:.0%} 429, {job.rate_500:.0%} 500"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse options, run every (scenario, variant), print the table and write bench/results/fanout.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smoke run: N=200 at 1,000/s, 5 ms latency")
    parser.add_argument("--scenario", action="append", metavar="CEILING:CHATS",
                        help="repeatable; default 30:3600, 1000:10000, 1000:100000")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--latency", type=float, default=0.04, help="the double's answer latency in seconds")
    parser.add_argument("--faults", choices=("both", "none", "only"), default="both",
                        help="also run each scenario with 2%% 429 (retry_after 1) and 1%% 500")
    parser.add_argument("--rate-429", type=float, default=0.02)
    parser.add_argument("--rate-500", type=float, default=0.01)
    parser.add_argument("--in-flight", type=int, default=0, help="sends in flight (default: 64, 160 at 1,000/s)")
    parser.add_argument("--cap-seconds", type=float, default=20.0, help="time limit of baselines and engine-ptb")
    parser.add_argument("--engine-cap-seconds", type=float, default=300.0, help="time limit of engine-json")
    parser.add_argument("--name", default="fanout", help="results file name under bench/results/")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(Job(**json.loads(args.worker)))))
        return []
    if args.quick:
        scenarios = [(1000.0, 200)]
        args.latency, args.cap_seconds = 0.005, 2.0
    else:
        scenarios = [(float(c), int(n)) for c, n in (s.split(":") for s in args.scenario or
                                                      ["30:3600", "1000:10000", "1000:100000"])]
    fault_sets = {"none": [(0.0, 0.0)], "only": [(args.rate_429, args.rate_500)],
                  "both": [(0.0, 0.0), (args.rate_429, args.rate_500)]}[args.faults]
    rows: list[dict[str, Any]] = []
    for ceiling, chats in scenarios:
        in_flight = args.in_flight or (160 if ceiling >= 500 else 64)
        for rate_429, rate_500 in fault_sets:
            for variant in args.variants.split(","):
                if variant == "engine-slack" and (rate_429 or rate_500):
                    continue  # the Slack double injects faults per channel (tests), not at random
                job = Job(variant, ceiling, chats, args.latency, rate_429, rate_500, in_flight, args.cap_seconds,
                          args.engine_cap_seconds)
                row = run_job(job)
                rows.append(row)
                print(f"{variant:21} {ceiling:>6g}/s N={chats:<7} faults={row['faults']:14} "
                      f"rate={row['rate']:8.1f}/s ratio={row['ratio']:.3f} dup={row['duplicates']} "
                      f"loss={row['losses']}", flush=True)
    print_table("Fan-out (rate and ratio between the first and last answer at the double)", rows,
                ["variant", "ceiling", "chats", "faults", "sent", "rate", "ratio", "request_ratio", "max_1s",
                 "max_arrivals_1s",
                 "wall_s", "cpu_s_per_1k", "peak_rss_mb", "duplicates", "losses", "lost_of_tried", "capped"])
    write_results("fanout", args.name, {"latency": args.latency, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
