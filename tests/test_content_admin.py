"""Content changes at run time: diffs, validated uploads, rollbacks, reloads and the directory watcher."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.content import ContentLibrary, load_catalogue
from bot.content.diff import ContentChange, ContentDiff, diff_catalogues
from bot.content.manager import ContentManager
from bot.core.catalogue import Initiative, Section, Update

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"
VALID = FIXTURES / "content"
BROKEN = FIXTURES / "broken"

ROBOTICS = (FIXTURES / "robotics.yaml").read_text()  # a section to upload
FRAUD_LAB = """\
  - name: Fraud Lab
    body: HKMA
    description: Banks share fraud patterns.
    link: https://example.org/fraud-lab
"""
NEW_UPDATE = """\
  - date: 2026-11-20
    sections: [finance]
    title: Robotics fund opened
    summary: A fund for robotics in banking opened.
    link: https://example.org/robotics-fund
"""


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """A private copy of the valid fixture content."""
    return Path(shutil.copytree(VALID, tmp_path / "content"))


@pytest.fixture
def manager(content: Path, tmp_path: Path) -> ContentManager:
    """A manager over the copied content with a fixed clock."""
    return ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _history(manager: ContentManager) -> list[Path]:
    return sorted(manager.history_dir.glob("*.json")) if manager.history_dir.exists() else []


# --- diff -------------------------------------------------------------------------------------


def test_diff_puts_each_added_changed_and_removed_item_in_its_bucket() -> None:
    old = load_catalogue(VALID, now=NOW)
    government, _finance = old.sections
    itf = dataclasses.replace(government.initiatives[0], description="A fund, now bigger.")
    robot_lab = Initiative(name="Robot Lab", body="HKSTP", description="Robots.", link="https://example.org/r",
                           section_id="robotics")
    robotics = Section(id="robotics", order=3, title="Robotics", aliases=(), summary="Robots.", key_points=("x",),
                       related=(), initiatives=(robot_lab,))
    launched, itf_set_up = old.updates
    new_update = Update(date=date(2026, 11, 20), sections=("robotics",), title="Robot Lab opens", summary="Opened.",
                        link="https://example.org/r")
    new = dataclasses.replace(
        old,
        sections=(dataclasses.replace(government, summary="Changed.", initiatives=(itf,)), robotics),
        updates=(new_update, dataclasses.replace(itf_set_up, summary="Changed.")),
        version="other",
    )

    diff = diff_catalogues(old, new)

    assert diff == ContentDiff(
        sections_added=("robotics",), sections_changed=("government",), sections_removed=("finance",),
        initiatives_added=("robotics/Robot Lab",),
        initiatives_changed=("government/Innovation and Technology Fund",),
        initiatives_removed=("finance/Fintech Supervisory Sandbox", "finance/GenA.I. Sandbox"),
        updates_added=("2026-11-20/Robot Lab opens",),
        updates_changed=("1999-11-01/Innovation and Technology Fund set up",),
        updates_removed=(launched.key,),
    )
    assert not diff.empty
    assert diff.describe() == (
        "sections: +1 ~1 -1 (added: robotics | changed: government | removed: finance); "
        "initiatives: +1 ~1 -2 (added: robotics/Robot Lab | changed: government/Innovation and Technology Fund | "
        "removed: finance/Fintech Supervisory Sandbox, finance/GenA.I. Sandbox); "
        "updates: +1 ~1 -1 (added: 2026-11-20/Robot Lab opens | changed: 1999-11-01/Innovation and Technology Fund "
        "set up | removed: 2024-08-13/GenA.I. Sandbox launched)"
    )


def test_diff_of_identical_catalogues_is_empty() -> None:
    catalogue = load_catalogue(VALID, now=NOW)
    diff = diff_catalogues(catalogue, load_catalogue(VALID, now=NOW))
    assert diff.empty
    assert diff.describe() == "no changes"


def test_describe_caps_long_lists() -> None:
    diff = ContentDiff(updates_added=tuple(f"2026-01-{day:02d}/News {day}" for day in range(1, 18)))
    assert diff.describe(limit=3) == (
        "sections: +0 ~0 -0; initiatives: +0 ~0 -0; "
        "updates: +17 ~0 -0 (added: 2026-01-01/News 1, 2026-01-02/News 2, 2026-01-03/News 3 … and 14 more)"
    )


def test_about_change_alone_is_not_empty() -> None:
    old = load_catalogue(VALID, now=NOW)
    new = dataclasses.replace(old, about=dataclasses.replace(old.about, tagline="New tagline."))
    diff = diff_catalogues(old, new)
    assert not diff.empty
    assert diff.describe().endswith("about: changed")


# --- upload -----------------------------------------------------------------------------------


def test_upload_of_a_new_section_writes_it_and_swaps_the_catalogue(manager: ContentManager, content: Path) -> None:
    before = manager.library.catalogue

    change = manager.upload("robotics.yaml", ROBOTICS.encode())

    assert change.ok, change.describe()
    assert change.path == "sections/robotics.yaml"
    assert (content / "sections" / "robotics.yaml").read_text() == ROBOTICS
    assert manager.library.catalogue.section("robots") is not None
    assert change.version == manager.library.catalogue.version != before.version
    assert change.diff is not None
    assert change.diff.sections_added == ("robotics",)
    assert change.diff.initiatives_added == ("robotics/Robot Lab",)
    assert change.describe().startswith(f"Content updated (sections/robotics.yaml), version {change.version}:")
    [entry] = _history(manager)
    assert json.loads(entry.read_text()) | {"saved_at": None} == {
        "path": "sections/robotics.yaml", "previous_text": None, "new_text": ROBOTICS, "saved_at": None}
    assert [p.name for p in content.rglob("*") if p.name.endswith(".tmp")] == []


def test_upload_replacing_a_section_records_the_previous_text(manager: ContentManager, content: Path) -> None:
    original = (content / "sections" / "finance.yaml").read_text()

    change = manager.upload("finance-v2.yml", (original + FRAUD_LAB).encode())

    assert change.ok, change.describe()
    assert change.path == "sections/finance.yaml"
    assert change.diff is not None
    assert change.diff.sections_changed == ("finance",)
    assert change.diff.initiatives_added == ("finance/Fraud Lab",)
    assert json.loads(_history(manager)[0].read_text())["previous_text"] == original


def test_upload_replaces_the_file_that_holds_the_section_whatever_its_name(
        manager: ContentManager, content: Path) -> None:
    (content / "sections" / "finance.yaml").rename(content / "sections" / "money.yml")
    manager.reload()
    text = (content / "sections" / "money.yml").read_text() + FRAUD_LAB

    change = manager.upload("finance.yaml", text.encode())

    assert change.ok, change.describe()
    assert change.path == "sections/money.yml"
    assert not (content / "sections" / "finance.yaml").exists()


def test_invalid_upload_writes_nothing_and_names_the_target_file_and_line(
        manager: ContentManager, content: Path, tmp_path: Path) -> None:
    before, files = manager.library.catalogue, _files(tmp_path)

    change = manager.upload("finance.yaml", (BROKEN / "duplicate_alias.yaml").read_bytes())

    assert not change.ok
    assert change.path == "sections/finance.yaml"
    assert change.version == before.version
    assert manager.library.catalogue is before
    assert _files(tmp_path) == files
    target = "sections/finance.yaml"  # relative to the content folder: no server path reaches an admin
    assert any(str(error).startswith(f"{target}:6: aliases: 'gov' is already used by") for error in change.errors), \
        [str(error) for error in change.errors]
    assert "still serving version" in change.describe()


@pytest.mark.parametrize(("file_name", "data", "message"), [
    ("robotics.txt", ROBOTICS.encode(), "only .yaml or .yml files can be uploaded"),
    ("robotics.yaml", b"id: robotics\ntitle: Caf\xe9\n", "not UTF-8 text (bad byte at offset 23)"),
    ("robotics.yaml", ROBOTICS.replace("id: robotics", "id: ../../etc").encode(), "must be lowercase letters"),
    ("robotics.yaml", ROBOTICS.replace("id: robotics", "id: sections/robotics").encode(), "must be lowercase"),
    ("big.yaml", b"# padding\n" * 30_000, "at most 262144 allowed"),
    ("notes.yaml", b"colour: blue\n", "cannot tell what this file is"),
    ("robotics.yaml", b"id: [robotics\n", "not valid YAML"),
], ids=["extension", "not-utf8", "traversal", "separator", "too-big", "unknown-kind", "bad-yaml"])
def test_upload_rejects_files_it_cannot_place_safely(manager: ContentManager, tmp_path: Path, file_name: str,
                                                     data: bytes, message: str) -> None:
    before, files = manager.library.catalogue, _files(tmp_path)

    change = manager.upload(file_name, data)

    assert not change.ok
    [error] = change.errors
    assert error.file == file_name
    assert message in error.message
    assert manager.library.catalogue is before
    assert _files(tmp_path) == files
    assert not (tmp_path / "etc").exists()


def test_upload_of_updates_adds_the_update(manager: ContentManager, content: Path) -> None:
    text = (content / "updates.yaml").read_text() + NEW_UPDATE

    change = manager.upload("news.yaml", text.encode())

    assert change.ok, change.describe()
    assert change.path == "updates.yaml"
    assert change.diff is not None
    assert change.diff.updates_added == ("2026-11-20/Robotics fund opened",)
    assert manager.library.catalogue.updates[0].title == "Robotics fund opened"


def test_upload_of_the_same_text_changes_nothing_and_records_no_history(manager: ContentManager,
                                                                         content: Path) -> None:
    change = manager.upload("about.yaml", (content / "about.yaml").read_bytes())
    assert change.ok
    assert change.path == "about.yaml"
    assert change.diff is not None and change.diff.empty
    assert _history(manager) == []


# --- rollback ---------------------------------------------------------------------------------


def test_rollback_restores_the_previous_file_and_catalogue(manager: ContentManager, content: Path) -> None:
    path = content / "sections" / "finance.yaml"
    original, version = path.read_bytes(), manager.library.catalogue.version
    assert manager.upload("finance.yaml", path.read_bytes() + FRAUD_LAB.encode()).ok

    change = manager.rollback()

    assert change.ok, change.describe()
    assert change.path == "sections/finance.yaml"
    assert path.read_bytes() == original
    assert manager.library.catalogue.version == change.version == version
    assert change.diff is not None and change.diff.initiatives_removed == ("finance/Fraud Lab",)
    assert _history(manager) == []


def test_rollback_of_an_upload_that_created_a_file_deletes_it(manager: ContentManager, content: Path) -> None:
    assert manager.upload("robotics.yaml", ROBOTICS.encode()).ok

    change = manager.rollback()

    assert change.ok, change.describe()
    assert not (content / "sections" / "robotics.yaml").exists()
    assert manager.library.catalogue.section("robotics") is None
    assert change.diff is not None and change.diff.sections_removed == ("robotics",)


def test_rollback_without_history_says_there_is_nothing_to_undo(manager: ContentManager) -> None:
    change = manager.rollback()
    assert not change.ok
    [error] = change.errors
    assert "nothing to roll back" in str(error)


def test_two_uploads_then_two_rollbacks_restore_the_original_even_after_a_restart(
        manager: ContentManager, content: Path, tmp_path: Path) -> None:
    original, version = _files(content), manager.library.catalogue.version
    assert manager.upload("robotics.yaml", ROBOTICS.encode()).ok
    assert manager.upload("updates.yaml", ((content / "updates.yaml").read_text() + NEW_UPDATE).encode()).ok

    assert manager.rollback().ok
    restarted = ContentManager(ContentLibrary.open(content, now=NOW), manager.history_dir, lambda: NOW)
    change = restarted.rollback()

    assert change.ok, change.describe()
    assert _files(content) == original
    assert restarted.library.catalogue.version == version
    assert not restarted.rollback().ok


def test_rollback_that_would_break_other_content_is_refused(manager: ContentManager, content: Path) -> None:
    assert manager.upload("robotics.yaml", ROBOTICS.encode()).ok
    updates = content / "updates.yaml"
    updates.write_text(updates.read_text() + NEW_UPDATE.replace("[finance]", "[robotics]"))
    assert manager.reload().ok
    files = _files(content)

    change = manager.rollback()

    assert not change.ok
    assert any("updates[2].sections: no section with id 'robotics'" in str(error) for error in change.errors)
    assert _files(content) == files
    assert len(_history(manager)) == 1


# --- reload -----------------------------------------------------------------------------------


def test_reload_of_a_valid_edit_swaps_it_in_with_a_diff(manager: ContentManager, content: Path) -> None:
    path = content / "sections" / "government.yaml"
    path.write_text(path.read_text().replace("funds research", "funds labs"))

    change = manager.reload()

    assert change.ok
    assert change.diff is not None and change.diff.sections_changed == ("government",)
    government = manager.library.catalogue.section("government")
    assert government is not None and "funds labs" in government.summary


def test_reload_of_a_broken_file_keeps_serving_the_last_good_content(manager: ContentManager, content: Path) -> None:
    good = manager.library.catalogue
    path = content / "sections" / "finance.yaml"
    original = path.read_text()
    path.write_text((BROKEN / "duplicate_alias.yaml").read_text())

    change = manager.reload()

    assert not change.ok
    assert manager.library.catalogue is good
    assert change.version == good.version
    assert manager.last_error is change
    assert any(str(error).startswith(f"{path.relative_to(content).as_posix()}:6: aliases:") for error in change.errors)

    path.write_text(original.replace("fraud detection", "fraud and credit checks"))
    fixed = manager.reload()
    assert fixed.ok
    assert manager.last_error is None


def test_reload_reports_a_file_that_is_not_utf8_instead_of_raising(manager: ContentManager, content: Path) -> None:
    good = manager.library.catalogue
    (content / "about.yaml").write_bytes(b"name: Caf\xe9\n")

    change = manager.reload()

    assert not change.ok
    assert [str(error) for error in change.errors] == [
        "about.yaml:1: (file): not UTF-8 text (bad byte at offset 9)"]
    assert manager.library.catalogue is good


# --- watch ------------------------------------------------------------------------------------


class CountingManager(ContentManager):
    """Records every reload, to prove a change is read once."""

    reloads: list[ContentChange]

    def reload(self) -> ContentChange:
        change = super().reload()
        self.reloads.append(change)
        return change


@pytest.fixture
def counting(content: Path, tmp_path: Path) -> CountingManager:
    """A counting manager over the copied content."""
    manager = CountingManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)
    manager.reloads = []
    return manager


async def _next(queue: asyncio.Queue[ContentChange]) -> ContentChange:
    return await asyncio.wait_for(queue.get(), timeout=10)


@contextlib.asynccontextmanager
async def watching(manager: CountingManager, *, fail_first: bool = False
                   ) -> AsyncIterator[asyncio.Queue[ContentChange]]:
    """Run the watcher until the block ends; yields the queue of notifications, checked empty at the end."""
    queue: asyncio.Queue[ContentChange] = asyncio.Queue()
    stop = asyncio.Event()
    calls = 0

    async def on_change(change: ContentChange) -> None:
        nonlocal calls
        calls += 1
        queue.put_nowait(change)
        if fail_first and calls == 1:
            raise RuntimeError("admin chat unreachable")

    task = asyncio.create_task(manager.watch(stop, on_change, debounce_ms=100, settle_seconds=0.15))
    await asyncio.sleep(0)  # lets the task take its starting snapshot and register the watch before any write
    try:
        await _until_watching(manager, queue)
        yield queue
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert queue.empty(), queue.get_nowait()


async def _until_watching(manager: CountingManager, queue: asyncio.Queue[ContentChange]) -> None:
    """The watcher starts in the background: touch about.yaml until it reports, so no later write is missed."""
    about = manager.directory / "about.yaml"
    original = about.read_text()
    for attempt in range(20):
        about.write_text(f"{original}# watcher check {attempt}\n")
        try:
            change = await asyncio.wait_for(queue.get(), timeout=2)
        except TimeoutError:
            continue
        assert change.ok and change.diff is not None and change.diff.empty
        manager.reloads.clear()
        return
    pytest.fail("the watcher never reported a change")


async def test_watch_reports_a_valid_change_then_a_broken_file(counting: CountingManager, content: Path) -> None:
    async with watching(counting) as queue:
        government = content / "sections" / "government.yaml"
        government.write_text(government.read_text().replace("funds research", "funds labs"))
        change = await _next(queue)
        assert change.ok and change.diff is not None
        assert change.diff.sections_changed == ("government",)
        good = counting.library.catalogue
        assert good.version == change.version

        finance = content / "sections" / "finance.yaml"
        finance.write_text((BROKEN / "duplicate_alias.yaml").read_text())
        broken = await _next(queue)
        assert not broken.ok
        assert any(str(error).startswith("sections/finance.yaml:6: aliases:") for error in broken.errors)
        assert counting.library.catalogue is good
        assert counting.last_error is broken
    assert len(counting.reloads) == 2


async def test_watch_reads_a_file_written_in_two_steps_once(counting: CountingManager, content: Path) -> None:
    async with watching(counting) as queue:
        path = content / "sections" / "robotics.yaml"
        path.write_text(ROBOTICS[: len(ROBOTICS) // 2])
        await asyncio.sleep(0.1)
        path.write_text(ROBOTICS)
        change = await _next(queue)
        assert change.ok, change.describe()
        assert change.diff is not None and change.diff.sections_added == ("robotics",)
    assert counting.reloads == [change]


async def test_watch_stays_quiet_about_an_upload_already_applied(counting: CountingManager, content: Path) -> None:
    async with watching(counting) as queue:
        assert counting.upload("robotics.yaml", ROBOTICS.encode()).ok
        # A later edit must be the next notification: nothing may be reported for the upload in between.
        government = content / "sections" / "government.yaml"
        government.write_text(government.read_text().replace("funds research", "funds labs"))
        change = await _next(queue)
        assert change.ok and change.diff is not None
        assert change.diff.sections_changed == ("government",)


async def test_watch_survives_a_failing_callback(counting: CountingManager, content: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    async with watching(counting, fail_first=True) as queue:
        government = content / "sections" / "government.yaml"
        government.write_text(government.read_text().replace("funds research", "funds labs"))
        change = await _next(queue)
        assert change.ok and change.diff is not None and change.diff.sections_changed == ("government",)
    assert "content change callback failed" in caplog.text


async def test_watch_reports_recovery_after_a_broken_file_is_restored(counting: CountingManager,
                                                                      content: Path) -> None:
    finance = content / "sections" / "finance.yaml"
    original = finance.read_text()
    async with watching(counting) as queue:
        finance.write_text((BROKEN / "duplicate_alias.yaml").read_text())
        assert not (await _next(queue)).ok
        finance.write_text(original)
        recovered = await _next(queue)
        assert recovered.ok and recovered.diff is not None and recovered.diff.empty
        assert counting.last_error is None


# ---- publishing one update (the review queue's Publish)


def test_publishing_an_update_adds_it_first_and_leaves_the_rest_as_written(manager: ContentManager,
                                                                           content: Path) -> None:
    before = (content / "updates.yaml").read_text()
    recorded: list[str] = []
    title = "HKMA: sandbox #2 opens to insurers"  # characters YAML would misread unquoted
    summary = "Insurers may now test generative AI, 生成式人工智能, under supervision."

    change = manager.publish_update(date(2026, 11, 24), ["finance", "government"], title, summary,
                                    "https://www.hkma.gov.hk/eng/news/p1", 900, recorded.append)

    assert change.ok and change.path == "updates.yaml" and recorded == ["updates.yaml"]
    after = (content / "updates.yaml").read_text()
    assert after.startswith("updates:\n  - date: 2026-11-24\n") and after.endswith(before.removeprefix("updates:\n"))
    newest = manager.library.catalogue.updates[0]
    assert newest == Update(date(2026, 11, 24), ("finance", "government"), title, summary,
                            "https://www.hkma.gov.hk/eng/news/p1")
    assert len(_history(manager)) == 1

    assert manager.rollback().ok  # /rollback undoes it
    assert (content / "updates.yaml").read_text() == before
    assert newest not in manager.library.catalogue.updates


def test_a_published_update_is_validated_and_an_invalid_one_changes_nothing(manager: ContentManager,
                                                                            content: Path) -> None:
    files = _files(content)
    change = manager.publish_update(date(2026, 11, 24), ["no-such-sector"], "A title", "A summary.",
                                    "https://example.org/x", 900)
    assert not change.ok and "no-such-sector" in "\n".join(str(e) for e in change.errors)
    change = manager.publish_update(date(2026, 11, 24), ["finance"], "A title", "", "https://example.org/x", 900)
    assert not change.ok
    assert _files(content) == files and _history(manager) == []


def test_publishing_into_an_empty_or_missing_updates_file(manager: ContentManager, content: Path) -> None:
    (content / "updates.yaml").write_text("# news, newest first\nupdates:\n")
    assert manager.publish_update(date(2026, 11, 24), ["finance"], "First", "The first one.",
                                  "https://example.org/1", None).ok
    assert (content / "updates.yaml").read_text().startswith("# news, newest first\nupdates:\n  - date: 2026-11-24\n")
    (content / "updates.yaml").unlink()
    assert manager.publish_update(date(2026, 11, 24), ["finance"], "Again", "Once more.",
                                  "https://example.org/2", None).ok
    assert [u.title for u in manager.library.catalogue.updates] == ["Again"]
