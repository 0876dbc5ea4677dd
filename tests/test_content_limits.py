"""Hostile content: alias bombs, deep nesting, undecodable files, odd upload names, and a slow change off the loop."""

from __future__ import annotations

import asyncio
import shutil
import threading
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from replies import html

from bot.__main__ import check_content
from bot.content import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    ContentLibrary,
    InvalidContent,
    load_catalogue,
    validate_texts,
)
from bot.content.diff import ContentChange
from bot.content.manager import BlockingRecord, ContentManager, OffLoopContentAdmin
from bot.content.parse import _LineLoader
from bot.core.addresses import telegram
from bot.core.catalogue import Catalogue
from bot.core.commands import dispatch
from bot.core.messages import Chat, Request, User
from bot.core.services import Services
from bot.store import SqlStore, open_store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"
VALID = FIXTURES / "content"
ROBOTICS = (FIXTURES / "robotics.yaml").read_text()
ADMIN, USER = 900, 5


# --- the hostile samples measured for the README (each about 0.5-1.5 KB) --------------------------------------


def laughs_in_a_value(levels: int = 9) -> str:
    """9**9 "lol"s through nested aliases, used as an update's date (the validator turns it into text)."""
    lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nupdates:\n  - date: *a{levels - 1}\n"


def laughs_in_a_key(levels: int = 9) -> str:
    """The same expansion used as a mapping key."""
    lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "id: bomb\n" + "\n".join(lines) + f"\n? *a{levels - 1}\n: x\n"


def merge_key_bomb(levels: int = 24) -> str:
    """Each mapping merges the previous one twice: 2**24 keys."""
    lines = ["m0: &m0 {k0: v}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}" for i in range(1, levels)]
    return "id: bomb\n" + "\n".join(lines) + "\n"


def deep_sequence(depth: int = 300) -> str:
    """Nested flow sequences; the old loader raised RecursionError."""
    return "id: bomb\nsummary: " + "[" * depth + "]" * depth + "\n"


def deep_mapping(depth: int = 1000) -> str:
    """Nested flow mappings; the old loader raised RecursionError."""
    return "id: bomb\nsummary: " + "{a: " * depth + "b" + "}" * depth + "\n"


HOSTILE = {
    "alias-in-value": ("updates.yaml", laughs_in_a_value(), 1, "anchors (&a0) are not allowed"),
    "alias-in-key": ("sections/bomb.yaml", laughs_in_a_key(), 2, "anchors (&a0) are not allowed"),
    "merge-keys": ("sections/bomb.yaml", merge_key_bomb(), 2, "anchors (&m0) are not allowed"),
    "deep-sequence": ("sections/bomb.yaml", deep_sequence(), 2, f"nested more than {MAX_DEPTH} levels deep"),
    "deep-mapping": ("sections/bomb.yaml", deep_mapping(), 2, f"nested more than {MAX_DEPTH} levels deep"),
}


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """A private copy of the valid fixture content."""
    return Path(shutil.copytree(VALID, tmp_path / "content"))


@pytest.mark.parametrize("sample", list(HOSTILE))
def test_hostile_yaml_is_refused_with_its_line_in_a_few_mb(content: Path, sample: str) -> None:
    relative, text, line, message = HOSTILE[sample]
    (content / relative).write_text(text)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidContent) as caught:
            load_catalogue(content, now=NOW, shown="")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [error] = caught.value.errors
    assert (error.file, error.line, error.key) == (relative, line, "(yaml)")
    assert message in error.message
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"


@pytest.mark.parametrize("sample", list(HOSTILE))
def test_the_pure_python_loader_refuses_the_same_samples(sample: str) -> None:
    _, text, line, message = HOSTILE[sample]
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.load(text, Loader=_LineLoader)  # the guarded pure-Python loader, used where libyaml is missing
    assert message in str(caught.value) and f"line {line}," in str(caught.value)


@pytest.mark.parametrize("text", ["x: &a 1\ny: *a\n", "? [*a]\n: 1\n", "a: {<<: {b: 1}}\n"],
                         ids=["alias", "alias-in-key", "merge-key"])
def test_every_anchor_alias_and_merge_key_is_refused(content: Path, text: str) -> None:
    (content / "sections" / "odd.yaml").write_text(text)
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(content, now=NOW, shown="")
    [error] = caught.value.errors
    assert error.file == "sections/odd.yaml" and error.key == "(yaml)"
    assert "not allowed in content files" in error.message


