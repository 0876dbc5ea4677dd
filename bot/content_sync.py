"""Content changes reach every replica: a snapshot of the content files in PostgreSQL, announced with NOTIFY.

After an upload, rollback or reload changes the content in force on one replica, it publishes the YAML files
(and its upload history, so /rollback works on any replica) with the catalogue version and its *base* version
(the version of the files the deployment started from). Every replica LISTENs, and polls as a fallback; when
the published version differs from its own it validates the files, writes them atomically into its content
directory and reloads. What it received it does not publish again.

At start-up: a snapshot whose base (or version) equals the files on disk belongs to this deployment, so it is
applied (admins' live edits survive a restart); any other snapshot is replaced by the files on disk (a new
deployment's files win). On SQLite there is one process and nothing to share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import psycopg

from bot.cluster import brief_error, connect, is_postgres, process_id
from bot.content import InvalidContent, Unreadable, content_files, read_content, validate_texts
from bot.content_admin import (
    CONTENT_SUFFIXES,
    HISTORY_NAME,
    ContentChange,
    ContentManager,
    OffLoopContentAdmin,
    write_atomically,
)

log = logging.getLogger(__name__)

CHANNEL = "hkaipulse_content"
SNAPSHOT_NAME = "content"
POLL_SECONDS = 10.0
CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Snapshot:
    """Published content: {relative path: YAML text}, the upload history, and the versions that identify it."""

    version: str
    base_version: str
    files: dict[str, str]
    history: dict[str, str]
    published_by: str = ""


class ContentSync:
    """Publishes this replica's content changes and applies the other replicas' (PostgreSQL only)."""

    def __init__(self, database_url: str, manager: ContentManager, clock: Callable[[], datetime], *,
                 poll_seconds: float = POLL_SECONDS, check_seconds: float = CHECK_SECONDS,
                 name: str | None = None) -> None:
        self._url = database_url
        self.manager = manager
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._check_seconds = check_seconds
        self.name = name or process_id()
        self.enabled = is_postgres(database_url)
        self.base_version = manager.library.catalogue.version
        self._synced = self.base_version  # the version last published or applied here
        self._refused: str | None = None  # a published version that failed validation here: not retried
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()

    # ---- lifecycle

    async def start(self) -> None:
        """Apply the start-up rule, then listen for (and poll for) other replicas' changes."""
        if not self.enabled:
            return
        await self.start_up()
        self._tasks = [asyncio.create_task(self._listen(), name="content-sync-listen"),
                       asyncio.create_task(self._run(), name="content-sync")]

    async def close(self) -> None:
        """Stop listening and polling."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def nudge(self) -> None:
        """Look now, not at the next check (after a change made through this replica)."""
        self._wake.set()

    async def start_up(self) -> str:
        """Take this deployment's snapshot, or publish the files on disk; returns what it did."""
        on_disk = self.manager.library.catalogue.version
        head = await self._head()
        if head is not None and on_disk in head:
            version, base = head
            self.base_version = base
            self._synced = on_disk
            if version == on_disk:
                return "unchanged"
            return await self._take(version)
        self.base_version = on_disk
        await self.publish()
        return "published"

    # ---- one round

    async def sync_once(self, *, look: bool = True) -> str:
        """Publish a local change, or (when `look`) apply a newer snapshot; returns what it did."""
        local = self.manager.library.catalogue.version
        if local != self._synced:
            await self.publish()
            return "published"
        if not look:
            return "unchanged"
        head = await self._head()
        if head is None:
            await self.publish()
            return "published"
        version, _ = head
        if version in (local, self._refused):
            return "unchanged"
        return await self._take(version)

    async def _take(self, version: str) -> str:
        snapshot = await self.fetch()
        if snapshot is None or snapshot.version != version:
            return "unchanged"  # replaced meanwhile: the next round sees the newer one
        # In a worker thread, like admins' changes: validating a large snapshot must not hold up users' commands.
        change = await asyncio.to_thread(self.apply, snapshot)
        return "applied" if change.ok else "refused"

    # ---- the database

    async def _head(self) -> tuple[str, str] | None:
        async with await connect(self._url, f"content {self.name}") as conn:
            cursor = await conn.execute("SELECT version, base_version FROM content_snapshot WHERE name = %s",
                                        (SNAPSHOT_NAME,))
            row = await cursor.fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    async def fetch(self) -> Snapshot | None:
        """The published snapshot, if any."""
        async with await connect(self._url, f"content {self.name}") as conn:
            cursor = await conn.execute(
                "SELECT version, base_version, files, published_by FROM content_snapshot WHERE name = %s",
                (SNAPSHOT_NAME,))
            row = await cursor.fetchone()
        if row is None:
            return None
        data = json.loads(row[2])
        return Snapshot(version=str(row[0]), base_version=str(row[1]), files=dict(data.get("content", {})),
                        history=dict(data.get("history", {})), published_by=str(row[3]))

    async def publish(self) -> Snapshot:
        """Publish the content in force here (with the upload history) and tell every replica."""
        directory = self.manager.directory
        snapshot = Snapshot(version=self.manager.library.catalogue.version, base_version=self.base_version,
                            files=_read_files(directory), history=_read_history(self.manager.history_dir),
                            published_by=self.name)
        files = json.dumps({"content": snapshot.files, "history": snapshot.history}, ensure_ascii=False)
        async with await connect(self._url, f"content {self.name}") as conn:
            await conn.execute(
                "INSERT INTO content_snapshot (name, version, base_version, files, published_by, published_at)"
                " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
                " base_version = excluded.base_version, files = excluded.files,"
                " published_by = excluded.published_by, published_at = excluded.published_at",
                (SNAPSHOT_NAME, snapshot.version, snapshot.base_version, files, self.name))
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, snapshot.version))
        self._synced = snapshot.version
        log.info("published content version %s (base %s) to the other replicas", snapshot.version,
                 snapshot.base_version)
        return snapshot

    # ---- applying

    def apply(self, snapshot: Snapshot) -> ContentChange:
        """Validate the snapshot, write it over the content directory, reload; invalid content is never installed."""
        with self.manager.changing:  # not in the middle of an admin's upload, rollback or reload
            return self._apply(snapshot)

    def _apply(self, snapshot: Snapshot) -> ContentChange:
        directory = self.manager.directory
        bad = [path for path in [*snapshot.files, *snapshot.history] if not _safe(path)]
        try:
            if bad:
                raise ValueError(f"unsafe file names: {', '.join(sorted(bad)[:5])}")
            validate_texts(snapshot.files, base=directory, now=self._clock(), shown="")
        except (InvalidContent, ValueError) as exc:
            return self._refuse(snapshot, str(exc))
        # What to put back if this fails; an unreadable local file is not worth keeping over a valid snapshot.
        before = {relative: text for relative, text in read_content(directory).items() if isinstance(text, str)}
        try:
            _mirror(directory, snapshot.files, _content_files(directory))
        except OSError as exc:
            _restore(directory, before)
            return self._refuse(snapshot, f"could not write the files: {exc}")
        change = self.manager.reload()
        if not change.ok:
            _restore(directory, before)
            self.manager.reload()
            return self._refuse(snapshot, change.describe())
        try:
            _mirror(self.manager.history_dir, snapshot.history, _history_files(self.manager.history_dir))
        except OSError as exc:
            log.warning("content applied, but the upload history could not be copied: %s", exc)
        self._synced = change.version
        if change.version != snapshot.version:
            # Same files must give the same version; if not, do not chase this snapshot round after round.
            self._refused = snapshot.version
            log.warning("applied content from %s but its version is %s, not %s", snapshot.published_by,
                        change.version, snapshot.version)
        log.info("applied content version %s from %s: %s", change.version, snapshot.published_by, change.describe())
        return change

    def _refuse(self, snapshot: Snapshot, why: str) -> ContentChange:
        self._refused = snapshot.version
        log.error("refused content version %s from %s; still serving %s: %s", snapshot.version,
                  snapshot.published_by, self.manager.library.catalogue.version, why)
        return ContentChange(ok=False, version=self.manager.library.catalogue.version)

    # ---- background

    async def _listen(self) -> None:
        while True:
            try:
                async with await connect(self._url, f"content-listen {self.name}") as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._wake.set()  # something may have been published while we were not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError) as exc:
                self.listening.clear()
                log.warning("content sync: listening failed (%s); polling until it reconnects", brief_error(exc))
                await asyncio.sleep(self._check_seconds)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_look = loop.time() + self._poll_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._check_seconds)
            woken = self._wake.is_set()
            self._wake.clear()
            look = woken or loop.time() >= next_look
            if look:
                next_look = loop.time() + self._poll_seconds
            try:
                await self.sync_once(look=look)
            except (psycopg.Error, OSError, ValueError) as exc:
                log.warning("content sync failed (%s); retrying", brief_error(exc))
            except Exception:
                log.exception("content sync failed unexpectedly")


