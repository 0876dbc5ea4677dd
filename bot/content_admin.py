"""Change content while the bot runs: validated uploads, rollbacks, reloads and a watcher on the content directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import watchfiles
import yaml

from bot.content import (
    SECTION_ID,
    ContentError,
    ContentLibrary,
    InvalidContent,
    Unreadable,
    content_files,
    decode_content,
    load_catalogue,
    parse_yaml,
    read_content,
    validate_texts,
    yaml_error,
)
from bot.core.admin import MAX_UPLOAD_BYTES, outcome_text
from bot.core.catalogue import Catalogue
from bot.core.ports import Record
from bot.core.render import printable_name

log = logging.getLogger(__name__)

HISTORY_SHOWN = "(content history)"  # how messages name the history folder: never a server path
CONTENT_SUFFIXES = (".yaml", ".yml")
DESCRIBE_LIMIT = 5
SETTLE_LIMIT_SECONDS = 30.0
RECORD_TIMEOUT_SECONDS = 30.0
HISTORY_NAME = re.compile(r"^(\d+)-[^/]*\.json$")

_T = TypeVar("_T")
Snapshot = dict[str, tuple[int, int]]
BlockingRecord = Callable[[str], None]  # writes the audit entry for a change to this path; raises if it could not


# --- what changed -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentDiff:
    """What changed between two catalogues: section ids, initiative keys and update keys per bucket."""

    sections_added: tuple[str, ...] = ()
    sections_changed: tuple[str, ...] = ()
    sections_removed: tuple[str, ...] = ()
    initiatives_added: tuple[str, ...] = ()
    initiatives_changed: tuple[str, ...] = ()
    initiatives_removed: tuple[str, ...] = ()
    updates_added: tuple[str, ...] = ()
    updates_changed: tuple[str, ...] = ()
    updates_removed: tuple[str, ...] = ()
    about_changed: bool = False

    @property
    def empty(self) -> bool:
        """True when nothing a reader can see changed."""
        return not self.about_changed and not any(any(lists) for lists in self._buckets().values())

    def _buckets(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
        return {
            "sections": (self.sections_added, self.sections_changed, self.sections_removed),
            "initiatives": (self.initiatives_added, self.initiatives_changed, self.initiatives_removed),
            "updates": (self.updates_added, self.updates_changed, self.updates_removed),
        }

    def describe(self, limit: int = DESCRIBE_LIMIT) -> str:
        """A one-line summary for an admin, naming at most `limit` items per list."""
        if self.empty:
            return "no changes"
        parts = []
        for kind, (added, changed, removed) in self._buckets().items():
            part = f"{kind}: +{len(added)} ~{len(changed)} -{len(removed)}"
            named = [f"{label}: {_capped(names, limit)}"
                     for label, names in (("added", added), ("changed", changed), ("removed", removed)) if names]
            parts.append(f"{part} ({' | '.join(named)})" if named else part)
        if self.about_changed:
            parts.append("about: changed")
        return "; ".join(parts)


def _capped(names: tuple[str, ...], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown} … and {len(names) - limit} more" if len(names) > limit else shown


def _keyed(old: Mapping[str, _T], new: Mapping[str, _T]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    added = tuple(key for key in new if key not in old)
    changed = tuple(key for key in new if key in old and old[key] != new[key])
    removed = tuple(key for key in old if key not in new)
    return added, changed, removed


def diff_catalogues(old: Catalogue, new: Catalogue) -> ContentDiff:
    """Compare two catalogues by section id, initiative key and update key."""
    sections = _keyed({s.id: s for s in old.sections}, {s.id: s for s in new.sections})
    initiatives = _keyed({i.key: i for i in old.initiatives}, {i.key: i for i in new.initiatives})
    updates = _keyed({u.key: u for u in old.updates}, {u.key: u for u in new.updates})
    return ContentDiff(*sections, *initiatives, *updates, about_changed=old.about != new.about)


@dataclass(frozen=True)
class ContentChange:
    """The outcome of a reload, upload or rollback."""

    ok: bool
    errors: tuple[ContentError, ...] = ()
    diff: ContentDiff | None = None
    path: str | None = None
    version: str = ""

    def describe(self, limit: int = 20) -> str:
        """Plain text for an admin: the diff when it worked, else every error (up to `limit`) with its place."""
        return outcome_text(self, limit)


# --- the manager ------------------------------------------------------------------------------


class ContentManager:
    """Applies validated content changes to a library and keeps an on-disk history to roll uploads back.

    Its methods are blocking (parsing, validation, disk I/O) and may run in worker threads: `changing` makes
    reloads, uploads, rollbacks and replica updates happen one at a time. Messages name files relative to the
    content folder, never by a server path.
    """

    def __init__(self, library: ContentLibrary, history_dir: Path, clock: Callable[[], datetime]) -> None:
        self.library = library
        self.history_dir = history_dir
        self.clock = clock
        self.last_error: ContentChange | None = None
        self.changing = threading.RLock()

    @property
    def directory(self) -> Path:
        """The content directory being managed."""
        return self.library.directory

    # ---- reload

    def reload(self) -> ContentChange:
        """Validate the directory and swap it in only if valid; on errors keep serving the old catalogue."""
        with self.changing:
            old = self.library.catalogue
            swapped = self._swap()
            if isinstance(swapped, list):
                self.last_error = ContentChange(ok=False, errors=tuple(swapped), version=old.version)
                return self.last_error
            self.last_error = None
            return ContentChange(ok=True, diff=diff_catalogues(old, swapped), version=swapped.version)

    def _swap(self) -> Catalogue | list[ContentError]:
        # ContentLibrary has no public setter, so swapping means reloading the (already validated) files.
        try:
            return self.library.reload(now=self.clock(), shown="")
        except InvalidContent as exc:
            return list(exc.errors)
        except Exception as exc:  # whatever it was, admins must hear of it, not only the log
            log.exception("content reload failed unexpectedly")
            return [_unexpected(exc)]

    # ---- upload

    def upload(self, file_name: str, data: bytes, record: BlockingRecord | None = None) -> ContentChange:
        """Validate an uploaded YAML file against the rest, record it (`record`), then write it and swap it in.

        The audit entry is written before the file: if `record` raises, nothing is applied, so an applied change
        always has its record.
        """
        name = printable_name(file_name)
        with self.changing:
            try:
                return self._upload(name, data, record)
            except Exception as exc:  # reported to the admin instead of a bare "Sorry"
                log.exception("content upload failed unexpectedly")
                return self._rejected([_unexpected(exc, name)])

    def _upload(self, name: str, data: bytes, record: BlockingRecord | None) -> ContentChange:
        old = self.library.catalogue
        text = _decode_upload(name, data)
        if isinstance(text, ContentError):
            return self._rejected([text])
        target = self._target_for(name, text)
        if isinstance(target, ContentError):
            return self._rejected([target])
        errors = self._validate_with(target, text)
        if errors:
            return self._rejected(errors, target)
        path = self.directory / target
        previous = _read_exact(path)
        if previous == text:
            return self._applied(old, target)
        refused = _recorded(record, target)
        if refused is not None:
            return self._rejected([refused], target)
        try:
            entry = self._record(target, previous, text)
        except OSError as exc:
            return self._rejected([_io_error(HISTORY_SHOWN, exc, "could not save the history entry")], target)
        try:
            write_atomically(path, text)
        except OSError as exc:
            entry.unlink(missing_ok=True)
            return self._rejected([_io_error(target, exc)], target)
        change = self._applied(old, target, undo=(path, previous))
        if not change.ok:
            entry.unlink(missing_ok=True)
        return change

    def _target_for(self, file_name: str, text: str) -> str | ContentError:
        """Where an uploaded file belongs, decided by what it holds."""
        try:
            data = parse_yaml(text)
        except yaml.YAMLError as exc:
            return yaml_error(file_name, exc, text)
        if isinstance(data, dict) and "id" in data:
            section_id = data["id"]
            if not isinstance(section_id, str) or not SECTION_ID.match(section_id.strip()):
                return ContentError(file_name, getattr(data, "key_lines", {}).get("id", 1), "id",
                                    "must be lowercase letters, digits and dashes (max 32); it names the file")
            section_id = section_id.strip()
            return self._existing_section_file(section_id) or f"sections/{section_id}.yaml"
        if isinstance(data, dict) and "updates" in data:
            return self._existing_top_file("updates")
        if isinstance(data, dict) and "name" in data and "about" in data:
            return self._existing_top_file("about")
        return ContentError(file_name, 1, "(file)", "cannot tell what this file is: expected a section (with `id`), "
                                                    "news (with `updates`) or the bot's description (`name`, `about`)")

    def _existing_section_file(self, section_id: str) -> str | None:
        """The file that already holds this section, so a replacement lands on it whatever its name."""
        sections = self.directory / "sections"
        if not sections.is_dir():
            return None
        for relative, text in read_content(sections).items():
            if isinstance(text, Unreadable):
                continue
            try:
                data = parse_yaml(text)
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"].strip() == section_id:
                return f"sections/{relative}"
        return None

    def _existing_top_file(self, stem: str) -> str:
        for suffix in CONTENT_SUFFIXES:
            if (self.directory / f"{stem}{suffix}").is_file():
                return f"{stem}{suffix}"
        return f"{stem}.yaml"

    # ---- rollback

    def rollback(self, record: BlockingRecord | None = None) -> ContentChange:
        """Undo the newest recorded upload: restore the file it replaced (or delete the file it created).

        As with uploads, `record` writes the audit entry before any file changes.
        """
        with self.changing:
            try:
                return self._rollback(record)
            except Exception as exc:  # reported to the admin instead of a bare "Sorry"
                log.exception("content rollback failed unexpectedly")
                return self._rejected([_unexpected(exc)])

    def _rollback(self, record: BlockingRecord | None) -> ContentChange:
        old = self.library.catalogue
        entries = self._history()
        if not entries:
            return self._rejected([ContentError(HISTORY_SHOWN, 0, "(history)",
                                                "nothing to roll back: no upload is recorded")])
        entry_path = entries[-1]
        shown = f"{HISTORY_SHOWN} {entry_path.name}"
        try:
            entry = json.loads(entry_path.read_text(encoding="utf-8"))
            target, restored = entry["path"], entry["previous_text"]
            if not isinstance(target, str) or not (restored is None or isinstance(restored, str)):
                raise TypeError("path must be text and previous_text text or null")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return self._rejected([ContentError(shown, 0, "(history)", f"unreadable entry: {_brief(exc)}")])
        path = self.directory / target
        if not _inside(self.directory, path) or Path(target).suffix not in CONTENT_SUFFIXES:
            return self._rejected([ContentError(shown, 0, "path", f"refusing to write {printable_name(target)!r}")])
        errors = self._validate_with(target, restored)
        if errors:
            return self._rejected(errors, target)
        refused = _recorded(record, target)
        if refused is not None:
            return self._rejected([refused], target)
        current = _read_exact(path)
        try:
            write_atomically(path, restored)
        except OSError as exc:
            return self._rejected([_io_error(target, exc)], target)
        change = self._applied(old, target, undo=(path, current))
        if change.ok:
            entry_path.unlink(missing_ok=True)
        return change

    def _validate_with(self, target: str, text: str | None) -> list[ContentError]:
        """Errors the content would have with `target` replaced by `text` (None: deleted)."""
        try:
            if text is not None:
                load_catalogue(self.directory, now=self.clock(), overrides={target: text}, shown="")
            else:
                texts = read_content(self.directory)
                texts.pop(target, None)
                validate_texts(texts, base=self.directory, now=self.clock(), shown="")
        except InvalidContent as exc:
            return list(exc.errors)
        except OSError as exc:
            return [_io_error(".", exc, "cannot read the content folder")]
        return []

    # ---- history on disk

    def _history(self) -> list[Path]:
        """History entries, oldest first."""
        if not self.history_dir.is_dir():
            return []
        numbered = []
        for path in self.history_dir.iterdir():
            match = HISTORY_NAME.match(path.name)
            if match and path.is_file():
                numbered.append((int(match.group(1)), path))
        return [path for _, path in sorted(numbered)]

    def _record(self, target: str, previous: str | None, text: str) -> Path:
        entries = self._history()
        last = HISTORY_NAME.match(entries[-1].name) if entries else None
        number = int(last.group(1)) + 1 if last else 1
        now = self.clock()
        # The number orders entries (a clock can repeat a second); the time is for people reading the folder.
        path = self.history_dir / f"{number:06d}-{now.strftime('%Y%m%dT%H%M%S')}.json"
        entry = {"path": target, "previous_text": previous, "new_text": text, "saved_at": now.isoformat()}
        write_atomically(path, json.dumps(entry, indent=1))
        return path

    # ---- outcomes

    def _applied(self, old: Catalogue, target: str, undo: tuple[Path, str | None] | None = None) -> ContentChange:
        """Swap in what is now on disk; if that fails (changed meanwhile), put `undo` back and report why."""
        swapped = self._swap()
        if isinstance(swapped, list):
            if undo is not None:
                try:
                    write_atomically(*undo)
                except OSError:
                    log.exception("could not restore %s after a failed content change", undo[0])
            return self._rejected(swapped, target)
        self.last_error = None
        return ContentChange(ok=True, diff=diff_catalogues(old, swapped), path=target, version=swapped.version)

    def _rejected(self, errors: list[ContentError] | tuple[ContentError, ...], target: str | None = None
                  ) -> ContentChange:
        return ContentChange(ok=False, errors=tuple(errors), path=target, version=self.library.catalogue.version)

    # ---- watcher

    async def watch(self, stop: asyncio.Event, on_change: Callable[[ContentChange], Awaitable[None]], *,
                    debounce_ms: int = 800, settle_seconds: float = 0.3) -> None:
        """Reload when YAML files in the content directory change; report real changes and failures to on_change."""
        reloaded = _snapshot(self.directory)
        async for _changes in watchfiles.awatch(self.directory, watch_filter=_is_content_file, debounce=debounce_ms,
                                                stop_event=stop, recursive=True):
            while not stop.is_set():
                snapshot = await _settled(self.directory, settle_seconds, stop)
                if snapshot is None:
                    return
                if snapshot != reloaded:
                    reloaded = snapshot
                    await self._reload_and_notify(on_change)
                # A write during the reload may not reach the next batch; look once more before waiting.
                if _snapshot(self.directory) == snapshot:
                    break

    async def _reload_and_notify(self, on_change: Callable[[ContentChange], Awaitable[None]]) -> None:
        before, failing = self.library.catalogue.version, self.last_error is not None
        # In a worker thread: a large or hostile file must not hold up the users' commands while it is read.
        change = await asyncio.to_thread(self.reload)
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


class OffLoopContentAdmin:
    """What the admin commands call: each change runs in a worker thread, so other users' commands are answered
    while a large or hostile file is read; the manager's lock keeps changes one at a time."""

    def __init__(self, manager: ContentManager, on_applied: Callable[[], None] | None = None) -> None:
        self.manager = manager
        self._on_applied = on_applied

    async def reload(self) -> ContentChange:
        """Re-read the content directory."""
        return self._done(await asyncio.to_thread(self.manager.reload))

    async def upload(self, file_name: str, data: bytes,
                     record: Record | None = None) -> ContentChange:
        """Validate an uploaded file; if valid, `record` it (the audit entry) and only then write it."""
        return self._done(await asyncio.to_thread(self.manager.upload, file_name, data, _on_loop(record)))

    async def rollback(self, record: Record | None = None) -> ContentChange:
        """Undo the latest upload, recorded first as uploads are."""
        return self._done(await asyncio.to_thread(self.manager.rollback, _on_loop(record)))

    @property
    def last_error(self) -> ContentChange | None:
        """The latest failed reload, if the content on disk is broken now."""
        return self.manager.last_error

    def _done(self, change: ContentChange) -> ContentChange:
        if change.ok and self._on_applied is not None:
            self._on_applied()
        return change


