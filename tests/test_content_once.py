"""A content change is validated once, in memory, and the validated catalogue installed without reading it back."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.content import ContentLibrary
from bot.content.manager import ContentManager
from bot.content.replicate import ContentSync
from bot.core.catalogue import Catalogue
from bot.store.snapshots import ContentSnapshot

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"
VALID = FIXTURES / "content"
ROBOTICS = (FIXTURES / "robotics.yaml").read_text()  # a section to upload


class WatchedLibrary(ContentLibrary):
    """A library that records every read of its folder (`reload`) and every install of a catalogue (`swap`)."""

    reloads: int
    swapped: list[Catalogue]

    def reload(self, *, now: datetime, shown: str | None = None) -> Catalogue:
        self.reloads += 1
        return super().reload(now=now, shown=shown)

    def swap(self, catalogue: Catalogue) -> Catalogue:
        self.swapped.append(catalogue)
        return super().swap(catalogue)


def watched(tmp_path: Path, name: str) -> ContentManager:
    """A manager over a private copy of the fixture content, whose library records reads and installs."""
    content = Path(shutil.copytree(VALID, tmp_path / name / "content"))
    library = WatchedLibrary.open(content, now=NOW)
    assert isinstance(library, WatchedLibrary)
    library.reloads, library.swapped = 0, []
    return ContentManager(library, tmp_path / name / "history", lambda: NOW)


def counts(manager: ContentManager) -> tuple[int, int]:
    library = manager.library
    assert isinstance(library, WatchedLibrary)
    return library.reloads, len(library.swapped)


class MemorySnapshots:
    """The snapshot-store port in memory: what replicas in one process would share through PostgreSQL."""

    def __init__(self, shared: dict[str, ContentSnapshot], name: str) -> None:
        self.shared = shared
        self.name = name

    async def head(self) -> tuple[str, str] | None:
        snapshot = self.shared.get("content")
        return None if snapshot is None else (snapshot.version, snapshot.base_version)

    async def fetch(self) -> ContentSnapshot | None:
        return self.shared.get("content")

    async def publish(self, snapshot: ContentSnapshot) -> None:
        self.shared["content"] = snapshot

    async def notifications(self, listening: Callable[[], None]) -> AsyncIterator[None]:
        listening()
        return
        yield


def test_an_upload_is_installed_as_validated_without_reading_the_folder_again(tmp_path: Path) -> None:
    manager = watched(tmp_path, "one")

    change = manager.upload("robotics.yaml", ROBOTICS.encode())

    assert change.ok
    assert counts(manager) == (0, 1)
    assert manager.library.catalogue.section("robotics") is not None
    # What was installed is what a fresh read of the folder gives: same files, same version.
    assert manager.reload().version == change.version


def test_a_rollback_is_installed_as_validated_without_reading_the_folder_again(tmp_path: Path) -> None:
    manager = watched(tmp_path, "one")
    original = manager.library.catalogue.version
    assert manager.upload("robotics.yaml", ROBOTICS.encode()).ok

    change = manager.rollback()

    assert change.ok and change.version == original
    assert counts(manager) == (0, 2)
    assert manager.library.catalogue.section("robotics") is None


def test_a_refused_upload_installs_nothing(tmp_path: Path) -> None:
    manager = watched(tmp_path, "one")
    before = manager.library.catalogue

    change = manager.upload("robotics.yaml", (ROBOTICS + "colour: blue\n").encode())

    assert not change.ok
    assert counts(manager) == (0, 0) and manager.library.catalogue is before


async def test_a_replica_installs_a_published_snapshot_as_validated(tmp_path: Path) -> None:
    shared: dict[str, ContentSnapshot] = {}
    one, two = watched(tmp_path, "one"), watched(tmp_path, "two")
    first = ContentSync(MemorySnapshots(shared, "one"), one)
    second = ContentSync(MemorySnapshots(shared, "two"), two)
    assert await first.start_up() == "published"
    assert await second.start_up() == "unchanged"
    assert one.upload("robotics.yaml", ROBOTICS.encode()).ok
    assert await first.sync_once() == "published"

    assert await second.sync_once() == "applied"

    assert counts(two) == (0, 1)
    assert two.library.catalogue.version == one.library.catalogue.version == shared["content"].version
    assert (two.directory / "sections" / "robotics.yaml").read_text() == ROBOTICS
    assert [p.name for p in two.history_dir.iterdir()] == [p.name for p in one.history_dir.iterdir()]


async def test_a_replica_refuses_an_invalid_snapshot_and_writes_nothing(tmp_path: Path) -> None:
    shared: dict[str, ContentSnapshot] = {}
    one = watched(tmp_path, "one")
    sync = ContentSync(MemorySnapshots(shared, "one"), one)
    await sync.start_up()
    files = {**shared["content"].files, "sections/robotics.yaml": "id: robotics\ntitle: [unclosed\n"}
    shared["content"] = ContentSnapshot(version="broken", base_version=sync.base_version, files=files, history={})

    assert await sync.sync_once() == "refused"

    assert counts(one) == (0, 0)
    assert not (one.directory / "sections" / "robotics.yaml").exists()
