"""End-to-end harness: the real bot (python-telegram-bot, store, scheduler) against the local Bot API double."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from doubles.fake_bot_api import FakeBotApi

from bot.app import Runtime, opened, telegram_running
from bot.settings import Secret, Settings

ROOT = Path(__file__).parent.parent
CONTENT = ROOT / "content"


@dataclass
class FakeClock:
    """A clock the test moves by hand: the bot's idea of now, with no real waiting."""

    now: datetime = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def e2e_settings(fake: FakeBotApi, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a bot talking to the double, with a real SQLite file and fast ticks."""
    base = Settings(telegram_token=Secret(fake.token), telegram_api_url=fake.api_url, content_dir=CONTENT,
                    database_url=f"sqlite:///{tmp_path}/bot.sqlite3", tick_seconds=0.05,
                    messages_per_second=1000.0, private_chat_interval=0.0, group_messages_per_minute=0,
                    lease_seconds=5.0, admin_ids=frozenset({900}),
                    watch_sources=False)  # no test reaches the network: polling tests serve feeds locally
    return replace(base, **overrides)


@contextlib.asynccontextmanager
async def running_bot(fake: FakeBotApi, settings: Settings, clock: FakeClock | None = None
                      ) -> AsyncIterator[Runtime]:
    """Start the whole bot against the double; stop it gracefully afterwards."""
    clock = clock or FakeClock()
    async with opened(settings, clock) as runtime, telegram_running(runtime, clock):
        await fake.wait_for("setMyCommands")
        yield runtime


def texts(fake: FakeBotApi, chat_id: int) -> list[str]:
    """The texts the bot sent to one chat, in order."""
    return [str(message["text"]) for message in fake.sent_messages(chat_id)]


def sent_message_ids(fake: FakeBotApi, chat_id: int) -> list[int]:
    """Message ids the double assigned to the bot's messages in one chat."""
    return [int(r.result["message_id"]) for r in fake.requests
            if r.method == "sendMessage" and r.ok and int(r.params["chat_id"]) == chat_id]
