"""The content in force: loaded from a folder once, then swapped whole for a catalogue validated elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from bot.content.errors import ContentError, InvalidContent
from bot.content.files import read_folder
from bot.content.validate import validate_texts
from bot.core.catalogue import Catalogue


def load_catalogue(directory: Path, *, now: datetime, overrides: Mapping[str, str] | None = None,
                   shown: str | None = None, future_updates: bool = True,
                   require_language: str | None = None) -> Catalogue:
    """Read every YAML file under `directory`, validate all of it, and return the catalogue.

    `overrides` maps a path relative to `directory` to replacement text, so a file can be validated against the
    rest of the content before anything is written. Errors name files as `<shown>/<relative path>` (default: the
    directory as given; "" for paths relative to it). With `future_updates=False` an update dated after tomorrow
    is an error (`content check` asks for that; the running bot accepts one, so content written ahead of time
    still loads). With `require_language` every missing translation into it is an error (`content check --lang`).
    Raises InvalidContent with every error found.
    """
    texts = read_folder(directory, directory.as_posix() if shown is None else shown)
    if isinstance(texts, ContentError):
        raise InvalidContent([texts])
    texts.update(overrides or {})
    return validate_texts(texts, base=directory, now=now, shown=shown, future_updates=future_updates,
                          require_language=require_language)


class ContentLibrary:
    """Holds the last good catalogue of a content directory; a failed reload leaves it in force."""

    def __init__(self, directory: Path, catalogue: Catalogue) -> None:
        self.directory = directory
        self._catalogue = catalogue

    @classmethod
    def open(cls, directory: Path, *, now: datetime) -> ContentLibrary:
        """Load a directory; raises InvalidContent if it is not valid (the bot refuses to start on it)."""
        return cls(directory, load_catalogue(directory, now=now))

    @property
    def catalogue(self) -> Catalogue:
        """The content in force."""
        return self._catalogue

    def reload(self, *, now: datetime, shown: str | None = None) -> Catalogue:
        """Read and validate the directory again and swap it in; on errors raise InvalidContent and keep the old.

        `shown` is how errors name the directory (see load_catalogue).
        """
        return self.swap(load_catalogue(self.directory, now=now, shown=shown))

    def swap(self, catalogue: Catalogue) -> Catalogue:
        """Install a catalogue that was validated already (an upload, a rollback, a replica's snapshot)."""
        # One assignment: a reader on another thread sees the old catalogue or the new one, never a mix.
        self._catalogue = catalogue
        return catalogue
