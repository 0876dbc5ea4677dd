"""The content check the command line runs: load a directory, or print every error with its place."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.content.errors import InvalidContent
from bot.content.library import load_catalogue
from bot.core.catalogue import Catalogue
from bot.core.ports import utc_now


def checked_catalogue(directory: Path, *, future_updates: bool = False,
                      require_language: str | None = None) -> Catalogue | None:
    """The directory's catalogue, or None after printing each problem as `file:line: key: message` and a count.

    `future_updates=False` also refuses updates dated after tomorrow, a check only the command line makes;
    `require_language` (`zh-Hant`) lists every missing translation into it as a problem.
    """
    try:
        return load_catalogue(directory, now=utc_now(), future_updates=future_updates,
                              require_language=require_language)
    except InvalidContent as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} problem(s) in {directory}", file=sys.stderr)
        return None
