"""Replicas on one real PostgreSQL: scheduler leadership, the shared sending pace, content sync between replicas."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from bot.content import ContentLibrary
from bot.content.manager import ContentManager
from bot.content.replicate import ContentSync, SyncedContentAdmin
from bot.store import open_store
from bot.store.cluster import GlobalPacer, SchedulerLeadership
from bot.store.snapshots import PostgresSnapshots

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
VALID = Path(__file__).parent / "fixtures" / "content"
ROBOTICS = (Path(__file__).parent / "fixtures" / "robotics.yaml").read_text()  # a section to upload


@pytest.fixture
async def database(postgres_db_url: str) -> str:
    """A fresh schema with the bot's tables."""
    store = await open_store(postgres_db_url)
    await store.close()
    return postgres_db_url


# --- leadership ---------------------------------------------------------------------------------------------------


@pytest.fixture
def lock_key() -> int:
    """Advisory locks are per database, not per schema: each test takes a key of its own."""
    return random.randrange(1, 2**62)


@pytest.fixture
async def pair(database: str, lock_key: int) -> AsyncIterator[tuple[SchedulerLeadership, SchedulerLeadership]]:
    """Two replicas' leadership over one database."""
    first = SchedulerLeadership(database, key=lock_key, name="first")
    second = SchedulerLeadership(database, key=lock_key, name="second")
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def lock_holder(url: str, key: int) -> int | None:
    """The backend pid holding the advisory lock `key`, if any."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND objsubid = 1",
            (key >> 32, key & 0xFFFFFFFF))
        row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def test_exactly_one_of_two_replicas_leads(pair: tuple[SchedulerLeadership, SchedulerLeadership]) -> None:
    first, second = pair
    for _ in range(3):
        assert [await first.is_leader(), await second.is_leader()] == [True, False]


async def test_leadership_moves_within_one_check_when_the_leaders_session_is_killed(
        pair: tuple[SchedulerLeadership, SchedulerLeadership], database: str, lock_key: int) -> None:
    first, second = pair
    assert await first.is_leader() and not await second.is_leader()
    holder = await lock_holder(database, lock_key)
    assert holder is not None
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as admin:
        # With a timeout it returns once the backend is gone, and its locks with it.
        await admin.execute("SELECT pg_terminate_backend(%s, 5000)", (holder,))

    assert await second.is_leader()  # one check: the dead session's lock is free
    assert not await first.is_leader()  # reconnects, finds the lock taken, and says so
    assert await lock_holder(database, lock_key) not in (None, holder)


async def test_closing_the_leader_hands_the_lead_over(pair: tuple[SchedulerLeadership, SchedulerLeadership]) -> None:
    first, second = pair
    assert await first.is_leader() and not await second.is_leader()
    await first.close()
    assert await second.is_leader()
    assert not await first.is_leader()


async def test_sqlite_is_always_the_leader(tmp_path: Path) -> None:
    leadership = SchedulerLeadership(f"sqlite:///{tmp_path}/bot.sqlite3")
    assert await leadership.is_leader()
    await leadership.close()


# --- the shared pace ----------------------------------------------------------------------------------------------


async def test_two_pacers_never_hand_out_slots_closer_than_the_ceiling_allows(database: str) -> None:
    rate = 500.0
    pacers = [GlobalPacer(database, rate, name="reserve-test") for _ in range(2)]
    try:
        batches = await asyncio.gather(*(pacer.reserve(count) for _ in range(20) for pacer in pacers
                                         for count in (1, 7, 40)))
    finally:
        for pacer in pacers:
            await pacer.close()
    slots = sorted(slot for reserved, _ in batches for slot in reserved)
    assert len(slots) == 2 * 20 * 48
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(slots)]
    assert min(gaps) >= 1 / rate - 1e-6  # timestamps are kept to the microsecond


async def test_two_pacers_together_keep_to_the_ceiling_and_use_most_of_it(database: str) -> None:
    rate, seconds = 200.0, 2.5
    pacers = [GlobalPacer(database, rate, name="acquire-test") for _ in range(2)]
    starts: list[float] = []

    async def send_forever(pacer: GlobalPacer) -> None:
        while True:
            starts.append(await pacer.acquire())

    tasks = [asyncio.create_task(send_forever(pacer)) for pacer in pacers]
    began = time.monotonic()
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - began
    for pacer in pacers:
        await pacer.close()

    starts.sort()
    busiest = max(sum(1 for t in starts[i:] if t - start < 1.0) for i, start in enumerate(starts))
    assert busiest <= rate
    # The pace is 90% of the ceiling. Wall-clock jitter on a busy CI machine costs a few slots (CI once saw 448 of
    # 450), so the floor sits well below 90% but far above what a pacer that split the ceiling between replicas
    # (45%) or lost its place in the shared row would reach. How close to 90% it gets is for bench/, not a test.
    assert len(starts) >= 0.75 * rate * elapsed, (len(starts), elapsed)
    assert all(pacer.reserved > 0 for pacer in pacers)  # both took part


async def test_flood_control_on_one_pacer_holds_the_other(database: str) -> None:
    first = GlobalPacer(database, 100.0, name="pause-test")
    second = GlobalPacer(database, 100.0, name="pause-test")
    try:
        await first.acquire()
        first.pause(1.0)
        await first.close()  # waits until the pause is written
        began = time.monotonic()
        await second.acquire()
        assert time.monotonic() - began >= 0.8
    finally:
        await first.close()
        await second.close()


# --- content sync -------------------------------------------------------------------------------------------------


def replica(tmp_path: Path, database: str, name: str, source: Path = VALID,
            poll_seconds: float = 30.0) -> ContentSync:
    """One replica's content directory, upload history, manager and sync (not started)."""
    content = Path(shutil.copytree(source, tmp_path / name / "content"))
    manager = ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / name / "history", lambda: NOW)
    return ContentSync(PostgresSnapshots(database, name=name), manager, poll_seconds=poll_seconds, check_seconds=0.1)


