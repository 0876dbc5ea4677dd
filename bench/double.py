"""The local Bot API double in its own process, with a small control API, so it never shares a core with the bot.

Run by the benchmarks as `python -m bench.double --latency 0.04 ...`; it prints one JSON line (its URLs) and
serves until its stdin closes. The control API (same host, another port) answers:
`GET /stats` (sendMessage counts per chat, rate, errors, the double's own CPU), `POST /updates` (queue
command updates for getUpdates) and `POST /faults` (change latency and random faults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bench.common import GcPauses

# The double is a test double, not part of the installed bot: it lives in tests/doubles (importable as `doubles`,
# as in the tests, where pytest puts tests/ on the path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from doubles.fake_bot_api import FakeBotApi


def _stats(fake: FakeBotApi, gc_pauses: GcPauses) -> dict[str, Any]:
    """What the double saw: successful sends per chat, attempts and errors, and the sending rate."""
    per_chat: Counter[int] = Counter()
    for params in fake.sent_messages():
        per_chat[int(params["chat_id"])] += 1
    errors: Counter[str] = Counter()
    attempts = 0
    for rec in fake.requests:
        if rec.method == "sendMessage":
            attempts += 1
            if not rec.ok:
                errors[str(rec.status)] += 1
    times = sorted(fake.send_timestamps())
    per_second: Counter[int] = Counter(int(t - times[0]) for t in times) if times else Counter()
    return {
        "sent_per_chat": {str(chat): count for chat, count in per_chat.items()},
        "ok_sends": len(times),
        "attempts": attempts,
        "errors": dict(errors),
        "first_send_at": times[0] if times else None,
        "last_send_at": times[-1] if times else None,
        "max_in_1s": fake.max_rate(1.0),
        # What Telegram's limit counts: requests arriving, before the double's latency and scheduling.
        "max_arrivals_in_1s": fake.max_arrival_rate(1.0),
        # Full seconds only: the first and the last second of a run are partly idle.
        "per_second": [per_second[i] for i in range(1, max(per_second, default=0))],
        "cpu_seconds": time.process_time(),
        "now": time.monotonic(),
        "gc": gc_pauses.summary(),
    }


async def _freeze_what_it_keeps() -> None:
    """Move what the double has kept so far out of the garbage collector's sight, every second.

    The double keeps a record of every request it answered (100,000 sends: ~500 MB). Left to the collector,
    its full collections grew to 0.67 s each (21 of them, 6.4 s in a 108 s run), and Telegram never stalls
    because of our process: every such pause showed up as a dip in the bot's measured rate.
    """
    while True:
        await asyncio.sleep(1.0)
        gc.freeze()


async def _serve(args: argparse.Namespace) -> None:
    gc_pauses = GcPauses()
    fake = FakeBotApi(latency=args.latency, seed=args.seed)
    await fake.start()
    fake.set_random_faults(rate_429=args.rate_429, retry_after=args.retry_after, rate_500=args.rate_500)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(_stats(fake, gc_pauses))

    async def updates(request: web.Request) -> web.Response:
        body = await request.json()
        for i in range(int(body["count"])):
            text = body["texts"][i % len(body["texts"])]
            chat_id = int(body.get("first_chat", 1)) + i
            fake.push_update(fake.command_update(text, chat_id=chat_id, user_id=chat_id))
        return web.json_response({"queued": int(body["count"])})

    async def faults(request: web.Request) -> web.Response:
        body = await request.json()
        fake.latency = float(body.get("latency", fake.latency))
        fake.set_random_faults(rate_429=float(body.get("rate_429", 0.0)), retry_after=int(body.get("retry_after", 1)),
                               rate_500=float(body.get("rate_500", 0.0)))
        return web.json_response({"ok": True})

    control = web.Application()
    control.router.add_get("/stats", stats)
    control.router.add_post("/updates", updates)
    control.router.add_post("/faults", faults)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = int(runner.addresses[0][1])
    print(json.dumps({"api_url": fake.api_url, "token": fake.token,
                      "control_url": f"http://127.0.0.1:{control_port}", "pid": os.getpid()}), flush=True)
    freezing = asyncio.create_task(_freeze_what_it_keeps())
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # the parent closes our stdin to stop us
    freezing.cancel()
    await runner.cleanup()
    await fake.stop()


@dataclass
class DoubleProcess:
    """A running `python -m bench.double`; use as a context manager."""

    latency: float = 0.04
    rate_429: float = 0.0
    rate_500: float = 0.0
    retry_after: int = 1
    seed: int = 1
    api_url: str = ""
    token: str = ""
    control_url: str = ""
    _proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        """Start the double and wait for its URLs."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.double", "--latency", str(self.latency), "--rate-429", str(self.rate_429),
             "--rate-500", str(self.rate_500), "--retry-after", str(self.retry_after), "--seed", str(self.seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parent.parent)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the Bot API double did not start")
        info = json.loads(line)
        self.api_url, self.token, self.control_url = info["api_url"], info["token"], info["control_url"]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Stop the double (close its stdin, then wait; kill it if it hangs)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.control_url}{path}", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def stats(self) -> dict[str, Any]:
        """The double's record of sendMessage calls (see _stats)."""
        return self._call("/stats")

    def push_commands(self, texts: list[str], count: int, first_chat: int = 1) -> None:
        """Queue `count` command updates, cycling through `texts`, each from its own private chat."""
        self._call("/updates", {"texts": texts, "count": count, "first_chat": first_chat})

    def set_faults(self, *, latency: float, rate_429: float = 0.0, rate_500: float = 0.0, retry_after: int = 1) -> None:
        """Change the response latency and the random fault rates."""
        self._call("/faults", {"latency": latency, "rate_429": rate_429, "rate_500": rate_500,
                               "retry_after": retry_after})


def main() -> None:
    """Serve the double until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.04)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
