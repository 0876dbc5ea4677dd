"""Several replicas on one PostgreSQL: one scheduler leader (an advisory lock) and one shared sending pace.

Nothing here is a cluster of its own making: PostgreSQL's session advisory locks decide who schedules (a dead
leader's session ends and its lock with it), and one row of `send_pacer` hands out send slots to every replica,
so the Telegram ceiling is counted once for the bot, not once per process. On SQLite (one process) the leader is
always this process and the local pacing of `RateLimiter` is the whole story.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg

from bot.core.ports import MonotonicClock
from bot.delivery import pacing_interval
from bot.logs import brief_error
from bot.store.drivers import is_postgres

log = logging.getLogger(__name__)

# Any fixed 64-bit number works; it only has to be the same in every replica (and differ from the migration lock).
SCHEDULER_LOCK_KEY = 0x686B_6169_7363_6864  # "hkaischd"
# Pacing below the ceiling leaves room for network jitter between our start and Telegram's count, and for the
# error in each replica's estimate of the database's clock (at 0.95, three replicas on two busy cores reached
# exactly 400 of a 400/s ceiling in one 1 s window).
GLOBAL_PACING = 0.9
# Slots reserved per trip to the database: a replica left with nothing to send wastes at most this much.
BATCH_SECONDS = 0.15
# A slot missed by more than this (a late wake-up) is given up rather than sent in a burst with the next ones.
LATE_TOLERANCE = 0.01
CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT = 5.0

Sleep = Callable[[float], Awaitable[None]]


def process_id() -> str:
    """This process's name in logs and in the database: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def connect(database_url: str, purpose: str) -> psycopg.AsyncConnection[Any]:
    """A dedicated autocommit connection (not from the pool) that notices a dead server or peer within seconds."""
    return await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=f"hkaipulse {purpose}",
        keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
    )


async def _close_quietly(conn: psycopg.AsyncConnection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error, OSError):
            await conn.close()


# ---------------------------------------------------------------------------------------------------- leadership


class SchedulerLeadership:
    """Whether this replica schedules digests: it holds `pg_try_advisory_lock(key)` on a connection of its own.

    When the holder dies, PostgreSQL ends its session and frees the lock; the next replica to check takes it.
    On SQLite there is one process, always the leader.
    """

    def __init__(self, database_url: str, *, key: int = SCHEDULER_LOCK_KEY, name: str | None = None,
                 timeout: float = STATEMENT_TIMEOUT) -> None:
        self._url = database_url
        self._shared = is_postgres(database_url)
        self._key = key
        self._name = name or process_id()
        self._timeout = timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self.leading = not self._shared

    async def is_leader(self) -> bool:
        """Check (and if free, take) the lock; reconnect once when the connection broke. Never raises."""
        if not self._shared:
            return True
        async with self._lock:
            was = self.leading
            try:
                self.leading = await asyncio.wait_for(self._check(), self._timeout)
            except (psycopg.Error, OSError, TimeoutError) as first:
                # The session is gone, and the lock with it: try again on a fresh connection.
                await self._drop()
                try:
                    self.leading = await asyncio.wait_for(self._check(), self._timeout)
                except (psycopg.Error, OSError, TimeoutError) as second:
                    await self._drop()
                    self.leading = False
                    log.warning("scheduler leadership check failed (%s; then %s)", brief_error(first),
                                brief_error(second))
            if self.leading and not was:
                log.info("became scheduler leader (%s)", self._name)
            elif was and not self.leading:
                log.warning("lost scheduler leadership (%s)", self._name)
            return self.leading

    async def _check(self) -> bool:
        if self._conn is None or self._conn.closed:
            self.leading = False
            self._conn = await connect(self._url, f"scheduler {self._name}")
        if self.leading:
            # The lock lives as long as the session: a live connection means it is still ours.
            await self._conn.execute("SELECT 1")
            return True
        cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.leading = False
        await _close_quietly(conn)

    async def close(self) -> None:
        """Give the lock up (by ending the session), so another replica takes over at its next check."""
        async with self._lock:
            if self.leading and self._conn is not None:
                log.info("giving up scheduler leadership (%s)", self._name)
                # Unlocked before closing: the server ends a closed session a moment later, not at once.
                with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                    await asyncio.wait_for(self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,)),
                                           self._timeout)
            await self._drop()
            self.leading = not self._shared


# ---------------------------------------------------------------------------------------------------- pacing