def _on_loop(record: Record | None) -> BlockingRecord | None:
    """A blocking `record` for the worker thread that runs the coroutine on this event loop and waits for it."""
    if record is None:
        return None
    loop = asyncio.get_running_loop()

    def blocking(target: str) -> None:
        # Bounded: if the loop is stopping and never runs it, the change is refused rather than the thread stuck.
        asyncio.run_coroutine_threadsafe(record(target), loop).result(timeout=RECORD_TIMEOUT_SECONDS)

    return blocking


# --- files ------------------------------------------------------------------------------------


def _decode_upload(file_name: str, data: bytes) -> str | ContentError:
    if not file_name.lower().endswith(CONTENT_SUFFIXES):
        return ContentError(file_name, 1, "(file)", "only .yaml or .yml files can be uploaded")
    if len(data) > MAX_UPLOAD_BYTES:
        return ContentError(file_name, 1, "(file)", f"is {len(data)} bytes; at most {MAX_UPLOAD_BYTES} allowed")
    text = decode_content(data)
    if isinstance(text, Unreadable):
        return ContentError(file_name, 1, "(file)", text.message)
    return text


def _recorded(record: BlockingRecord | None, target: str) -> ContentError | None:
    """Write the audit entry for a change about to be applied; the error that refuses the change if it failed."""
    if record is None:
        return None
    try:
        record(target)
    except Exception as exc:  # any failure to record means the change must not happen
        log.exception("could not record the change to %s; not applied", target)
        return ContentError(target, 0, "(audit)", f"could not record the change, so it was not applied: "
                                                  f"{_brief(exc)}")
    return None


