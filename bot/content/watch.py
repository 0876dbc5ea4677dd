"""Reload when files in the content folder change, once an editor or a copy has finished writing them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import watchfiles

from bot.content.diff import ContentChange
from bot.content.files import FileStamps, file_stamps, is_content_name

log = logging.getLogger(__name__)

SETTLE_LIMIT_SECONDS = 30.0

OnChange = Callable[[ContentChange], Awaitable[None]]


class Reloading(Protocol):
    """What the watcher needs of the content manager."""

    @property
    def directory(self) -> Path:
        """The content folder."""
        ...

    @property
    def version(self) -> str:
        """The version of the content in force."""
        ...

    @property
    def failing(self) -> bool:
        """Whether the latest reload failed (the content on disk is broken)."""
        ...

    def reload(self) -> ContentChange:
        """Read, validate and install the folder; blocking."""
        ...


async def watch_content(manager: Reloading, stop: asyncio.Event, on_change: OnChange, *, debounce_ms: int = 800,
                        settle_seconds: float = 0.3) -> None:
    """Reload when content files change; report real changes and failures to on_change."""
    directory = manager.directory
    reloaded = file_stamps(directory)
    async for _changes in watchfiles.awatch(directory, watch_filter=_is_content_file, debounce=debounce_ms,
                                            stop_event=stop, recursive=True):
        while not stop.is_set():
            stamps = await _settled(directory, settle_seconds, stop)
            if stamps is None:
                return
            if stamps != reloaded:
                reloaded = stamps
                await _reload_and_notify(manager, on_change)
            # A write during the reload may not reach the next batch; look once more before waiting.
            if file_stamps(directory) == stamps:
                break


async def _reload_and_notify(manager: Reloading, on_change: OnChange) -> None:
    before, failing = manager.version, manager.failing
    # In a worker thread: a large or hostile file must not hold up the users' commands while it is read.
    change = await asyncio.to_thread(manager.reload)
    # Our own uploads are already in force and a no-op save changes nothing: stay quiet for those,
    # but do say so when content that failed before is good again.
    if change.ok and change.version == before and not failing:
        return
    if change.ok:
        log.info("content reloaded: %s", change.describe())
    else:
        log.warning("content reload rejected: %s", change.describe())
    try:
        await on_change(change)
    except Exception:
        log.exception("content change callback failed")


def _is_content_file(_change: watchfiles.Change, path: str) -> bool:
    name = os.path.basename(path)
    return is_content_name(name) and not name.startswith(".")  # a hidden file (an editor's) is no reason to look


async def _settled(directory: Path, seconds: float, stop: asyncio.Event) -> FileStamps | None:
    """Wait until no content file changed for `seconds` (an editor or a copy has finished); None if stopped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(SETTLE_LIMIT_SECONDS, seconds)
    stamps = file_stamps(directory)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        if stop.is_set():
            return None
        latest = file_stamps(directory)
        # A file rewritten for ever must not stall reloads: after the limit, take what is there.
        if latest == stamps or loop.time() >= deadline:
            return latest
        stamps = latest
