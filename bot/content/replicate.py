"""Content changes reach every replica: a published snapshot of the content files, announced to all.

After an upload, rollback or reload changes the content in force on one replica, it publishes the YAML files
(and its upload history, so /rollback works on any replica) with the catalogue version and its *base* version
(the version of the files the deployment started from). Every replica listens, and polls as a fallback; when
the published version differs from its own it validates the files once, writes them atomically into its content
directory and installs what it validated. What it received it does not publish again.

At start-up: a snapshot whose base (or version) equals the files on disk belongs to this deployment, so it is
applied (admins' live edits survive a restart); any other snapshot is replaced by the files on disk (a new
deployment's files win). Where snapshots are kept is a port (PostgreSQL: bot/store/snapshots.py); on SQLite there
is one process and nothing to share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from bot.content.diff import ContentChange
from bot.content.files import safe_relative
from bot.content.manager import ContentManager, OffLoopContentAdmin
from bot.logs import brief_error
from bot.store.snapshots import ContentSnapshot

log = logging.getLogger(__name__)

POLL_SECONDS = 10.0
CHECK_SECONDS = 1.0


class SnapshotStore(Protocol):
    """Where the replicas' shared content snapshot is kept; failures raise OSError (ConnectionError)."""

    name: str  # this replica, as `published_by`

    async def head(self) -> tuple[str, str] | None:
        """(version, base version) of the published snapshot, if any."""
        ...

    async def fetch(self) -> ContentSnapshot | None:
        """The published snapshot, if any."""
        ...

    async def publish(self, snapshot: ContentSnapshot) -> None:
        """Replace the published snapshot and tell every listening replica."""
        ...

    def notifications(self, listening: Callable[[], None]) -> AsyncIterator[None]:
        """Calls `listening` once listening, then yields once per published snapshot."""
        ...


class ContentSync:
    """Publishes this replica's content changes and applies the other replicas'."""

    def __init__(self, store: SnapshotStore, manager: ContentManager, *, poll_seconds: float = POLL_SECONDS,
                 check_seconds: float = CHECK_SECONDS) -> None:
        self.store = store
        self.manager = manager
        self._poll_seconds = poll_seconds
        self._check_seconds = check_seconds
        self.base_version = manager.library.catalogue.version
        self._synced = self.base_version  # the version last published or applied here
        self._refused: str | None = None  # a published version that failed validation here: not retried
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()

    @property
    def name(self) -> str:
        """This replica's name, as the snapshots it publishes carry it."""
        return self.store.name

    # ---- lifecycle

    async def start(self) -> None:
        """Apply the start-up rule, then listen for (and poll for) other replicas' changes."""
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
        head = await self.store.head()
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
        head = await self.store.head()
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

    async def fetch(self) -> ContentSnapshot | None:
        """The published snapshot, if any."""
        return await self.store.fetch()

    async def publish(self) -> ContentSnapshot:
        """Publish the content in force here (with the upload history) and tell every replica."""
        files, history = self.manager.published()
        snapshot = ContentSnapshot(version=self.manager.library.catalogue.version, base_version=self.base_version,
                                   files=files, history=history, published_by=self.name)
        await self.store.publish(snapshot)
        self._synced = snapshot.version
        log.info("published content version %s (base %s) to the other replicas", snapshot.version,
                 snapshot.base_version)
        return snapshot

    # ---- applying

    def apply(self, snapshot: ContentSnapshot) -> ContentChange:
        """Validate the snapshot once, write it over the content directory and install it; invalid content never is."""
        bad = [path for path in [*snapshot.files, *snapshot.history] if not safe_relative(path)]
        if bad:
            return self._refuse(snapshot, f"unsafe file names: {', '.join(sorted(bad)[:5])}")
        change = self.manager.replace_all(snapshot.files, snapshot.history)
        if not change.ok:
            return self._refuse(snapshot, "\n".join(str(error) for error in change.errors), change)
        self._synced = change.version
        if change.version != snapshot.version:
            # Same files must give the same version; if not, do not chase this snapshot round after round.
            self._refused = snapshot.version
            log.warning("applied content from %s but its version is %s, not %s", snapshot.published_by,
                        change.version, snapshot.version)
        log.info("applied content version %s from %s: %s", change.version, snapshot.published_by, change.describe())
        return change

    def _refuse(self, snapshot: ContentSnapshot, why: str, change: ContentChange | None = None) -> ContentChange:
        self._refused = snapshot.version
        log.error("refused content version %s from %s; still serving %s: %s", snapshot.version,
                  snapshot.published_by, self.manager.library.catalogue.version, why)
        return change or ContentChange(ok=False, version=self.manager.library.catalogue.version)

    # ---- background

    async def _listen(self) -> None:
        while True:
            try:
                async for _ in self.store.notifications(self._listening):
                    self._wake.set()
            except OSError as exc:
                self.listening.clear()
                log.warning("content sync: listening failed (%s); polling until it reconnects", brief_error(exc))
                await asyncio.sleep(self._check_seconds)

    def _listening(self) -> None:
        self.listening.set()
        self._wake.set()  # something may have been published while we were not listening

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
            except (OSError, ValueError) as exc:
                log.warning("content sync failed (%s); retrying", brief_error(exc))
            except Exception:
                log.exception("content sync failed unexpectedly")


class SyncedContentAdmin(OffLoopContentAdmin):
    """The admin commands' content manager on replicas: changes made here are published at once."""

    def __init__(self, manager: ContentManager, sync: ContentSync) -> None:
        super().__init__(manager, on_applied=sync.nudge)
        self.sync = sync