def texts(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): p.read_text() for p in sorted(directory.rglob("*.yaml"))}


async def test_a_change_published_by_one_replica_is_applied_by_the_other(tmp_path: Path, database: str) -> None:
    one, two = replica(tmp_path, database, "one"), replica(tmp_path, database, "two")
    assert await one.start_up() == "published"
    assert await two.start_up() == "unchanged"  # the same deployment's files
    before = two.manager.library.catalogue.version

    change = await SyncedContentAdmin(one.manager, one).upload("robotics.yaml", ROBOTICS.encode())
    assert change.ok
    assert await one.sync_once() == "published"
    assert await two.sync_once() == "applied"

    assert texts(two.manager.directory) == texts(one.manager.directory)
    assert two.manager.library.catalogue.version == one.manager.library.catalogue.version != before
    assert two.manager.library.catalogue.section("robotics") is not None
    assert await two.sync_once() == "unchanged" and await one.sync_once() == "unchanged"  # nothing bounces back


async def test_a_rollback_on_another_replica_undoes_the_upload_everywhere(tmp_path: Path, database: str) -> None:
    one, two = replica(tmp_path, database, "one"), replica(tmp_path, database, "two")
    await one.start_up()
    await two.start_up()
    original = one.manager.library.catalogue.version
    assert (await SyncedContentAdmin(one.manager, one).upload("robotics.yaml", ROBOTICS.encode())).ok
    await one.sync_once()
    await two.sync_once()

    assert (await SyncedContentAdmin(two.manager, two).rollback()).ok  # the upload history travelled with the files
    assert await two.sync_once() == "published"
    assert await one.sync_once() == "applied"
    assert one.manager.library.catalogue.version == two.manager.library.catalogue.version == original
    assert not (one.manager.directory / "sections" / "robotics.yaml").exists()
    assert not list(one.manager.history_dir.glob("*.json"))


