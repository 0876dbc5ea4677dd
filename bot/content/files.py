"""The only code that touches the content folder and the upload history on disk.

Which files are content, reading them all, atomic writes, safe relative paths, the (mtime, size) stamps the
watcher compares, the history entries, and the upload size limit. Everything else works on {relative path: text}.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from bot.content.errors import ContentError, Unreadable
from bot.content.parse import MAX_FILE_BYTES
from bot.core.admin import MAX_UPLOAD_BYTES

CONTENT_SUFFIXES = (".yaml", ".yml")
HISTORY_NAME = re.compile(r"^(\d+)-[^/]*\.json$")

FileStamps = dict[str, tuple[int, int]]  # relative path -> (mtime_ns, size): equal stamps, nothing written between


def is_content_name(name: str) -> bool:
    """Whether a file name is content (`*.yaml`, `*.yml`): the one definition, for loading, watching and uploads."""
    return PurePosixPath(name).suffix in CONTENT_SUFFIXES


def content_files(directory: Path) -> list[Path]:
    """Every content file below `directory` (none when it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if is_content_name(p.name) and p.is_file())


def decode_content(data: bytes) -> str | Unreadable:
    """A content file's text, or why it is not usable text (too large, not UTF-8)."""
    if len(data) > MAX_FILE_BYTES:
        return Unreadable(f"is {len(data)} bytes; at most {MAX_FILE_BYTES} allowed")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Unreadable(f"not UTF-8 text (bad byte at offset {exc.start})")


def read_content(directory: Path) -> dict[str, str | Unreadable]:
    """Every content file below `directory` as {relative path: text, or why it is unreadable}."""
    texts: dict[str, str | Unreadable] = {}
    for path in content_files(directory):
        relative = path.relative_to(directory).as_posix()
        try:
            with path.open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)  # a huge file is refused without reading all of it
        except OSError as exc:
            texts[relative] = Unreadable(f"cannot be read: {exc.strerror or type(exc).__name__}")
            continue
        if len(data) > MAX_FILE_BYTES:
            texts[relative] = Unreadable(f"is more than {MAX_FILE_BYTES} bytes; at most {MAX_FILE_BYTES} allowed")
        else:
            texts[relative] = decode_content(data)
    return texts


def as_read_back(text: str) -> str:
    """The text a read of the file written from `text` gives (decoding drops a leading byte order mark)."""
    return text.removeprefix("\ufeff")


def read_folder(directory: Path, shown: str) -> dict[str, str | Unreadable] | ContentError:
    """Every content file of the content folder (see read_content), or the error that it is not there."""
    if not directory.is_dir():
        return ContentError(shown or ".", 0, "(directory)", "content directory not found")
    return read_content(directory)


def readable(texts: Mapping[str, str | Unreadable]) -> dict[str, str]:
    """The files that are text; an unreadable one (not UTF-8, too large) is a ValueError naming it."""
    for relative, text in texts.items():
        if isinstance(text, Unreadable):
            raise ValueError(f"{relative}:1: (file): {text.message}")
    return {relative: text for relative, text in texts.items() if isinstance(text, str)}


def decode_upload(file_name: str, data: bytes) -> str | ContentError:
    """An uploaded file's text, or its one error (not .yaml/.yml, over the upload cap, not UTF-8)."""
    if not file_name.lower().endswith(CONTENT_SUFFIXES):
        return ContentError(file_name, 1, "(file)", "only .yaml or .yml files can be uploaded")
    if len(data) > MAX_UPLOAD_BYTES:
        return ContentError(file_name, 1, "(file)", f"is {len(data)} bytes; at most {MAX_UPLOAD_BYTES} allowed")
    text = decode_content(data)
    if isinstance(text, Unreadable):
        return ContentError(file_name, 1, "(file)", text.message)
    return text


def safe_relative(relative: str) -> bool:
    """Whether a path from elsewhere (a replica, a history entry) names a content or history file inside the folder."""
    path = PurePosixPath(relative)
    return (not path.is_absolute() and ".." not in path.parts and "\\" not in relative
            and (is_content_name(path.name) or HISTORY_NAME.match(relative) is not None))


def inside(directory: Path, path: Path) -> bool:
    """Whether `path` resolves to a place inside `directory`."""
    return path.resolve().is_relative_to(directory.resolve())


def read_exact(path: Path) -> str | None:
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


def file_stamps(directory: Path) -> FileStamps:
    """(mtime_ns, size) of every content file: equal stamps mean nothing was written in between."""
    result: FileStamps = {}
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


# --- mirroring a whole folder (a replica's content and history) -------------------------------------------------


def mirror_content(directory: Path, texts: Mapping[str, str]) -> None:
    """Make `directory` hold exactly `texts` among its content files: write changed ones, delete the others."""
    _mirror(directory, texts, content_files(directory))


def mirror_history(directory: Path, texts: Mapping[str, str]) -> None:
    """Make the history folder hold exactly the entries `texts` ({file name: JSON text})."""
    _mirror(directory, texts, history_entries(directory))


def _mirror(directory: Path, texts: Mapping[str, str], present: list[Path]) -> None:
    for relative, text in texts.items():
        path = directory / relative
        if _read(path) != text:
            write_atomically(path, text)
    wanted = {directory / relative for relative in texts}
    for path in present:
        if path not in wanted:
            path.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# --- the upload history -------------------------------------------------------------------------------------------


def history_entries(directory: Path) -> list[Path]:
    """History entries, oldest first (by their number: a clock can repeat a second)."""
    if not directory.is_dir():
        return []
    numbered = []
    for path in directory.iterdir():
        match = HISTORY_NAME.match(path.name)
        if match and path.is_file():
            numbered.append((int(match.group(1)), path))
    return [path for _, path in sorted(numbered)]


def entry_number(path: Path) -> int:
    """The number of a history entry."""
    match = HISTORY_NAME.match(path.name)
    return int(match.group(1)) if match else 0


def read_history(directory: Path) -> dict[str, str]:
    """Every history entry as {file name: JSON text}."""
    return {p.name: p.read_text(encoding="utf-8") for p in history_entries(directory)}


def read_entry(path: Path) -> str:
    """One history entry's JSON text."""
    return path.read_text(encoding="utf-8")


def remove(path: Path) -> None:
    """Delete a file (a history entry applied or undone), if it is there."""
    path.unlink(missing_ok=True)