class GlobalPacer:
    """Send slots shared by every replica: reserved in small batches from one PostgreSQL row, in the DB's clock.

    `UPDATE send_pacer SET next_at = GREATEST(next_at, clock_timestamp()) + k * interval` hands this replica k
    evenly spaced slots after everyone else's; the replica maps them onto its own monotonic clock and starts one
    send per slot. Slots are spaced 1 / (ceiling × 0.9) apart, so all replicas together stay under the ceiling.
    """

    def __init__(self, database_url: str, messages_per_second: float, *, name: str = "telegram",
                 pacing: float = GLOBAL_PACING, batch_seconds: float = BATCH_SECONDS,
                 tolerance: float = LATE_TOLERANCE, monotonic: MonotonicClock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, timeout: float = STATEMENT_TIMEOUT) -> None:
        if messages_per_second <= 0:
            raise ValueError("a shared pace needs a positive ceiling")
        self._url = database_url
        self.name = name
        self.interval = pacing_interval(messages_per_second, pacing)
        self.batch = max(1, int(batch_seconds / self.interval))
        self._tolerance = tolerance
        self._monotonic = monotonic
        self._sleep = sleep
        self._timeout = timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._slots: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._db_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.reserved = 0
        self.given_up = 0

    async def acquire(self) -> float:
        """Wait for this replica's next slot; returns the clock time the send may start (now)."""
        async with self._lock:
            self._drop_stale(self._monotonic())
            if not self._slots:
                await self._refill()
            slot = self._slots.popleft()
            if (wait := slot - self._monotonic()) > 0:
                await self._sleep(wait)
            now = self._monotonic()
            # After a late wake-up send this one only: the other missed slots are given up, never sent in a burst.
            self._drop_stale(now)
            return now

    def _drop_stale(self, now: float) -> None:
        while self._slots and self._slots[0] < now - self._tolerance:
            self._slots.popleft()
            self.given_up += 1

    async def _refill(self) -> None:
        # The query leaves at once, so the database read its clock a network hop after `sent`; the answer may come
        # back much later on a busy event loop, so the time it arrived would map the slots late, onto others'.
        sent = self._monotonic()
        slots, db_now = await self.reserve()
        self._slots.extend(sent + (slot - db_now).total_seconds() for slot in slots)

    async def reserve(self, count: int | None = None) -> tuple[list[datetime], datetime]:
        """Reserve `count` (default: one batch) slots after every slot handed out so far; (slots, DB's now)."""
        count = count or self.batch
        span = count * self.interval
        row = await self._run(
            "WITH moved AS (UPDATE send_pacer SET next_at = GREATEST(next_at, clock_timestamp())"
            " + make_interval(secs => %s) WHERE name = %s RETURNING next_at)"
            " SELECT next_at - make_interval(secs => %s), clock_timestamp() FROM moved",
            (span, self.name, span),
        )
        if row is None:
            raise psycopg.OperationalError(f"send_pacer row {self.name!r} is missing")
        first, db_now = row
        self.reserved += count
        return [first + timedelta(seconds=i * self.interval) for i in range(count)], db_now

    def pause(self, seconds: float) -> None:
        """Flood control: no replica gets a new slot for `seconds` from now (already reserved ones still run)."""
        self._slots.clear()
        task = asyncio.get_running_loop().create_task(self._pause(seconds))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _pause(self, seconds: float) -> None:
        try:
            await self._run("UPDATE send_pacer SET next_at = GREATEST(next_at, clock_timestamp()"
                            " + make_interval(secs => %s)) WHERE name = %s RETURNING next_at", (seconds, self.name))
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("could not share a flood-control pause with the other replicas: %s", brief_error(exc))

    async def _run(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """One statement on the pacer's connection, reconnecting once if the connection broke."""
        async with self._db_lock:
            try:
                return await asyncio.wait_for(self._execute(sql, params), self._timeout)
            except (psycopg.Error, OSError, TimeoutError):
                await self._drop()
                return await asyncio.wait_for(self._execute(sql, params), self._timeout)

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(self._url, f"pacer {process_id()}")
            await self._conn.execute("INSERT INTO send_pacer (name, next_at) VALUES (%s, clock_timestamp())"
                                     " ON CONFLICT (name) DO NOTHING", (self.name,))
        cursor = await self._conn.execute(sql, params)
        return await cursor.fetchone()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        await _close_quietly(conn)

    async def close(self) -> None:
        """Finish a pending pause and close the connection."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        async with self._db_lock:
            await self._drop()
