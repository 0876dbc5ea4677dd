"""Services: built once and complete, shared parts stay shared, and the quiet-hours rule is one rule."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from harness import CONTENT

from bot.app import build_digests, opened
from bot.console import Console, console_platform
from bot.content import load_catalogue
from bot.core.addresses import telegram
from bot.core.schedule import QuietHours
from bot.core.services import Services, StaticContent
from bot.settings import Settings
from bot.store import open_store

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 23:00 in Hong Kong


def test_services_cannot_be_changed_once_built() -> None:
    services = Services(content=StaticContent(load_catalogue(CONTENT, now=NOW)), clock=lambda: NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        services.bot_username = "someone_else_bot"  # type: ignore[misc]


async def test_a_front_ends_services_share_the_runtimes_quiet_hours_and_delivery_wake(tmp_path: Path) -> None:
    settings = Settings(content_dir=CONTENT, content_history_dir=tmp_path / "history", watch_content=False,
                        watch_sources=False,
                        database_url=f"sqlite:///{tmp_path}/bot.sqlite3")
    async with opened(settings, lambda: NOW) as runtime:
        front_end = runtime.services_for(bot_username="hk_ai_pulse_bot")
        assert front_end.bot_username == "hk_ai_pulse_bot" and runtime.services.bot_username == ""
        hours = QuietHours(time(22), time(7), "Asia/Hong_Kong")
        front_end.remember_quiet_hours(telegram(42), hours)  # as /quiet does
        assert await runtime.services.quiet_hours(telegram(42)) == hours  # what the delivery engine asks
        assert not runtime.delivery_wake.is_set()
        front_end.wake_delivery()  # as a confirmed /broadcast does
        assert runtime.delivery_wake.is_set()


async def test_in_quiet_hours_only_a_scheduled_digest_makes_a_sound(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/bot.sqlite3")
    try:
        services = Services(content=StaticContent(load_catalogue(CONTENT, now=NOW)), clock=lambda: NOW,
                            subscriptions=store)
        await store.set_quiet_hours(telegram(42), QuietHours(time(22), time(7), "Asia/Hong_Kong"))
        assert await services.hushed(telegram(42)) and not await services.hushed(telegram(42), scheduled_digest=True)
        assert not await services.hushed(telegram(43))  # no quiet hours
    finally:
        await store.close()


async def test_the_runtime_reviews_and_expires_candidates_in_its_one_store(tmp_path: Path) -> None:
    base = Settings(content_dir=CONTENT, content_history_dir=tmp_path / "history", watch_content=False,
                        watch_sources=False,
                    database_url=f"sqlite:///{tmp_path}/bot.sqlite3")
    for settings, expiry in ((base, timedelta(days=14)), (dataclasses.replace(base, candidate_expiry_days=0), None)):
        async with opened(settings, lambda: NOW) as runtime:
            assert runtime.candidates is not None and runtime.candidates is runtime.store
            assert runtime.services.candidates is runtime.candidates  # what /review uses
            console = Console(runtime.services, io.StringIO(), io.StringIO())
            digests = build_digests(runtime, [console_platform(console)], lambda: NOW)
            assert (digests.candidates, digests.candidate_expiry) == (runtime.candidates, expiry)
