"""Published content in PostgreSQL: one row of `content_snapshot` (migration m004) and a NOTIFY when it changes.

The policy (who publishes, who applies, what wins at start-up) is bot/content/replicate.py's; this module only
stores, fetches and announces. Every database failure surfaces as SnapshotsUnavailable (a ConnectionError).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from bot.logs import brief_error
from bot.store.cluster import connect, process_id
from bot.store.drivers import is_postgres

CHANNEL = "hkaipulse_content"
SNAPSHOT_NAME = "content"


@dataclass(frozen=True)
class ContentSnapshot:
    """Published content: {relative path: YAML text}, the upload history, and the versions that identify it."""

    version: str
    base_version: str
    files: dict[str, str]
    history: dict[str, str]
    published_by: str = ""


class SnapshotsUnavailable(ConnectionError):
    """The database could not be reached or refused a snapshot statement."""


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise SnapshotsUnavailable(brief_error(exc)) from exc


class PostgresSnapshots:
    """The content snapshot of the replicas sharing one PostgreSQL database, on connections of its own."""

    def __init__(self, database_url: str, *, name: str | None = None) -> None:
        self._url = database_url
        self.name = name or process_id()

    async def _connect(self, purpose: str) -> psycopg.AsyncConnection[Any]:
        return await connect(self._url, f"{purpose} {self.name}")

    async def head(self) -> tuple[str, str] | None:
        """(version, base version) of the published snapshot, if any."""
        with _translated():
            async with await self._connect("content") as conn:
                cursor = await conn.execute("SELECT version, base_version FROM content_snapshot WHERE name = %s",
                                            (SNAPSHOT_NAME,))
                row = await cursor.fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    async def fetch(self) -> ContentSnapshot | None:
        """The published snapshot, if any."""
        with _translated():
            async with await self._connect("content") as conn:
                cursor = await conn.execute(
                    "SELECT version, base_version, files, published_by FROM content_snapshot WHERE name = %s",
                    (SNAPSHOT_NAME,))
                row = await cursor.fetchone()
        if row is None:
            return None
        data = json.loads(row[2])
        return ContentSnapshot(version=str(row[0]), base_version=str(row[1]), files=dict(data.get("content", {})),
                               history=dict(data.get("history", {})), published_by=str(row[3]))

    async def publish(self, snapshot: ContentSnapshot) -> None:
        """Replace the published snapshot and tell every listening replica."""
        files = json.dumps({"content": snapshot.files, "history": snapshot.history}, ensure_ascii=False)
        with _translated():
            async with await self._connect("content") as conn:
                await conn.execute(
                    "INSERT INTO content_snapshot (name, version, base_version, files, published_by, published_at)"
                    " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
                    " base_version = excluded.base_version, files = excluded.files,"
                    " published_by = excluded.published_by, published_at = excluded.published_at",
                    (SNAPSHOT_NAME, snapshot.version, snapshot.base_version, files, snapshot.published_by))
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, snapshot.version))

    async def notifications(self, listening: Callable[[], None]) -> AsyncIterator[None]:
        """Listen for published snapshots: calls `listening` once listening, then yields once per notification."""
        with _translated():
            async with await self._connect("content-listen") as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                listening()
                async for _ in conn.notifies():
                    yield


def snapshot_store(database_url: str) -> PostgresSnapshots | None:
    """Where replicas share content: PostgreSQL; None on SQLite (one process, nothing to share)."""
    return PostgresSnapshots(database_url) if is_postgres(database_url) else None