def test_content_nested_to_the_limit_still_parses_and_one_more_level_does_not(content: Path) -> None:
    deep_ok = "id: bomb\nsummary: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n"  # + the file's mapping
    (content / "sections" / "bomb.yaml").write_text(deep_ok)
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(content, now=NOW, shown="")
    assert not any(error.key == "(yaml)" for error in caught.value.errors)
    (content / "sections" / "bomb.yaml").write_text(deep_sequence(MAX_DEPTH))
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(content, now=NOW, shown="")
    assert [error.key for error in caught.value.errors] == ["(yaml)"]


# --- undecodable files ------------------------------------------------------------------------------------------


def test_content_check_reports_an_undecodable_file_as_one_error(content: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (content / "sections" / "binary.yaml").write_bytes(b"id: bin\n\x89PNG\r\n\x1a\n\x00\xff")

    assert check_content(content) == 1

    err = capsys.readouterr().err
    assert f"{content.as_posix()}/sections/binary.yaml:1: (file): not UTF-8 text (bad byte at offset 8)" in err
    assert "1 problem(s)" in err


def test_a_file_over_the_size_cap_is_one_error_without_being_read_whole(content: Path) -> None:
    (content / "sections" / "huge.yaml").write_bytes(b"# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(content, now=NOW, shown="")
    assert [str(error) for error in caught.value.errors] == [
        f"sections/huge.yaml:1: (file): is more than {MAX_FILE_BYTES} bytes; at most {MAX_FILE_BYTES} allowed"]


def test_start_up_refuses_an_undecodable_file_with_its_line(content: Path) -> None:
    (content / "about.yaml").write_bytes(b"name: Caf\xe9\n")
    with pytest.raises(InvalidContent) as caught:
        ContentLibrary.open(content, now=NOW)
    assert [str(error) for error in caught.value.errors] == [
        f"{content.as_posix()}/about.yaml:1: (file): not UTF-8 text (bad byte at offset 9)"]


def test_content_check_flags_an_update_dated_after_tomorrow(content: Path, capsys: pytest.CaptureFixture[str]) -> None:
    updates = content / "updates.yaml"
    updates.write_text(updates.read_text().replace("updates:\n", "updates:\n  - date: 2999-01-01\n"
                                                   "    sections: [finance]\n    title: From the future\n"
                                                   "    summary: A typo in the year.\n"
                                                   "    link: https://example.org/future\n", 1))
    assert check_content(content) == 1
    assert "/updates.yaml:2: updates[0].date: 2999-01-01 is in the future" in capsys.readouterr().err
    load_catalogue(content, now=NOW)  # the running bot still loads it (content written ahead of time)


# --- unforeseen failures are reported, not only logged -------------------------------------------------------


class ExplodingLibrary(ContentLibrary):
    """A library whose next reload fails in a way nobody foresaw."""

    def reload(self, *, now: datetime, shown: str | None = None) -> Catalogue:
        raise RuntimeError("disk on fire\nsecond line")


async def test_an_unforeseen_reload_failure_reaches_admins_and_status(content: Path, tmp_path: Path) -> None:
    good = load_catalogue(content, now=NOW)
    manager = ContentManager(ExplodingLibrary(content, good), tmp_path / "history", lambda: NOW)
    services = Services(content=manager.library, clock=lambda: NOW, admin_ids=frozenset({ADMIN}),
                        content_admin=OffLoopContentAdmin(manager))

    reloaded = await dispatch(Request("reload", user=User(ADMIN), chat=Chat(telegram(ADMIN))), services)
    status = await dispatch(Request("status", user=User(ADMIN), chat=Chat(telegram(ADMIN))), services)

    assert "Not applied" in html(reloaded)
    assert ".:0: (content): could not be loaded: RuntimeError: disk on fire" in html(reloaded)
    assert "second line" not in html(reloaded)
    assert "The content on disk is broken (1 problem(s))" in html(status)
    assert manager.library.catalogue is good


async def test_the_watcher_reports_an_unforeseen_failure(content: Path, tmp_path: Path) -> None:
    manager = ContentManager(ExplodingLibrary(content, load_catalogue(content, now=NOW)), tmp_path / "history",
                             lambda: NOW)
    told: asyncio.Queue[ContentChange] = asyncio.Queue()

    async def on_change(change: ContentChange) -> None:
        told.put_nowait(change)

    stop = asyncio.Event()
    task = asyncio.create_task(manager.watch(stop, on_change, debounce_ms=50, settle_seconds=0.1))
    try:
        for attempt in range(20):  # the watch starts in the background: write until it sees one
            (content / "about.yaml").write_text(f"{(VALID / 'about.yaml').read_text()}# {attempt}\n")
            try:
                change = await asyncio.wait_for(told.get(), timeout=2)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the watcher never reported")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert not change.ok and "RuntimeError: disk on fire" in str(change.errors[0])
    assert manager.last_error is change


# --- upload names and audit records --------------------------------------------------------------------------


async def _services(manager: ContentManager, store: SqlStore) -> Services:
    return Services(content=manager.library, clock=lambda: NOW, admin_ids=frozenset({ADMIN}),
                    content_admin=OffLoopContentAdmin(manager), audit=store)


def _upload(name: str, data: bytes) -> Request:
    return Request("upload", chat=Chat(telegram(ADMIN)), user=User(ADMIN), attachment=(name, data))


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[SqlStore]:
    """A real SQLite store for the audit log."""
    store = await open_store(sqlite_url)
    yield store
    await store.close()


async def test_control_characters_in_a_file_name_add_no_lines(content: Path, tmp_path: Path,
                                                              sqlite_store: SqlStore) -> None:
    manager = ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)
    services = await _services(manager, sqlite_store)
    name = "fake\n✅ Applied. everything\r\x00\u2028.yaml"

    refused = await dispatch(_upload(name, b"colour: blue\n"), services)
    applied = await dispatch(_upload(name, ROBOTICS.encode()), services)

    assert html(refused).count("\n") == 1 and "fake?✅ Applied. everything???.yaml:1: (file)" in html(refused)
    assert "✅ Applied. everything" not in html(applied).split("\n", 1)[0]
    details = [detail for _, _, action, detail in await sqlite_store.audit_entries(10) if action == "upload"]
    assert sorted(details) == ["fake?✅ Applied. everything???.yaml -> -: 1 error(s)",
                               "fake?✅ Applied. everything???.yaml -> sections/robotics.yaml: applied"]
    assert str(tmp_path) not in html(refused) + html(applied)


async def test_no_message_shows_a_server_path(content: Path, tmp_path: Path, sqlite_store: SqlStore) -> None:
    manager = ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)
    services = await _services(manager, sqlite_store)
    (content / "sections" / "finance.yaml").write_bytes(b"\xff")
    texts = [html(await dispatch(Request(command, chat=Chat(telegram(ADMIN)), user=User(ADMIN)), services))
             for command in ("reload", "rollback")]
    texts.append(html(await dispatch(_upload("robotics.yaml", ROBOTICS.encode()), services)))
    assert "sections/finance.yaml:1: (file): not UTF-8 text" in texts[0]
    assert "(content history):0: (history): nothing to roll back" in texts[1]
    assert all(str(tmp_path) not in text for text in texts), texts


