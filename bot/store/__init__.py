"""Persistent subscriptions and deliveries: `open_store(url)` picks SQLite or PostgreSQL, migrates, returns a store."""

from __future__ import annotations

from pathlib import Path

from bot.store.drivers import SQLITE, Driver, PostgresDriver, SqliteDriver, StoreError, is_postgres, redact
from bot.store.migrations import apply_migrations
from bot.store.sql import SqlStore

__all__ = ["SqlStore", "StoreError", "is_postgres", "open_store"]

_USAGE = "use sqlite:///relative/path.sqlite3, sqlite:////absolute/path.sqlite3 or postgresql://user:pass@host/db"


def _driver_for(database_url: str) -> Driver:
    scheme, sep, rest = database_url.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        # sqlite:///data/bot.sqlite3 is relative; sqlite:////srv/bot.sqlite3 is absolute (as in SQLAlchemy).
        path = rest[1:] if rest.startswith("/") else ""
        if not path or path == ":memory:":
            raise StoreError(f"SQLite needs a file path in {database_url!r}: {_USAGE}")
        return SqliteDriver(Path(path))
    if sep and is_postgres(database_url):
        return PostgresDriver(database_url)
    raise StoreError(f"unsupported database URL {redact(database_url)!r}: {_USAGE}")


async def open_store(database_url: str, *, single_process: bool | None = None) -> SqlStore:
    """Open the database at `database_url`, apply pending migrations, and return the store.

    `single_process` says no other process sends from this database (default: yes for SQLite, no for
    PostgreSQL); then leases left by a crashed predecessor are released at once instead of expiring.
    """
    driver = _driver_for(database_url)
    await driver.open()
    try:
        await apply_migrations(driver)
        store = SqlStore(driver)
        if single_process if single_process is not None else driver.dialect is SQLITE:
            await store.release_claims()
    except BaseException:
        await driver.close()
        raise
    return store
