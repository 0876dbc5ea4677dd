"""Change content while the bot runs: reloads, validated uploads and rollbacks, and the upload history.

Each change reads the folder once, validates the result once in memory, writes it, and installs the validated
catalogue: nothing is read back and validated again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path, PurePosixPath

import yaml

from bot.content.diff import ContentChange, diff_catalogues
from bot.content.errors import ContentError, InvalidContent, Unreadable
from bot.content.files import (
    CONTENT_SUFFIXES,
    as_read_back,
    decode_upload,
    entry_number,
    history_entries,
    inside,
    is_content_name,
    mirror_content,
    mirror_history,
    read_content,
    read_entry,
    read_exact,
    read_folder,
    read_history,
    readable,
    remove,
    write_atomically,
)
from bot.content.library import ContentLibrary
from bot.content.parse import parse_file
from bot.content.validate import SECTION_ID, validate_texts
from bot.content.watch import OnChange, watch_content
from bot.core.catalogue import ENGLISH, Catalogue
from bot.core.ports import NO_METRICS, Metrics, Record
from bot.core.render import printable_name

log = logging.getLogger(__name__)

HISTORY_SHOWN = "(content history)"  # how messages name the history folder: never a server path
RECORD_TIMEOUT_SECONDS = 30.0

BlockingRecord = Callable[[str], None]  # writes the audit entry for a change to this path; raises if it could not
Texts = dict[str, str | Unreadable]


class ContentManager:
    """Applies validated content changes to a library and keeps an on-disk history to roll uploads back.

    Its methods are blocking (parsing, validation, disk I/O) and may run in worker threads: `changing` makes
    reloads, uploads, rollbacks and replica updates happen one at a time. Messages name files relative to the
    content folder, never by a server path.
    """

    def __init__(self, library: ContentLibrary, history_dir: Path, clock: Callable[[], datetime], *,
                 metrics: Metrics = NO_METRICS) -> None:
        self.library = library
        self.history_dir = history_dir
        self.clock = clock
        self.metrics = metrics
        self.loaded_at = clock()  # when the content in force was put in force (metrics)
        self.last_error: ContentChange | None = None
        self.changing = threading.RLock()

    @property
    def directory(self) -> Path:
        """The content directory being managed."""
        return self.library.directory

    @property
    def version(self) -> str:
        """The version of the content in force."""
        return self.library.catalogue.version

    @property
    def failing(self) -> bool:
        """Whether the latest reload failed (the content on disk is broken)."""
        return self.last_error is not None

    # ---- reload

    def reload(self) -> ContentChange:
        """Read and validate the directory and swap it in only if valid; on errors keep serving the old catalogue."""
        with self.changing:
            old = self.library.catalogue
            try:
                new = self.library.reload(now=self.clock(), shown="")
            except InvalidContent as exc:
                return self._failed(old, list(exc.errors))
            except Exception as exc:  # whatever it was, admins must hear of it, not only the log
                log.exception("content reload failed unexpectedly")
                return self._failed(old, [_unexpected(exc)])
            self.last_error = None
            self.loaded_at = self.clock()
            self.metrics.content_reload("ok")
            return ContentChange(ok=True, diff=diff_catalogues(old, new), version=new.version)

    def _failed(self, old: Catalogue, errors: list[ContentError]) -> ContentChange:
        self.last_error = ContentChange(ok=False, errors=tuple(errors), version=old.version)
        self.metrics.content_reload("failed")
        return self.last_error

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
        text = decode_upload(name, data)
        if isinstance(text, ContentError):
            return self._rejected([text])
        texts = self._read()
        if isinstance(texts, ContentError):
            return self._rejected([texts])
        target = _target_for(name, text, texts)
        if isinstance(target, ContentError):
            return self._rejected([target])
        return self._change(old, target, text, texts, record)

    def _change(self, old: Catalogue, target: str, text: str, texts: Texts,
                record: BlockingRecord | None) -> ContentChange:
        """Validate the folder with `target` holding `text`; if valid, record, keep the history entry, write."""
        validated = self._validate({**texts, target: as_read_back(text)})
        if not isinstance(validated, Catalogue):
            return self._rejected(validated, target)
        path = self.directory / target
        previous = read_exact(path)
        if previous == text:
            return self._install(old, validated, target)
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
            remove(entry)
            return self._rejected([_io_error(target, exc)], target)
        return self._install(old, validated, target)

    # ---- publishing one update

    def publish_update(self, day: date, sections: Sequence[str], title: str, summary: str, link: str,
                       actor: int | None, record: BlockingRecord | None = None, *,
                       language: str = ENGLISH) -> ContentChange:
        """Add one dated update at the top of the updates file, as an upload of that file would: validated with the
        rest, recorded (`record`) first, kept in the history for /rollback, written atomically. Its text is in
        `language` (a Chinese press release is published as a Chinese update, `language: zh-Hant`)."""
        with self.changing:
            try:
                old = self.library.catalogue
                texts = self._read()
                if isinstance(texts, ContentError):
                    return self._rejected([texts])
                target = _top_file("updates", texts)
                current = texts.get(target, "updates:\n")
                if not isinstance(current, str):
                    return self._rejected([ContentError(target, 1, "(file)", current.message)], target)
                text = _with_update(current, day, sections, title, summary, link, language)
                if isinstance(text, ContentError):
                    return self._rejected([text], target)
                log.info("publishing an update to %s for admin %s: %s", target, actor, printable_name(title))
                return self._change(old, target, text, texts, record)
            except Exception as exc:  # reported to the admin instead of a bare "Sorry"
                log.exception("publishing an update failed unexpectedly")
                return self._rejected([_unexpected(exc)])

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
        entries = history_entries(self.history_dir)
        if not entries:
            return self._rejected([ContentError(HISTORY_SHOWN, 0, "(history)",
                                                "nothing to roll back: no upload is recorded")])
        entry_path = entries[-1]
        shown = f"{HISTORY_SHOWN} {entry_path.name}"
        try:
            entry = json.loads(read_entry(entry_path))
            target, restored = entry["path"], entry["previous_text"]
            if not isinstance(target, str) or not (restored is None or isinstance(restored, str)):
                raise TypeError("path must be text and previous_text text or null")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return self._rejected([ContentError(shown, 0, "(history)", f"unreadable entry: {_brief(exc)}")])
        path = self.directory / target
        if not inside(self.directory, path) or not is_content_name(PurePosixPath(target).name):
            return self._rejected([ContentError(shown, 0, "path", f"refusing to write {printable_name(target)!r}")])
        texts = self._read()
        if isinstance(texts, ContentError):
            return self._rejected([texts], target)
        texts.pop(target, None)
        if restored is not None:
            texts[target] = as_read_back(restored)
        validated = self._validate(texts)
        if not isinstance(validated, Catalogue):
            return self._rejected(validated, target)
        refused = _recorded(record, target)
        if refused is not None:
            return self._rejected([refused], target)
        try:
            write_atomically(path, restored)
        except OSError as exc:
            return self._rejected([_io_error(target, exc)], target)
        remove(entry_path)
        return self._install(old, validated, target)

    # ---- a replica's content

    def replace_all(self, files: Mapping[str, str], history: Mapping[str, str]) -> ContentChange:
        """Make the folder hold exactly `files` (validated first) and the history `history`; install the files.

        For a snapshot published by another replica: invalid files are never written.
        """
        with self.changing:  # not in the middle of an admin's upload, rollback or reload
            old = self.library.catalogue
            validated = self._validate(dict(files))
            if not isinstance(validated, Catalogue):
                return self._rejected(validated)
            # What to put back if writing fails; an unreadable local file is not worth keeping over valid content.
            before = {relative: text for relative, text in read_content(self.directory).items()
                      if isinstance(text, str)}
            try:
                mirror_content(self.directory, files)
            except OSError as exc:
                try:
                    mirror_content(self.directory, before)
                except OSError:
                    log.exception("could not restore the content directory %s", self.directory)
                return self._rejected([_io_error(".", exc, "could not write the files")])
            try:
                mirror_history(self.history_dir, history)
            except OSError as exc:
                log.warning("content applied, but the upload history could not be copied: %s", exc)
            return self._install(old, validated)

    def published(self) -> tuple[dict[str, str], dict[str, str]]:
        """The content files and the upload history as text, to publish to the other replicas.

        An unreadable content file (not UTF-8, too large) is a ValueError naming it.
        """
        return readable(read_content(self.directory)), read_history(self.history_dir)

    # ---- the watcher

    async def watch(self, stop: asyncio.Event, on_change: OnChange, *, debounce_ms: int = 800,
                    settle_seconds: float = 0.3) -> None:
        """Reload when YAML files in the content directory change; report real changes and failures to on_change."""
        await watch_content(self, stop, on_change, debounce_ms=debounce_ms, settle_seconds=settle_seconds)

    # ---- steps

    def _read(self) -> Texts | ContentError:
        """The content folder as it is now, read once for this change."""
        try:
            return read_folder(self.directory, "")
        except OSError as exc:
            return _io_error(".", exc, "cannot read the content folder")

    def _validate(self, texts: Texts) -> Catalogue | list[ContentError]:
        """The catalogue `texts` make, or every error they have."""
        try:
            return validate_texts(texts, base=self.directory, now=self.clock(), shown="")
        except InvalidContent as exc:
            return list(exc.errors)

    def _record(self, target: str, previous: str | None, text: str) -> Path:
        entries = history_entries(self.history_dir)
        number = entry_number(entries[-1]) + 1 if entries else 1
        now = self.clock()
        # The number orders entries (a clock can repeat a second); the time is for people reading the folder.
        path = self.history_dir / f"{number:06d}-{now.strftime('%Y%m%dT%H%M%S')}.json"
        entry = {"path": target, "previous_text": previous, "new_text": text, "saved_at": now.isoformat()}
        write_atomically(path, json.dumps(entry, indent=1))
        return path

    def _install(self, old: Catalogue, new: Catalogue, target: str | None = None) -> ContentChange:
        """Put a validated catalogue in force."""
        self.library.swap(new)
        self.loaded_at = self.clock()
        self.last_error = None
        return ContentChange(ok=True, diff=diff_catalogues(old, new), path=target, version=new.version)

    def _rejected(self, errors: list[ContentError] | tuple[ContentError, ...], target: str | None = None
                  ) -> ContentChange:
        return ContentChange(ok=False, errors=tuple(errors), path=target, version=self.library.catalogue.version)


def _target_for(file_name: str, text: str, texts: Mapping[str, str | Unreadable]) -> str | ContentError:
    """Where an uploaded file belongs, decided by what it holds."""
    parsed = parse_file(text, file_name)
    if isinstance(parsed, ContentError):
        return parsed
    data = parsed.data
    if isinstance(data, dict) and "id" in data:
        section_id = data["id"]
        if not isinstance(section_id, str) or not SECTION_ID.match(section_id.strip()):
            return ContentError(file_name, getattr(data, "key_lines", {}).get("id", 1), "id",
                                "must be lowercase letters, digits and dashes (max 32); it names the file")
        section_id = section_id.strip()
        return _section_file(section_id, texts) or f"sections/{section_id}.yaml"
    if isinstance(data, dict) and "updates" in data:
        return _top_file("updates", texts)
    if isinstance(data, dict) and "name" in data and "about" in data:
        return _top_file("about", texts)
    return ContentError(file_name, 1, "(file)", "cannot tell what this file is: expected a section (with `id`), "
                                                "news (with `updates`) or the bot's description (`name`, `about`)")


class _NoAliases(yaml.SafeDumper):
    """Writes a value used twice out twice: content refuses YAML aliases."""

    def ignore_aliases(self, data: object) -> bool:
        return True


_UPDATES_KEY = re.compile(r"updates:[ \t]*(#.*)?")
_ITEM = re.compile(r"([ \t]*)- ")


def _with_update(text: str, day: date, sections: Sequence[str], title: str, summary: str,
                 link: str, language: str = ENGLISH) -> str | ContentError:
    """The updates file's text with one update added first in its list, the rest left as written (comments too)."""
    lines = text.splitlines(keepends=True)
    key = next((n for n, line in enumerate(lines) if _UPDATES_KEY.fullmatch(line.rstrip("\r\n"))), None)
    if key is None:
        return ContentError("updates.yaml", 1, "updates", "cannot add an update: no `updates:` block list at the top")
    at, indent = len(lines), "  "
    for n in range(key + 1, len(lines)):
        stripped = lines[n].strip()
        if not stripped or stripped.startswith("#"):
            continue
        item = _ITEM.match(lines[n])
        if item is None or not item.group(1):
            return ContentError("updates.yaml", n + 1, "updates",
                                "cannot add an update: `updates` is not an indented block list (`  - date: ...`)")
        at, indent = n, item.group(1)
        break
    entry: dict[str, object] = {"date": day, "sections": list(sections), "title": title, "summary": summary,
                                "link": link}
    if language != ENGLISH:
        entry["language"] = language  # English is the default, and most updates leave it out
    dumped = yaml.dump([entry], Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=1_000_000,
                       default_flow_style=None)
    added = [indent + line + "\n" for line in dumped.splitlines()]
    if at == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines[:at] + added + lines[at:])