@pytest.mark.postgres
async def test_on_postgres_a_nul_in_the_name_is_applied_with_its_audit_record(content: Path, tmp_path: Path,
                                                                               postgres_db_url: str) -> None:
    store = await open_store(postgres_db_url)
    try:
        manager = ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)
        reply = await dispatch(_upload("robo\x00tics.yaml", ROBOTICS.encode()), await _services(manager, store))
        audit = await store.audit_entries(10)
    finally:
        await store.close()
    assert "Applied." in html(reply)
    assert manager.library.catalogue.section("robotics") is not None
    assert [(action, detail) for _, _, action, detail in audit] == [
        ("upload", "robo?tics.yaml -> sections/robotics.yaml: applied")]


@pytest.mark.postgres
async def test_on_postgres_an_upload_whose_audit_fails_is_not_applied(content: Path, tmp_path: Path,
                                                                       postgres_db_url: str) -> None:
    store = await open_store(postgres_db_url)
    await store.close()  # a real store that can no longer write: recording the upload fails
    manager = ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)
    before = manager.library.catalogue

    reply = await dispatch(_upload("robotics.yaml", ROBOTICS.encode()), await _services(manager, store))

    assert "Not applied" in html(reply) and "(audit): could not record the change" in html(reply)
    assert manager.library.catalogue is before
    assert not (content / "sections" / "robotics.yaml").exists()
    assert not (tmp_path / "history").exists() or not list((tmp_path / "history").iterdir())