class SyncedContentAdmin(OffLoopContentAdmin):
    """The admin commands' content manager on replicas: changes made here are published at once."""

    def __init__(self, manager: ContentManager, sync: ContentSync) -> None:
        super().__init__(manager, on_applied=sync.nudge)
        self.sync = sync


async def start_content_sync(database_url: str, manager: ContentManager,
                             clock: Callable[[], datetime]) -> ContentSync | None:
    """Start sharing content changes between replicas; None on SQLite (one process)."""
    if not is_postgres(database_url):
        return None
    sync = ContentSync(database_url, manager, clock)
    await sync.start()
    return sync


# --- files --------------------------------------------------------------------------------------------------


def _content_files(directory: Path) -> list[Path]:
    return content_files(directory) if directory.is_dir() else []


def _history_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if HISTORY_NAME.match(p.name) and p.is_file())


def _read_files(directory: Path) -> dict[str, str]:
    """The content files as text; an unreadable one (not UTF-8, too large) is a ValueError naming it."""
    texts = read_content(directory) if directory.is_dir() else {}
    for relative, text in texts.items():
        if isinstance(text, Unreadable):
            raise ValueError(f"{relative}:1: (file): {text.message}")
    return {relative: text for relative, text in texts.items() if isinstance(text, str)}


def _read_history(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in _history_files(directory)}


def _safe(relative: str) -> bool:
    path = PurePosixPath(relative)
    return (not path.is_absolute() and ".." not in path.parts and "\\" not in relative
            and (path.suffix in CONTENT_SUFFIXES or HISTORY_NAME.match(relative) is not None))


def _mirror(directory: Path, texts: dict[str, str], present: list[Path]) -> None:
    """Make `directory` hold exactly `texts` among the files of its kind: write changed ones, delete the others."""
    for relative, text in texts.items():
        path = directory / relative
        if _read(path) != text:
            write_atomically(path, text)
    wanted = {directory / relative for relative in texts}
    for path in present:
        if path not in wanted:
            path.unlink(missing_ok=True)


def _restore(directory: Path, texts: dict[str, str]) -> None:
    try:
        _mirror(directory, texts, _content_files(directory))
    except OSError:
        log.exception("could not restore the content directory %s", directory)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