async def test_changes_arrive_by_notify_without_waiting_for_the_poll(tmp_path: Path, database: str) -> None:
    one, two = replica(tmp_path, database, "one"), replica(tmp_path, database, "two")
    await one.start()
    await two.start()
    try:
        await asyncio.wait_for(two.listening.wait(), 5)
        assert (await SyncedContentAdmin(one.manager, one).upload("robotics.yaml", ROBOTICS.encode())).ok
        deadline = time.monotonic() + 5  # the poll is 30 s away: only the notification can bring it sooner
        while two.manager.library.catalogue.section("robotics") is None:
            assert time.monotonic() < deadline, "the change did not arrive"
            await asyncio.sleep(0.05)
    finally:
        await one.close()
        await two.close()


async def test_a_broken_snapshot_is_refused_and_nothing_is_written(tmp_path: Path, database: str) -> None:
    one = replica(tmp_path, database, "one")
    await one.start_up()
    before_files, before = texts(one.manager.directory), one.manager.library.catalogue.version
    files = {**before_files, "sections/robotics.yaml": "id: robotics\ntitle: [unclosed\n"}
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute("UPDATE content_snapshot SET version = 'broken', files = %s",
                           (json.dumps({"content": files, "history": {}}),))

    assert await one.sync_once() == "refused"
    assert await one.sync_once() == "unchanged"  # not retried round after round
    assert texts(one.manager.directory) == before_files
    assert one.manager.library.catalogue.version == before


async def test_a_snapshot_with_unsafe_paths_is_refused(tmp_path: Path, database: str) -> None:
    one = replica(tmp_path, database, "one")
    await one.start_up()
    files = {**texts(one.manager.directory), "../escape.yaml": "x: 1\n"}
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute("UPDATE content_snapshot SET version = 'unsafe', files = %s",
                           (json.dumps({"content": files, "history": {}}),))
    assert await one.sync_once() == "refused"
    assert not (tmp_path / "one" / "escape.yaml").exists()


async def test_a_restarted_replica_of_the_same_deployment_takes_the_live_edits(tmp_path: Path, database: str) -> None:
    one = replica(tmp_path, database, "one")
    await one.start_up()
    assert (await SyncedContentAdmin(one.manager, one).upload("robotics.yaml", ROBOTICS.encode())).ok
    await one.sync_once()

    restarted = replica(tmp_path, database, "restarted")  # the deployment's files, as shipped
    assert await restarted.start_up() == "applied"
    assert restarted.manager.library.catalogue.version == one.manager.library.catalogue.version
    assert restarted.base_version == one.base_version


async def test_a_new_deployment_publishes_its_own_files(tmp_path: Path, database: str) -> None:
    one = replica(tmp_path, database, "one")
    await one.start_up()
    assert (await SyncedContentAdmin(one.manager, one).upload("robotics.yaml", ROBOTICS.encode())).ok
    await one.sync_once()

    shipped = Path(shutil.copytree(VALID, tmp_path / "release"))
    (shipped / "updates.yaml").write_text((shipped / "updates.yaml").read_text().replace("\n", "\n\n", 1))
    new = replica(tmp_path, database, "new", source=shipped)
    own = new.manager.library.catalogue.version
    assert await new.start_up() == "published"
    assert new.manager.library.catalogue.section("robotics") is None
    snapshot = await new.fetch()
    assert snapshot is not None and snapshot.version == snapshot.base_version == own
    assert await one.sync_once() == "applied"  # the old replica follows the new deployment
    assert one.manager.library.catalogue.version == own


async def test_an_unreachable_snapshot_store_raises_a_connection_error() -> None:
    snapshots = PostgresSnapshots("postgresql://nobody@127.0.0.1:1/none", name="cut-off")
    with pytest.raises(ConnectionError):  # SnapshotsUnavailable: replicate.py knows no psycopg error
        await snapshots.head()