def _unexpected(exc: Exception, file: str = ".") -> ContentError:
    return ContentError(file, 0, "(content)", f"could not be loaded: {_brief(exc)}")


def _brief(exc: BaseException) -> str:
    """An exception in one line without server paths: its type and, for OS errors, only the reason."""
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'error'}"
    text = printable_name(str(exc).splitlines()[0] if str(exc) else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_content_file(_change: watchfiles.Change, path: str) -> bool:
    name = os.path.basename(path)
    return name.endswith(CONTENT_SUFFIXES) and not name.startswith(".")


def _io_error(shown: str, exc: OSError, what: str = "could not write") -> ContentError:
    return ContentError(shown, 0, "(file)", f"{what}: {exc.strerror or type(exc).__name__}")


def _inside(directory: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _read_exact(path: Path) -> str | None:
    """A file's text byte for byte (no newline translation), or None if it does not exist."""
    try:
        # surrogateescape so that even a non-UTF-8 file being replaced can be restored exactly.
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None


def write_atomically(path: Path, text: str | None) -> None:
    """Atomically replace `path` with `text`, or delete it when `text` is None."""
    if text is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # A `.tmp` suffix keeps the half-written file out of the content loader and the watcher.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(text.encode("utf-8", "surrogateescape"))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _snapshot(directory: Path) -> Snapshot:
    """(mtime_ns, size) of every content file: equal snapshots mean nothing was written in between."""
    result: Snapshot = {}
    try:
        paths = content_files(directory)
    except OSError:
        return result
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        result[path.relative_to(directory).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return result


async def _settled(directory: Path, seconds: float, stop: asyncio.Event) -> Snapshot | None:
    """Wait until no content file changed for `seconds` (an editor or a copy has finished); None if stopped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(SETTLE_LIMIT_SECONDS, seconds)
    snapshot = _snapshot(directory)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        if stop.is_set():
            return None
        latest = _snapshot(directory)
        # A file rewritten for ever must not stall reloads: after the limit, take what is there.
        if latest == snapshot or loop.time() >= deadline:
            return latest
        snapshot = latest