def test_a_failing_record_leaves_a_rollback_unapplied(content: Path, tmp_path: Path) -> None:
    manager = ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)
    assert manager.upload("robotics.yaml", ROBOTICS.encode()).ok

    def failing(_target: str) -> None:
        raise ConnectionError("audit log unreachable")

    change = manager.rollback(failing)

    assert not change.ok and "(audit): could not record the change" in str(change.errors[0])
    assert (content / "sections" / "robotics.yaml").exists()
    assert manager.rollback().ok  # the history entry is still there to roll back later


# --- a slow change does not hold up other users --------------------------------------------------------------


class SlowManager(ContentManager):
    """Blocks inside an upload (as parsing a huge file would) until the test lets it go."""

    def __init__(self, *args: object, release: threading.Event, started: threading.Event, order: list[str],
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.release, self.started, self.order = release, started, order

    def upload(self, file_name: str, data: bytes, record: BlockingRecord | None = None) -> ContentChange:
        self.started.set()
        self.release.wait(timeout=10)  # blocking, not awaiting: on the event loop this would stall every user
        self.order.append("upload read")
        return super().upload(file_name, data, record)


async def test_other_users_are_answered_while_an_upload_is_being_read(content: Path, tmp_path: Path,
                                                                      sqlite_store: SqlStore) -> None:
    release, started = threading.Event(), threading.Event()
    order: list[str] = []
    manager = SlowManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW,
                          release=release, started=started, order=order)
    services = await _services(manager, sqlite_store)

    async def run(name: str, request: Request) -> None:
        await dispatch(request, services)
        order.append(name)

    uploading = asyncio.create_task(run("upload", _upload("robotics.yaml", ROBOTICS.encode())))
    assert await asyncio.to_thread(started.wait, 10)
    await run("sectors", Request("sectors", chat=Chat(telegram(USER)), user=User(USER)))
    await run("help", Request("help", chat=Chat(telegram(USER)), user=User(USER)))
    release.set()
    await asyncio.wait_for(uploading, timeout=15)

    assert order == ["sectors", "help", "upload read", "upload"]
    assert manager.library.catalogue.section("robotics") is not None


@pytest.mark.parametrize(("text", "expected"), [
    ("id: x\n\ntitle: a\x00b\n", "sections/x.yaml:3: (yaml): not valid YAML: unacceptable character #x0000"),
    ("id: x\ntitle: a\udc80\n", "sections/x.yaml:2: (file): not UTF-8 text (bad character at offset 14)"),
], ids=["nul", "lone-surrogate"])
def test_text_from_a_replica_snapshot_with_bad_characters_is_one_line_with_its_place(text: str,
                                                                                     expected: str) -> None:
    files = {relative: (VALID / relative).read_text() for relative in ("about.yaml", "updates.yaml")}
    with pytest.raises(InvalidContent) as caught:
        validate_texts({**files, "sections/x.yaml": text}, base=VALID, now=NOW, shown="")
    found = [str(error) for error in caught.value.errors if error.file == "sections/x.yaml"]
    assert len(found) == 1 and found[0].startswith(expected) and "\n" not in found[0], found


async def test_changes_made_at_the_same_time_apply_one_after_the_other(content: Path, tmp_path: Path) -> None:
    manager = ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)
    admin = OffLoopContentAdmin(manager)
    updates = (content / "updates.yaml").read_text().replace("updates:\n", "updates:\n  - date: 2026-11-20\n"
                                                             "    sections: [finance]\n    title: Same time\n"
                                                             "    summary: Sent with another upload.\n"
                                                             "    link: https://example.org/same-time\n", 1)

    first, second, reloaded = await asyncio.gather(admin.upload("robotics.yaml", ROBOTICS.encode()),
                                                   admin.upload("updates.yaml", updates.encode()), admin.reload())

    assert first.ok and second.ok and reloaded.ok
    catalogue = manager.library.catalogue
    assert catalogue.section("robotics") is not None and any(u.title == "Same time" for u in catalogue.updates)
    assert sorted(path.name[:6] for path in (tmp_path / "history").iterdir()) == ["000001", "000002"]
