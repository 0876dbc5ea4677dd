"""Webhook flood: the bot's memory while 8 parallel 95 MB POSTs hit its webhook, without the secret and with it.

Starts the Bot API double (bench/double.py) and, per scenario, a fresh `python -m bot` in webhook mode on
127.0.0.1, with its code from --bot-root (default: this checkout; point it at another checkout to measure that
code the same way). It reads the bot's resident memory from /proc: at rest before the flood (VmRSS) and its
peak over the process's life (VmHWM), which the flood sets. Each POST streams its body from one reused 1 MiB
buffer and stops sending as soon as the bot answers or closes the connection; only 127.0.0.1 is ever sent to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import CONTENT, ROOT, print_table, write_results
from bench.double import DoubleProcess

SECRET = "bench-webhook-secret"
PIECE = memoryview(bytes(1024 * 1024))
POST_TIMEOUT = 120.0  # seconds; a POST still running then is recorded as "timeout"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


class BotProcess:
    """`python -m bot` in webhook mode, run from `root`, on a port of its own; a context manager."""

    def __init__(self, root: Path, double: DoubleProcess, data: Path) -> None:
        self.root = root
        self.port = _free_port()
        # No .pyc files: the checkout measured may be one that must not be written to.
        self.env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1",
                    "TELEGRAM_BOT_TOKEN": double.token, "TELEGRAM_API_URL": double.api_url,
                    "WEBHOOK_URL": "https://bot.example.test/telegram", "WEBHOOK_SECRET": SECRET,
                    "PORT": str(self.port), "WEBHOOK_LISTEN": "127.0.0.1",
                    "DATABASE_URL": f"sqlite:///{data}/bot.sqlite3", "CONTENT_DIR": str(CONTENT),
                    "CONTENT_HISTORY_DIR": str(data / "history"), "WATCH_CONTENT": "false",
                    "WATCH_SOURCES": "false", "LOG_LEVEL": "WARNING"}
        self.log = data / "bot.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BotProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=self.root, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        time.sleep(1.0)  # let start-up settle before the at-rest reading
                        return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError("the bot's webhook never answered /healthz")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _post(port: int, size: int, secret: str | None) -> dict[str, Any]:
    """One POST of `size` body bytes; stops sending when the answer (or the close) comes."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /telegram HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n" + (f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\n" if secret else "")
            + "\r\n")
    answer = asyncio.ensure_future(reader.readline())
    sent, outcome = 0, ""
    try:
        writer.write(head.encode())
        while sent < size and not answer.done():
            piece = PIECE[: min(len(PIECE), size - sent)]
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
        line = await answer
        outcome = line.split(b" ")[1].decode() if line else "closed"
    except OSError as exc:  # reset or broken pipe: the bot closed the connection while we were sending
        outcome = f"closed ({type(exc).__name__})"
        if answer.done() and not answer.cancelled() and answer.exception() is None and answer.result():
            outcome = answer.result().split(b" ")[1].decode()
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return {"outcome": outcome, "written_mb": sent / 2**20, "seconds": time.monotonic() - started}


async def _flood(port: int, posts: int, size: int, secret: str | None) -> list[dict[str, Any]]:
    async def bounded() -> dict[str, Any]:
        try:
            return await asyncio.wait_for(_post(port, size, secret), POST_TIMEOUT)
        except TimeoutError:
            return {"outcome": "timeout", "written_mb": None, "seconds": POST_TIMEOUT}

    return list(await asyncio.gather(*(bounded() for _ in range(posts))))


def scenario(root: Path, double: DoubleProcess, name: str, posts: int, size: int, secret: str | None
             ) -> dict[str, Any]:
    """A fresh bot, its memory at rest, the flood, its peak memory."""
    with tempfile.TemporaryDirectory() as tmp, BotProcess(root, double, Path(tmp)) as bot:
        assert bot.proc is not None
        at_rest = _memory_mb(bot.proc.pid, "VmRSS")
        started = time.monotonic()
        results = asyncio.run(_flood(bot.port, posts, size, secret))
        seconds = time.monotonic() - started
        peak = _memory_mb(bot.proc.pid, "VmHWM")
    outcomes = sorted({r["outcome"] for r in results})
    sent = [r["written_mb"] for r in results if r["written_mb"] is not None]
    return {"scenario": name, "posts": posts, "body_mb": size / 2**20, "rss_at_rest_mb": at_rest,
            "peak_rss_mb": peak, "outcomes": ", ".join(outcomes), "max_written_mb": max(sent, default=None),
            "flood_s": seconds, "per_post": results}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both scenarios against the bot at --bot-root; print the table and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_flood", description=__doc__)
    parser.add_argument("--bot-root", type=Path, default=ROOT, help="the checkout whose bot/ is run")
    parser.add_argument("--posts", type=int, default=8, help="parallel POSTs per scenario")
    parser.add_argument("--body-mb", type=float, default=95_000_000 / 2**20, help="each POST's body, MiB")
    parser.add_argument("--quick", action="store_true", help="2 POSTs of 5 MiB")
    args = parser.parse_args(argv)
    posts, size = (2, 5 * 2**20) if args.quick else (args.posts, int(args.body_mb * 2**20))
    root = args.bot_root.resolve()
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    with DoubleProcess(latency=0.0) as double:
        rows = [scenario(root, double, "no secret", posts, size, None),
                scenario(root, double, "secret, over the cap", posts, size, SECRET)]
    print_table(f"Webhook flood: {posts} parallel POSTs of {size:,} bytes, bot code {root} ({commit})", rows,
                ["scenario", "rss_at_rest_mb", "peak_rss_mb", "outcomes", "max_written_mb", "flood_s"])
    result = {"bot_root": str(root), "bot_commit": commit, "rows": rows}
    write_results("webhook_flood", "webhook_flood", result)
    return result


if __name__ == "__main__":
    main()