def _section_file(section_id: str, texts: Mapping[str, str | Unreadable]) -> str | None:
    """The file that already holds this section, so a replacement lands on it whatever its name."""
    for relative in sorted(texts):
        text = texts[relative]
        # A file holding the id has it in its text (short of a YAML escape): parse only those, not every section.
        if not relative.startswith("sections/") or not isinstance(text, str) or section_id not in text:
            continue
        parsed = parse_file(text, relative)
        if isinstance(parsed, ContentError):
            continue
        data = parsed.data
        if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"].strip() == section_id:
            return relative
    return None


def _top_file(stem: str, texts: Mapping[str, str | Unreadable]) -> str:
    for suffix in CONTENT_SUFFIXES:
        if f"{stem}{suffix}" in texts:
            return f"{stem}{suffix}"
    return f"{stem}.yaml"


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

    async def publish_update(self, day: date, sections: Sequence[str], title: str, summary: str, link: str,
                             actor: int | None, record: Record | None = None, *,
                             language: str = ENGLISH) -> ContentChange:
        """Add one dated update, written in `language`, to the updates file through the upload path: validated,
        recorded, kept for /rollback, written atomically (and, on replicas, published to the others)."""
        return self._done(await asyncio.to_thread(self.manager.publish_update, day, sections, title, summary, link,
                                                  actor, _on_loop(record), language=language))

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


def _io_error(shown: str, exc: OSError, what: str = "could not write") -> ContentError:
    return ContentError(shown, 0, "(file)", f"{what}: {exc.strerror or type(exc).__name__}")
